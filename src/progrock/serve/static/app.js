// progrock page: drop songs, send each to POST /api/classify, show the verdict with its evidence
// (the barcode, which plays each snippet from the user's own file), what the model knows, and
// export the results. Plain JavaScript modules, no build step, nothing loaded from the internet.

import { clock, colour, drawBarcode } from "./barcode.js";
import { csvText, download, jsonText } from "./export.js";
import { SnippetPlayer } from "./player.js";

const MAX_PARALLEL = 3;              // uploads in flight at once (one request per song)
const TOP_TAGS = 5;

const state = {
  model: null,                       // GET /api/model, once loaded
  queue: [],                         // songs waiting for an upload slot
  running: 0,
  filter: "all",
};

const $ = (id) => document.getElementById(id);

function formatBytes(n) {
  const fixed = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  if (n >= 1 << 30) return fixed(n / (1 << 30)) + " GB";
  if (n >= 1 << 20) return fixed(n / (1 << 20)) + " MB";
  if (n >= 1 << 10) return Math.round(n / (1 << 10)) + " KB";
  return n + " bytes";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function signed(x) {
  return (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(2);
}

function modelTitle(name) {
  const m = state.model && state.model.models && state.model.models[name];
  return m ? m.title : name;
}

// ---- the tooltip ------------------------------------------------------------------------------

const tooltip = $("tooltip");

function showTip(rect, info) {
  tooltip.replaceChildren();
  const time = el("div", "tip-time", `${clock(info.start)}–${clock(info.end)}`);
  const line = el("div");
  const swatch = el("span", "tip-swatch");
  swatch.style.background = colour(info.p);
  const vote = info.votes ? ` · ${info.p >= info.threshold ? "votes prog" : "votes not prog"}` : "";
  line.append(swatch, `p(prog) ${info.p.toFixed(2)}${vote}`);
  const which = el("div", "tip-which", `snippet ${info.index + 1} of ${info.count} · click or Enter to hear it`);
  tooltip.append(time, line, which);
  tooltip.hidden = false;
  const r = rect.getBoundingClientRect();
  const tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
  let left = r.left + r.width / 2 - tw / 2;
  left = Math.max(8, Math.min(left, window.innerWidth - tw - 8));
  let top = r.top - th - 10;
  if (top < 8) top = r.bottom + 10;
  tooltip.style.left = `${left}px`;
  tooltip.style.top = `${top}px`;
}

function hideTip() { tooltip.hidden = true; }

// ---- hearing a snippet ------------------------------------------------------------------------

const player = new SnippetPlayer($("player"), {
  onChange(card, index, time) {
    if (card._mark) card._mark(index, time);
    const note = card.querySelector(".play-note");
    if (index >= 0) {
      const start = card._pred.snippet_starts[index];
      note.textContent = `Playing snippet ${index + 1} (${clock(start)}–${clock(snippetEnd(card, index))}) ` +
                         "from your file; click it again to stop.";
      note.hidden = false;
      note.classList.remove("is-error");
    } else if (!note.classList.contains("is-error")) {
      note.hidden = true;
    }
  },
  onError(card, message) {
    const note = card.querySelector(".play-note");
    note.textContent = `Cannot play: ${message}.`;
    note.classList.add("is-error");
    note.hidden = false;
  },
});

function snippetEnd(card, index) {
  const pred = card._pred;
  return Math.min(pred.snippet_starts[index] + pred.snippet_seconds, pred.duration);
}

function playSnippet(card, index) {
  if (!card._url || index < 0) return;
  card.querySelector(".play-note").classList.remove("is-error");
  player.toggle(card, index, card._url, card._pred.snippet_starts[index], snippetEnd(card, index));
}

// ---- the barcode ------------------------------------------------------------------------------

function drawCardBarcode(card) {
  const box = card.querySelector(".barcode-box");
  box._width = box.clientWidth;
  card._mark = drawBarcode(box, card._pred, {
    tip: showTip,
    untip: hideTip,
    play: (i) => playSnippet(card, i),
    playing: () => (player.isPlaying(card) ? player.now.index : -1),
  });
}

// Redraw barcodes when their card changes width.
const resizer = ("ResizeObserver" in window) ? new ResizeObserver((entries) => {
  for (const e of entries) {
    const box = e.target, card = box.closest(".card");
    if (card && card._pred && Math.abs((box._width || 0) - box.clientWidth) > 2) drawCardBarcode(card);
  }
}) : null;

// ---- cards ------------------------------------------------------------------------------------

function cards() {
  return Array.from($("cards").children);
}

function newCard(file) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".card-name").textContent = file.name;
  node.querySelector(".card-name").title = file.name;
  node.querySelector(".card-size").textContent = formatBytes(file.size);
  $("cards").append(node);
  $("results").hidden = false;
  return node;
}

