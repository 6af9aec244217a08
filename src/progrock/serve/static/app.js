// progrock page: drop songs, send each to POST /api/classify, show the verdict and its barcode.
// Plain JavaScript, no build step, nothing loaded from the internet.
"use strict";

(function () {
  const MAX_PARALLEL = 3;            // uploads in flight at once (one request per song)
  const SNIPPET_SECONDS_FALLBACK = 10;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // Same colour scale as progrock/report/barcode.py: pale #eceff1 (p = 0) to deep purple #581c87 (p = 1).
  const LOW = [236, 239, 241];
  const HIGH = [88, 28, 135];

  const state = {
    model: null,                      // GET /api/model, once loaded
    queue: [],                        // songs waiting for an upload slot
    running: 0,
    counts: { prog: 0, nonprog: 0, error: 0, pending: 0 },
  };

  const $ = (id) => document.getElementById(id);

  // ---- small helpers ------------------------------------------------------------------------

  function roundHalfEven(x) {        // numpy's rounding, so colours equal the report's exactly
    const r = Math.round(x);
    return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
  }

  function colour(p) {
    const q = Math.min(1, Math.max(0, Number(p)));
    return "#" + LOW.map((lo, i) => roundHalfEven(lo + (HIGH[i] - lo) * q).toString(16).padStart(2, "0")).join("");
  }

  function clock(t) {                // m:ss, to the nearest second (starts sit on frames: 19.99 s is 0:20)
    const s = Math.max(0, Math.round(t));
    return Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0");
  }

  function formatBytes(n) {
    const fixed = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
    if (n >= 1 << 30) return fixed(n / (1 << 30)) + " GB";
    if (n >= 1 << 20) return fixed(n / (1 << 20)) + " MB";
    if (n >= 1 << 10) return Math.round(n / (1 << 10)) + " KB";
    return n + " bytes";
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function snippetSeconds() {
    return (state.model && state.model.snippet_seconds) || SNIPPET_SECONDS_FALLBACK;
  }

  // The stretch of the timeline each snippet owns: from its start to the next start (the last one
  // its full length), as progrock.report.barcode.segments.
  function segments(starts, duration, len) {
    const ends = starts.slice(1).concat(starts.length ? [starts[starts.length - 1] + len] : []);
    const endOfSong = Math.max(duration, ends.length ? ends[ends.length - 1] : 0);
    return starts.map((a, i) => [a, Math.min(ends[i], endOfSong)]);
  }

  // ---- the tooltip ----------------------------------------------------------------------------

  const tooltip = $("tooltip");

  function showTip(rect, info) {
    tooltip.replaceChildren();
    const time = document.createElement("div");
    time.className = "tip-time";
    time.textContent = `${clock(info.start)}–${clock(info.end)}`;
    const line = document.createElement("div");
    const swatch = document.createElement("span");
    swatch.className = "tip-swatch";
    swatch.style.background = colour(info.p);
    line.append(swatch, `p(prog) ${info.p.toFixed(2)} · ${info.p >= info.threshold ? "votes prog" : "votes not prog"}`);
    const which = document.createElement("div");
    which.textContent = `snippet ${info.index + 1} of ${info.count}`;
    which.style.opacity = "0.75";
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

  // ---- the barcode ----------------------------------------------------------------------------

  function drawBarcode(box, pred) {
    const width = Math.max(240, Math.floor(box.clientWidth || 600));
    const stripH = 36, axisH = 22, top = 6;
    const len = pred.snippet_seconds || snippetSeconds();
    const starts = pred.snippet_starts, probs = pred.snippet_probs;
    const total = Math.max(pred.duration, starts.length ? starts[starts.length - 1] + len : 1, 1e-6);
    const x = (t) => (t / total) * width;

    const root = svg("svg", {
      class: "barcode", width, height: top + stripH + axisH, viewBox: `0 0 ${width} ${top + stripH + axisH}`,
      role: "img", tabindex: 0,
      "aria-label": `p(prog) of ${starts.length} snippets along the song: ` +
        starts.map((s, i) => `${clock(s)} ${probs[i].toFixed(2)}`).join(", ") +
        ". Use the arrow keys to step through them.",
    });
    const defs = svg("defs");
    const pattern = svg("pattern", { id: "unheard", width: 6, height: 6, patternUnits: "userSpaceOnUse",
                                     patternTransform: "rotate(45)" });
    pattern.append(svg("rect", { width: 6, height: 6, fill: "#f8f7fb" }),
                   svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#e6e1ee", "stroke-width": 3 }));
    defs.append(pattern);
    root.append(defs);

    // The whole song, hatched where no snippet starts (the intro the model skips).
    const song = svg("rect", { class: "unheard", x: 0, y: top, width: x(pred.duration), height: stripH, rx: 3 });
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
      const info = { start: a, end: Math.min(a + len, total), p, index: i, count: starts.length,
                     threshold: pred.threshold };
      r.addEventListener("mouseenter", () => activate(i));
      r.addEventListener("mouseleave", () => deactivate());
      r._info = info;
      rects.push(r);
      strip.append(r);
    });
    root.append(strip);

    // The 10-second window of the active snippet, drawn over the strip.
    const win = svg("rect", { class: "window", x: 0, y: top - 3, width: 0, height: stripH + 6, rx: 3 });
    win.style.display = "none";
    root.append(win);

    // Time axis.
    const axis = svg("g", { class: "axis" });
    const y0 = top + stripH + 4;
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
    root.append(axis);

    let active = -1;
    function activate(i) {
      rects.forEach((r) => r.classList.remove("is-active"));
      active = i;
      const r = rects[i];
      r.classList.add("is-active");
      const info = r._info;
      win.setAttribute("x", x(info.start).toFixed(2));
      win.setAttribute("width", Math.max(x(info.end) - x(info.start), 2).toFixed(2));
      win.style.display = "";
      showTip(r, info);
    }
    function deactivate() {
      rects.forEach((r) => r.classList.remove("is-active"));
      win.style.display = "none";
      hideTip();
    }
    root.addEventListener("focus", () => activate(active >= 0 ? active : 0));
    root.addEventListener("blur", () => { deactivate(); });
    root.addEventListener("keydown", (ev) => {
      const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
      if (ev.key in moves) {
        ev.preventDefault();
        activate(Math.max(0, Math.min(rects.length - 1, (active < 0 ? 0 : active) + moves[ev.key])));
      } else if (ev.key === "Home" || ev.key === "End") {
        ev.preventDefault();
        activate(ev.key === "Home" ? 0 : rects.length - 1);
      } else if (ev.key === "Escape") {
        deactivate();
      }
    });

    box.replaceChildren(root);
  }

  // Redraw barcodes when their card changes width.
  const resizer = ("ResizeObserver" in window) ? new ResizeObserver((entries) => {
    for (const e of entries) {
      const box = e.target;
      if (box._pred && Math.abs((box._width || 0) - box.clientWidth) > 2) {
        box._width = box.clientWidth;
        drawBarcode(box, box._pred);
      }
    }
  }) : null;

  // ---- cards --------------------------------------------------------------------------------

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

  function showResult(card, pred) {
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
    const result = card.querySelector(".card-result");
    result.hidden = false;
    const box = card.querySelector(".barcode-box");
    box._pred = pred;
    box._width = box.clientWidth;
    drawBarcode(box, pred);
    if (resizer) resizer.observe(box);
  }

  function showError(card, message) {
    card.dataset.state = "error";
    card.querySelector(".card-status").hidden = true;
    const el = card.querySelector(".card-error");
    const name = card.querySelector(".card-name").textContent;
    // The API names the file in its reason; the card already shows the name.
    const reason = message.startsWith(name + ": ") ? message.slice(name.length + 2) : message;
    el.textContent = "Could not classify: " + reason;
    el.hidden = false;
    el.setAttribute("role", "alert");
  }

  function updateTally() {
    const c = state.counts;
    const parts = [];
    const add = (n, text) => {
      if (!n) return;
      const b = document.createElement("b");
      b.textContent = String(n);
      if (parts.length) parts.push(" · ");
      parts.push(b, " " + text);
    };
    add(c.prog, "prog");
    add(c.nonprog, "not prog");
    add(c.error, "failed");
    add(c.pending, "still listening");
    $("tally").replaceChildren(...parts);
  }

  // ---- uploads: one request per song, a few at once ----------------------------------------

  function upload(file, card) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/classify");
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
        state.counts.pending -= 1;
        if (res.ok) {
          showResult(card, res.pred);
          state.counts[res.pred.verdict === "prog" ? "prog" : "nonprog"] += 1;
        } else {
          showError(card, res.error);
          state.counts.error += 1;
        }
        updateTally();
        pump();
      });
    }
  }

  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    const cap = state.model && state.model.max_upload_bytes;
    for (const file of files) {
      const card = newCard(file);
      if (cap && file.size > cap) {
        showError(card, `the file is larger than this server accepts (${formatBytes(cap)})`);
        state.counts.error += 1;
        continue;
      }
      if (file.size === 0) {
        showError(card, "empty file (0 bytes)");
        state.counts.error += 1;
        continue;
      }
      state.counts.pending += 1;
      setStatus(card, "Waiting for a free slot…");
      state.queue.push({ file, card });
    }
    updateTally();
    pump();
  }

  // ---- picking and dropping -------------------------------------------------------------------

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
  }

  // ---- the model's description ------------------------------------------------------------------

  function fact(parts) {
    const li = document.createElement("li");
    for (const p of parts) {
      if (typeof p === "string") li.append(p);
      else { const b = document.createElement("b"); b.textContent = p.b; li.append(b); }
    }
    return li;
  }

  function showModel(m) {
    state.model = m;
    $("model-summary").textContent = m.summary;
    const facts = [];
    if (m.network) facts.push(fact([{ b: String(m.network.n_features) }, ` features per frame (${m.feature_set})`]));
    else facts.push(fact([`reads the ${m.feature_set} features`]));
    if (m.snippet_seconds) facts.push(fact([{ b: `${Math.round(m.snippet_seconds)} s` }, " snippets"]));
    facts.push(fact(["threshold ", { b: m.threshold.toFixed(2) }]));
    const bal = m.metrics && m.metrics.balanced_accuracy;
    if (bal && typeof bal.value === "number") {
      const iv = typeof bal.low === "number" ? ` (95 % interval ${bal.low.toFixed(2)}–${bal.high.toFixed(2)})` : "";
      facts.push(fact([`${m.metrics.set} songs: balanced accuracy `, { b: bal.value.toFixed(2) }, iv,
                       m.metrics.n ? ` on ${m.metrics.n} songs` : ""]));
    }
    const t = m.trained_on || {};
    if (t.songs) {
      facts.push(fact(["trained on ", { b: String((t.songs.prog || 0) + (t.songs.nonprog || 0)) },
                       ` songs (${t.songs.prog || 0} prog)`, t.synthetic ? " of the synthetic demo corpus" : ""]));
    }
    facts.push(fact([{ b: m.n_parameters.toLocaleString("en") }, " parameters"]));
    facts.push(fact(["progrock ", { b: m.progrock_version }]));
    $("model-facts").replaceChildren(...facts);
    if (m.report_url) {
      const link = $("report-link");
      link.href = m.report_url;
      link.hidden = false;
    }
    const hint = $("drop-hint");
    hint.textContent = `MP3, FLAC, Ogg, Opus, WAV, AIFF, M4A and more, several at once, up to ` +
      `${formatBytes(m.max_upload_bytes)} each. Songs are deleted from the server as soon as they are classified.`;
  }

  function loadModel() {
    fetch("/api/model")
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then(showModel)
      .catch((err) => { $("model-summary").textContent = `The model's description could not be loaded (${err.message}).`; });
  }

  setUpInput();
  loadModel();
})();
