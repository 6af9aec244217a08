// The barcode: a song's snippet probabilities as stripes along its timeline, as in
// progrock/report/barcode.py (the same colour scale, the same stretches).

// Colour scale, equal to progrock.report.barcode.colour: linear in RGB from a mid blue #7aa5d6
// (p = 0, clearly coloured: not the page's pale background, not the hatched "no snippet here")
// to a deep purple #581c87 (p = 1), each channel rounded half to even as numpy rounds.
export const LOW = [122, 165, 214];
export const HIGH = [88, 28, 135];

const SVG_NS = "http://www.w3.org/2000/svg";

function roundHalfEven(x) {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

export function colour(p) {
  const q = Math.min(1, Math.max(0, Number(p)));
  return "#" + LOW.map((lo, i) => roundHalfEven(lo + (HIGH[i] - lo) * q).toString(16).padStart(2, "0")).join("");
}

export function clock(t) {          // m:ss, to the nearest second (starts sit on frames: 19.99 s is 0:20)
  const s = Math.max(0, Math.round(t));
  return Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0");
}

// The stretch of the timeline each snippet owns: from its start to the next start (the last one
// its full length), as progrock.report.barcode.segments.
export function segments(starts, duration, len) {
  const ends = starts.slice(1).concat(starts.length ? [starts[starts.length - 1] + len] : []);
  const endOfSong = Math.max(duration, ends.length ? ends[ends.length - 1] : 0);
  return starts.map((a, i) => [a, Math.min(ends[i], endOfSong)]);
}

export function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function hatchPattern(id) {
  const pattern = svg("pattern", { id, width: 6, height: 6, patternUnits: "userSpaceOnUse",
                                   patternTransform: "rotate(45)" });
  pattern.append(svg("rect", { class: "hatch-paper", width: 6, height: 6, fill: "#f8f7fb" }),
                 svg("line", { class: "hatch-line", x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#e6e1ee",
                               "stroke-width": 3 }));
  return pattern;
}

function timeAxis(width, total, y0, x) {
  const axis = svg("g", { class: "axis" });
  axis.append(svg("line", { x1: 0, x2: width, y1: y0, y2: y0 }));
  const steps = [5, 10, 15, 30, 60, 120, 300, 600, 1200];
  const maxTicks = Math.max(2, Math.floor(width / 64));
  const step = steps.find((s) => total / s <= maxTicks) || 1800;
  for (let t = 0; t <= total + 1e-9; t += step) {
    const tx = x(t);
    axis.append(svg("line", { x1: tx, x2: tx, y1: y0, y2: y0 + 4 }));
    const label = svg("text", { x: tx, y: y0 + 16,
                                "text-anchor": t === 0 ? "start" : (tx > width - 20 ? "end" : "middle") });
    label.textContent = clock(t);
    axis.append(label);
  }
  return axis;
}

let patternCount = 0;

// Draw the barcode of one result into `box`. `hooks`: tip(rect, info) and untip() show and hide the
// tooltip; play(index) starts or stops that snippet; playing() is the index playing in this song
// (or -1). Returns the stripes and a function marking the playing one and the play head.
export function drawBarcode(box, pred, hooks) {
  const width = Math.max(240, Math.floor(box.clientWidth || 600));
  const stripH = 36, axisH = 22, top = 6;
  const len = pred.snippet_seconds;
  const starts = pred.snippet_starts, probs = pred.snippet_probs;
  const total = Math.max(pred.duration, starts.length ? starts[starts.length - 1] + len : 1, 1e-6);
  const x = (t) => (t / total) * width;
  const hatchId = `unheard-${++patternCount}`;

  const root = svg("svg", {
    class: "barcode", width, height: top + stripH + axisH, viewBox: `0 0 ${width} ${top + stripH + axisH}`,
    role: "group", tabindex: 0,
    "aria-label": `p(prog) of ${starts.length} snippets along the song: ` +
      starts.map((s, i) => `${clock(s)} ${probs[i].toFixed(2)}`).join(", ") +
      ". Arrow keys step through them; Enter or Space plays the snippet, again stops it.",
  });
  const defs = svg("defs");
  defs.append(hatchPattern(hatchId));
  root.append(defs);

  // The whole song, hatched where no snippet starts (the intro the model skips).
  const song = svg("rect", { class: "unheard", x: 0, y: top, width: x(pred.duration), height: stripH, rx: 3,
                             fill: `url(#${hatchId})` });
  const songTitle = svg("title");
  songTitle.textContent = "no snippet starts here";
  song.append(songTitle);
  root.append(song);

  const strip = svg("g", { class: "strip" });
  const rects = [];
  segments(starts, total, len).forEach(([a, b], i) => {
    const p = probs[i];
    const r = svg("rect", {
      class: "snippet", x: x(a).toFixed(2), y: top, width: Math.max(x(b) - x(a), 1.5).toFixed(2),
      height: stripH, fill: colour(p), stroke: "#ffffff", "stroke-width": 0.75,
      "data-index": i, "data-start": a, "data-prob": p,
    });
    r._info = { start: a, end: Math.min(a + len, total), p, index: i, count: starts.length,
                threshold: pred.threshold, votes: pred.vote_fraction != null };
    r.addEventListener("mouseenter", () => activate(i));
    r.addEventListener("mouseleave", () => deactivate());
    r.addEventListener("click", () => { activate(i); hooks.play(i); });
    rects.push(r);
    strip.append(r);
  });
  root.append(strip);

  // The window of the active snippet and the play head, drawn over the strip.
  const win = svg("rect", { class: "window", x: 0, y: top - 3, width: 0, height: stripH + 6, rx: 3 });
  win.style.display = "none";
  const head = svg("line", { class: "playhead", x1: 0, x2: 0, y1: top - 4, y2: top + stripH + 4 });
  head.style.display = "none";
  root.append(win, head, timeAxis(width, total, top + stripH + 4, x));

  let active = -1;
  function activate(i) {
    rects.forEach((r) => r.classList.remove("is-active"));
    active = i;
    const r = rects[i];
    r.classList.add("is-active");
    win.setAttribute("x", x(r._info.start).toFixed(2));
    win.setAttribute("width", Math.max(x(r._info.end) - x(r._info.start), 2).toFixed(2));
    win.style.display = "";
    hooks.tip(r, r._info);
  }
  function deactivate() {
    rects.forEach((r) => r.classList.remove("is-active"));
    win.style.display = "none";
    hooks.untip();
  }
  root.addEventListener("focus", () => { if (rects.length) activate(active >= 0 ? active : 0); });
  root.addEventListener("blur", deactivate);
  root.addEventListener("keydown", (ev) => {
    if (!rects.length) return;
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (ev.key in moves) {
      ev.preventDefault();
      activate(Math.max(0, Math.min(rects.length - 1, (active < 0 ? 0 : active) + moves[ev.key])));
    } else if (ev.key === "Home" || ev.key === "End") {
      ev.preventDefault();
      activate(ev.key === "Home" ? 0 : rects.length - 1);
    } else if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      if (active < 0) activate(0);
      hooks.play(active);
    } else if (ev.key === "Escape") {
      deactivate();
    }
  });

  box.replaceChildren(root);

  // Mark the playing stripe (index, or -1 for none) and put the play head at `time` seconds.
  function mark(index, time) {
    rects.forEach((r, i) => r.classList.toggle("is-playing", i === index));
    if (index >= 0 && Number.isFinite(time)) {
      head.setAttribute("x1", x(time).toFixed(2));
      head.setAttribute("x2", x(time).toFixed(2));
      head.style.display = "";
    } else {
      head.style.display = "none";
    }
  }
  mark(hooks.playing(), NaN);
  return mark;
}