function setStatus(card, text) {
  card.querySelector(".status-text").textContent = text;
}

function chip(text, title, className) {
  const li = el("li", "chip" + (className ? " " + className : ""), text);
  if (title) li.title = title;
  return li;
}

// The card's "unlike the training music" flag; an unfamiliar song's verdict is drawn as unsure.
function showFamiliarity(card, pred) {
  const flag = card.querySelector(".card-flag");
  flag.hidden = pred.unfamiliar !== true;
  if (pred.unfamiliar === true) {
    const ratio = typeof pred.familiarity === "number" ? pred.familiarity.toFixed(2) : "?";
    flag.title = `familiarity ${ratio}: this song's distance to the music the model was trained on is ` +
      `${ratio} × the cut-off (above 1: unlike the training music), so treat its verdict as a guess`;
  }
  card.querySelector(".verdict").classList.toggle("is-unsure", pred.unfamiliar === true);
}

// Inputs that pushed the verdict (structure and logistic models): towards prog first if prog.
function showExplanation(card, pred) {
  const box = card.querySelector(".explain");
  const items = Array.isArray(pred.explanation) ? pred.explanation : [];
  box.hidden = items.length === 0;
  if (!items.length) return;
  const towards = (e) => (e.push > 0) === (pred.verdict === "prog");
  const ordered = items.filter(towards).concat(items.filter((e) => !towards(e)));
  box.querySelector(".chips").replaceChildren(...ordered.map((e) => chip(
    `${e.input} ${signed(e.push)}`,
    `${e.input} = ${e.value}: pushes the verdict ${e.push > 0 ? "towards prog" : "towards not prog"} ` +
      `by ${signed(e.push)} on the log-odds`,
    e.push > 0 ? "towards-prog" : "towards-nonprog")));
}

function showTags(card, pred) {
  const box = card.querySelector(".tags");
  const asked = card._asked.tags;
  box.hidden = !asked;
  if (!asked) return;
  const entries = Object.entries(pred.tags || {}).sort((a, b) => b[1] - a[1]).slice(0, TOP_TAGS);
  const list = box.querySelector(".chips");
  if (!entries.length) {
    list.replaceChildren(chip("the tagger gave no tags for this song", null, "is-empty"));
    return;
  }
  list.replaceChildren(...entries.map(([tag, p]) => chip(`${tag} ${p.toFixed(2)}`,
    `the tagger's probability of "${tag}", averaged over the song`)));
}

