// Keep the results: the API's answers as a CSV table (the columns and number formats of
// `progrock predict --csv`, progrock/report/table.py) or as JSON, downloaded from the browser.

// progrock.report.table.COLUMNS
export const COLUMNS = ["path", "verdict", "probability", "vote_fraction", "n_snippets", "duration", "model",
                        "snippet_probs"];

function roundHalfEven(x) {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

// A float as Python's str() writes it (what csv.writer puts in the table): shortest digits that
// read back the same number, "1.0" for whole numbers, exponents below 1e-4 and from 1e16 on.
export function pyFloat(x) {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const a = Math.abs(x);
  if (a < 1e-4 || a >= 1e16) {
    const [mantissa, exp] = x.toExponential().split("e");
    return `${mantissa}e${exp[0]}${exp.slice(1).padStart(2, "0")}`;
  }
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

// Python's f"{x:.3f}". Both round the exact binary value; they differ only on exact ties, which
// at three decimals are the odd multiples of 1/16 (Python goes to even, toFixed away from zero).
export function fixed3(x) {
  const sixteenths = x * 16;                       // exact: a power of two
  if (Number.isInteger(sixteenths) && sixteenths % 2 !== 0) {
    return (roundHalfEven(x * 1000) / 1000).toFixed(3);   // x * 1000 is exact here (odd * 62.5)
  }
  return x.toFixed(3);
}

// One field as Python's csv module writes it (QUOTE_MINIMAL, "\r\n" line ends).
function csvField(s) {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// progrock.report.table.row_of for one API answer.
export function csvRow(pred) {
  return [pred.path, pred.verdict, pyFloat(pred.probability),
          pred.vote_fraction == null ? "" : pyFloat(pred.vote_fraction), String(pred.n_snippets),
          pyFloat(pred.duration), pred.model, pred.snippet_probs.map(fixed3).join(" ")];
}

// The table of `preds` (API answers; songs that failed have no row, as on the command line).
export function csvText(preds) {
  return [COLUMNS, ...preds.map(csvRow)].map((row) => row.map(csvField).join(",") + "\r\n").join("");
}

// One object per song: the API's answer as it came, or {path, error} for a song that failed.
export function jsonText(records) {
  return JSON.stringify(records, null, 2) + "\n";
}

// Offer `text` as a file download; nothing leaves the browser.
export function download(text, filename, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