function showResult(card, pred) {
  card._pred = pred;
  const isProg = pred.verdict === "prog";
  card.dataset.state = isProg ? "prog" : "nonprog";
  card.querySelector(".card-status").hidden = true;
  const verdict = card.querySelector(".verdict");
  verdict.textContent = isProg ? "Prog" : "Not prog";
  verdict.className = "verdict " + (isProg ? "is-prog" : "is-nonprog");
  card.querySelector(".stat-prob").textContent = pred.probability.toFixed(2);
  card.querySelector(".stat-votes").textContent = pred.vote_fraction == null ? "–"
    : `${Math.round(pred.vote_fraction * pred.n_snippets)} of ${pred.n_snippets}`;
  card.querySelector(".stat-duration").textContent = clock(pred.duration);
  card.querySelector(".card-model").textContent =
    `judged by ${modelTitle(pred.model)} · threshold ${pred.threshold.toFixed(2)}`;
  showFamiliarity(card, pred);
  card.querySelector(".card-result").hidden = false;

  const songLevel = pred.vote_fraction == null;
  const whole = card.querySelector(".whole-song");
  whole.hidden = !songLevel;
  whole.textContent = pred.n_snippets ? "This model judges the whole song; the stripes are the network's " +
    "snippets along it, to look at and listen to." : "This model judges the whole song: it has no snippets to show.";
  const box = card.querySelector(".barcode-box");
  box.hidden = pred.n_snippets === 0;
  if (pred.n_snippets > 0) {
    drawCardBarcode(card);
    if (resizer) resizer.observe(box);
  }
  showExplanation(card, pred);
  showTags(card, pred);
}

function showError(card, message) {
  card.dataset.state = "error";
  card.querySelector(".card-status").hidden = true;
  const box = card.querySelector(".card-error");
  const name = card.querySelector(".card-name").textContent;
  // The API names the file in its reason; the card already shows the name.
  const reason = message.startsWith(name + ": ") ? message.slice(name.length + 2) : message;
  box.textContent = "Could not classify: " + reason;
  box.hidden = false;
  box.setAttribute("role", "alert");
  card._error = message;
}

// ---- tally, filter, export --------------------------------------------------------------------

function counts() {
  const c = { all: 0, prog: 0, nonprog: 0, error: 0, pending: 0 };
  for (const card of cards()) {
    c[card.dataset.state] += 1;
    c.all += 1;
  }
  return c;
}

function updateTally() {
  const c = counts();
  const parts = [];
  const add = (n, text) => {
    if (!n) return;
    if (parts.length) parts.push(" · ");
    parts.push(el("b", null, String(n)), " " + text);
  };
  add(c.prog, "prog");
  add(c.nonprog, "not prog");
  add(c.error, "failed");
  add(c.pending, "in progress");
  $("tally").replaceChildren(...parts);
  for (const input of document.querySelectorAll('#filter input[name="filter"]')) {
    input.parentElement.querySelector(".count").textContent = `(${c[input.value]})`;
  }
  const done = shownCards().length;
  $("export-csv").disabled = $("export-json").disabled = done === 0;
}

function passes(card) {
  return state.filter === "all" || card.dataset.state === state.filter;
}

function applyFilter() {
  let shown = 0;
  for (const card of cards()) {
    card.hidden = !passes(card);
    shown += !card.hidden;
  }
  $("filter-empty").hidden = shown > 0 || cards().length === 0;
  updateTally();
}

// Finished songs the filter shows, in the page's order.
function shownCards() {
  return cards().filter((card) => passes(card) && (card._pred || card._error));
}

function exportCsv() {
  download(csvText(shownCards().filter((c) => c._pred).map((c) => c._pred)), "progrock-verdicts.csv",
           "text/csv;charset=utf-8");
}

function exportJson() {
  const records = shownCards().map((c) => c._pred || { path: c._file.name, error: c._error });
  download(jsonText(records), "progrock-verdicts.json", "application/json");
}

// ---- uploading --------------------------------------------------------------------------------

function classifyUrl(asked) {
  const q = new URLSearchParams();
  if (asked.model) q.set("model", asked.model);
  if (asked.tags) q.set("tags", "true");
  const s = q.toString();
  return "/api/classify" + (s ? "?" + s : "");
}

function upload(file, card) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", classifyUrl(card._asked));
    xhr.responseType = "json";
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) setStatus(card, `Uploading… ${Math.round((100 * ev.loaded) / ev.total)}%`);
    };
    xhr.upload.onload = () => setStatus(card, "Listening…");
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status === 200 && body && typeof body === "object") {
        resolve({ ok: true, pred: body });
      } else {
        const reason = (body && body.error) || `the server answered ${xhr.status} ${xhr.statusText}`;
        resolve({ ok: false, error: reason });
      }
    };
    xhr.onerror = () => resolve({ ok: false, error: "the upload failed (is the server still running?)" });
    const form = new FormData();
    form.append("file", file, file.name);
    setStatus(card, "Uploading…");
    xhr.send(form);
  });
}

function pump() {
  while (state.running < MAX_PARALLEL && state.queue.length) {
    const { file, card } = state.queue.shift();
    state.running += 1;
    upload(file, card).then((res) => {
      state.running -= 1;
      if (res.ok) showResult(card, res.pred);
      else if (card._asked.tags) showError(card, `${res.error} (the tagger's tags were asked for: untick ` +
                                             "“show what the tagger hears” to classify without them)");
      else showError(card, res.error);
      card.hidden = !passes(card);
      applyFilter();
      pump();
    });
  }
}

function addFiles(fileList) {
  const files = Array.from(fileList || []);
  const cap = state.model && state.model.max_upload_bytes;
  const select = $("model-select");
  const chosen = select.disabled ? null : select.value;
  const asked = { model: chosen && state.model && chosen !== state.model.default_model ? chosen : null,
                  tags: $("tags-toggle").checked };
  for (const file of files) {
    const card = newCard(file);
    card._file = file;
    card._asked = asked;
    if (cap && file.size > cap) {
      showError(card, `the file is larger than this server accepts (${formatBytes(cap)})`);
      continue;
    }
    if (file.size === 0) {
      showError(card, "empty file (0 bytes)");
      continue;
    }
    card._url = URL.createObjectURL(file);   // the song to play snippets from: the user's own file
    setStatus(card, "Waiting for a free slot…");
    state.queue.push({ file, card });
  }
  applyFilter();
  pump();
}

// ---- picking, dropping, options -----------------------------------------------------------------

function setUpInput() {
  const picker = $("picker"), drop = $("drop");
  $("choose").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    addFiles(picker.files);
    picker.value = "";           // picking the same file again classifies it again
  });
  let depth = 0;
  drop.addEventListener("dragenter", (ev) => { ev.preventDefault(); depth += 1; drop.classList.add("is-over"); });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy"; });
  drop.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) drop.classList.remove("is-over"); });
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    depth = 0;
    drop.classList.remove("is-over");
    if (ev.dataTransfer) addFiles(ev.dataTransfer.files);
  });
  // A song dropped beside the zone is classified too, instead of the browser navigating to it.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => {
    ev.preventDefault();
    if (!drop.contains(ev.target) && ev.dataTransfer) addFiles(ev.dataTransfer.files);
  });
  for (const input of document.querySelectorAll('#filter input[name="filter"]')) {
    input.addEventListener("change", () => { state.filter = input.value; applyFilter(); });
  }
  $("export-csv").addEventListener("click", exportCsv);
  $("export-json").addEventListener("click", exportJson);
}

// ---- the model card -----------------------------------------------------------------------------

function fact(parts) {
  const li = el("li");
  for (const p of parts) li.append(typeof p === "string" ? p : el("b", null, p.b));
  return li;
}

// The default model's test figure with its 95 % interval and the number of songs.
function headline(m) {
  const bal = m.metrics && m.metrics.balanced_accuracy;
  if (!bal || typeof bal.value !== "number") {
    return ["No test figure: this run has not been evaluated on test songs of its own."];
  }
  const n = bal.n || m.metrics.n;
  const iv = typeof bal.low === "number" && typeof bal.high === "number"
    ? ` (95 % interval ${bal.low.toFixed(2)}–${bal.high.toFixed(2)})`
    : " (no 95 % interval: too few songs to give one)";
  return [`Balanced accuracy on ${n} ${m.metrics.set || "test"} songs`,
          m.metrics.n_prog != null ? ` (${m.metrics.n_prog} prog)` : "", ": ", { b: bal.value.toFixed(2) }, iv,
          ` — ${modelTitle(m.default_model)}.`];
}

function trainedOn(m) {
  const t = m.trained_on || {};
  const songs = t.songs;
  const count = songs ? `${(songs.prog || 0) + (songs.nonprog || 0)} songs (${songs.prog || 0} prog, ` +
                        `${songs.nonprog || 0} not prog)` : null;
  if (t.synthetic) return `Trained on ${count || "songs"} of progrock's synthetic demo corpus — not real music.`;
  if (count) return `Trained on ${count} of real recordings${t.source ? ` (${t.source})` : ""}.`;
  return t.source ? `Trained on ${t.source}.` : "What this run was trained on is not recorded.";
}

function showModelList(m) {
  const items = Object.entries(m.models || {}).map(([name, e]) => {
    const li = el("li", name === m.default_model ? "is-default" : "");
    li.append(el("b", null, e.title), ` (${name}, ${e.rule} rule, threshold ${Number(e.threshold).toFixed(2)})`);
    if (name === m.default_model) li.append(el("span", "default-mark", "default"));
    return li;
  });
  $("model-list").replaceChildren(...items);
  const select = $("model-select");
  select.replaceChildren(...Object.entries(m.models || {}).map(([name, e]) => {
    const o = new Option(e.title + (name === m.default_model ? " (default)" : ""), name);
    o.selected = name === m.default_model;
    return o;
  }));
  select.disabled = select.options.length === 0;
}

function showModel(m) {
  state.model = m;
  if (m.warning) {
    const top = $("run-warning");
    top.querySelector(".run-warning-text").textContent = m.warning.charAt(0).toUpperCase() + m.warning.slice(1) + ".";
    top.hidden = false;
    $("about-warning").textContent = "Warning: " + m.warning + ".";
    $("about-warning").hidden = false;
  }
  const head = $("model-headline");
  head.replaceChildren(...headline(m).map((p) => (typeof p === "string" ? p : el("b", null, p.b))));
  $("model-trained").textContent = trainedOn(m);
  $("model-summary").textContent = m.summary;
  showModelList(m);

  const facts = [];
  if (m.network) facts.push(fact([{ b: String(m.network.n_features) }, ` features per frame (${m.feature_set})`]));
  else facts.push(fact([`reads the ${m.feature_set} features`]));
  if (m.snippet_seconds) facts.push(fact([{ b: `${Math.round(m.snippet_seconds)} s` }, " snippets"]));
  facts.push(fact(["threshold ", { b: m.threshold.toFixed(2) }]));
  facts.push(fact([{ b: m.n_parameters.toLocaleString("en") }, " parameters"]));
  facts.push(fact(["progrock ", { b: m.progrock_version }]));
  $("model-facts").replaceChildren(...facts);
  if (m.report_url) {
    const link = $("report-link");
    link.href = m.report_url;
    link.hidden = false;
  }
  $("drop-hint").textContent = `MP3, FLAC, Ogg, Opus, WAV, AIFF, M4A and more, several at once, up to ` +
    `${formatBytes(m.max_upload_bytes)} each. Songs are deleted from the server as soon as they are classified.`;
}

function loadModel() {
  fetch("/api/model")
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then(showModel)
    .catch((err) => { $("model-summary").textContent = `The model's description could not be loaded (${err.message}).`; });
}

// The legend's colour scale, from the same colour() as the stripes.
function drawLegend() {
  document.querySelector(".legend-ramp").style.backgroundImage =
    `linear-gradient(90deg, ${colour(0)}, ${colour(1)})`;
}

drawLegend();
setUpInput();
loadModel();
