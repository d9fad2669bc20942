// instructgpt board: lists the runs, draws each stage's metric curves as SVG (no library), polls for new
// points by byte offset, shows reports, eval tables and samples, and compares runs.
"use strict";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const POLL_MS = 1500;
// panels: {panel: [metric keys]}, from /api/runs (the server's list of plotted keys)
const state = {runs: [], chosen: null, selected: new Set(), series: {}, offsets: {}, readOnly: true, panels: {},
  logScale: false, curves: null};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "polyline", "circle", "line", "text", "g", "rect"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body)};
  const res = await fetch(path, init);
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function say(text) { $("message").textContent = text; }

async function refreshRuns() {
  const data = await api("/api/runs");
  state.runs = data.runs;
  state.readOnly = data.read_only;
  state.now = data.now;
  state.panels = data.panels;
  $("mode").textContent = data.read_only ? "read-only" : "";
  $("start-box").hidden = data.read_only || data.recipes.length === 0;
  const select = $("recipe");
  if (select.options.length !== data.recipes.length) {
    select.replaceChildren(...data.recipes.map((r) => el("option", {value: r}, r)));
  }
  drawRunTable();
}

function drawRunTable() {
  const rows = state.runs.map((run) => {
    const box = el("input", {type: "checkbox", onclick: (e) => { e.stopPropagation(); toggle(run.id, box.checked); }});
    box.checked = state.selected.has(run.id);
    const live = run.job === "running" || run.stages.some((s) => s.pid != null);  // a process to interrupt
    const stop = live && !state.readOnly
      ? el("button", {class: "stop", onclick: (e) => { e.stopPropagation(); stopRun(run.id); }}, "Stop") : "";
    return el("tr", {class: "run" + (run.id === state.chosen ? " chosen" : ""), "data-run": run.id,
      onclick: () => choose(run.id)}, el("td", {}, box), el("td", {}, run.id), el("td", {}, run.kind),
      el("td", {class: "status-" + run.status.replace(" ", ".")}, run.status),
      el("td", {class: "age"}, age(run.updated)), el("td", {}, stop));
  });
  $("runs").tBodies[0].replaceChildren(...rows);
  $("compare").disabled = state.selected.size < 2;
}

function toggle(id, on) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  $("compare").disabled = state.selected.size < 2;
}

function choose(id) {
  state.chosen = id;
  state.series = {};
  state.offsets = {};
  drawRunTable();
  drawRun();
}

function currentRun() { return state.runs.find((r) => r.id === state.chosen); }

function drawRun() {
  const run = currentRun();
  if (!run) return;
  const reports = run.reports.map((name) => el("button", {onclick: () => showReport(run.id, name)}, name));
  $("detail").replaceChildren(el("h2", {}, run.id), el("div", {id: "stages-box"}), el("h3", {}, "Curves ", logToggle()),
    el("div", {id: "charts"}), el("div", {id: "reports"}, ...reports), el("div", {id: "report"}),
    el("div", {id: "evals"}));
  drawStages(run);
  pollMetrics();
  showEvals(run.id);
}

function drawStages(run) {
  const head = el("tr", {}, ...["stage", "kind", "status", "seconds", "last write", "error"].map((h) => el("th", {}, h)));
  const rows = run.stages.map((s) => el("tr", {"data-stage": s.name}, el("td", {}, s.name), el("td", {}, s.kind),
    el("td", {class: "status-" + s.status.replace(" ", ".")}, s.status),
    el("td", {}, s.seconds == null ? "" : s.seconds.toFixed(1)), el("td", {class: "age"}, age(s.updated)),
    el("td", {}, s.error || "")));
  $("stages-box").replaceChildren(el("table", {id: "stages"}, head, ...rows));
}

async function pollMetrics() {
  const run = currentRun();
  if (!run) return;
  for (const s of run.stages.filter((x) => x.has_metrics)) {
    const off = state.offsets[s.name] || 0;
    const q = new URLSearchParams({run: run.id, stage: s.name, offset: off});
    const chunk = await api("/api/metrics?" + q);
    if (chunk.offset < off) state.series[s.name] = {};  // the file was rewritten (a resumed run)
    const series = state.series[s.name] = state.series[s.name] || {};
    for (const [k, pts] of Object.entries(chunk.points)) series[k] = (series[k] || []).concat(pts);
    state.offsets[s.name] = chunk.offset;
  }
  drawCharts($("charts"), {[run.id]: state.series});
}

// The "log scale" box of the loss panels (they span orders of magnitude early in training).
function logToggle() {
  const box = el("input", {type: "checkbox", id: "log-scale", onchange: () => {
    state.logScale = box.checked;
    if (state.curves) drawCharts(state.curves.box, state.curves.data);
  }});
  box.checked = state.logScale;
  return el("label", {class: "toggle"}, box, " log scale (loss)");
}

// curves: {runId: {stage: {metric: [[step, value]]}}}; per stage a heading and its charts, one chart per
// panel with data, a line per run and metric.
function drawCharts(box, curves) {
  if (!box) return;
  state.curves = {box, data: curves};
  const groups = [];
  const stages = new Set(Object.values(curves).flatMap((c) => Object.keys(c)));
  for (const stage of stages) {
    const charts = [];
    for (const [panel, keys] of Object.entries(state.panels)) {
      const lines = [];
      for (const [runId, c] of Object.entries(curves)) {
        for (const k of keys) if (c[stage] && c[stage][k] && c[stage][k].length) lines.push({label: (Object.keys(curves).length > 1 ? runId + " " : "") + k, pts: c[stage][k]});
      }
      if (lines.length) charts.push(chart(stage, panel, lines, panel === "loss" && state.logScale));
    }
    if (charts.length) groups.push(el("div", {class: "stage-charts", "data-stage": stage}, el("h4", {}, stage), el("div", {class: "charts"}, ...charts)));
  }
  box.replaceChildren(...groups);
}

// The legend's rows: labels placed left to right, wrapped at the chart's width (about 6 px a character).
function legendRows(lines, left, width) {
  const rows = [[]];
  let x = left;
  for (const [i, l] of lines.entries()) {
    const w = 14 + 6 * l.label.length;
    if (x + w > left + width && rows[rows.length - 1].length) { rows.push([]); x = left; }
    rows[rows.length - 1].push({i, x, label: l.label});
    x += w;
  }
  return rows;
}

function chart(stage, panel, lines, log) {
  const W = 360, H = 212, L = 48, B = 24, R = 8;
  const legend = legendRows(lines, L, W - L - R);
  const T = 20 + 12 * legend.length;  // the top margin holds the title and the legend, above the plot
  const ys = (v) => log ? Math.log10(v) : v;
  const shown = lines.map((l) => ({...l, pts: log ? l.pts.filter((p) => p[1] > 0) : l.pts}));
  const all = shown.flatMap((l) => l.pts);
  const [x0, x1] = extent(all.map((p) => p[0])), [y0, y1] = extent(all.map((p) => ys(p[1])));
  const sx = (x) => L + (x - x0) / (x1 - x0 || 1) * (W - L - R), sy = (y) => H - B - (ys(y) - y0) / (y1 - y0 || 1) * (H - B - T);
  const top = log ? fmt(10 ** y1) : fmt(y1), bottom = log ? fmt(10 ** y0) : fmt(y0);
  const svg = el("svg", {class: "chart", width: W, height: H, "data-stage": stage, "data-panel": panel,
      "data-points": all.length, "data-scale": log ? "log" : "linear"},
    el("text", {x: L, y: 12}, `${panel}${log ? " (log scale)" : ""}`), el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}),
    el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}),
    el("text", {x: 2, y: T + 8}, top), el("text", {x: 2, y: H - B}, bottom),
    el("text", {x: L, y: H - 6}, fmt(x0)), el("text", {x: W - R - 30, y: H - 6}, fmt(x1)));
  const marks = [];
  shown.forEach((l, i) => {
    const color = COLORS[i % COLORS.length];
    svg.append(el("polyline", {fill: "none", stroke: color, "stroke-width": 1.5, points: l.pts.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" ")}));
    if (l.pts.length < 40) l.pts.forEach((p) => svg.append(el("circle", {class: "pt", cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: color})));
    l.pts.forEach((p) => marks.push({x: sx(p[0]), y: sy(p[1]), label: l.label, p, color}));
  });
  legend.forEach((row, r) => row.forEach((item) => svg.append(el("text", {class: "legend", x: item.x, y: 25 + 12 * r, style: `fill: ${COLORS[item.i % COLORS.length]}`}, "— " + item.label))));
  hover(svg, `${stage}/${panel}`, marks, W, T);
  return svg;
}

// Hovering a chart marks the nearest point and shows its metric, step and value; the mouse's place is
// kept (state.hover), so a chart redrawn by the polling under the mouse shows it again.
function hover(svg, key, marks, W, T) {
  const dot = el("circle", {class: "hover-dot", r: 4, fill: "none", stroke: "#000", visibility: "hidden"});
  const box = el("rect", {class: "tip-box", fill: "#fff", stroke: "#999", height: 16, visibility: "hidden"});
  const tip = el("text", {class: "tip", visibility: "hidden"});
  svg.append(dot, box, tip);
  const show = (mx, my) => {
    let best = null, dist = Infinity;
    for (const m of marks) {
      const d = (m.x - mx) ** 2 + (m.y - my) ** 2;
      if (d < dist) { best = m; dist = d; }
    }
    if (!best) return;
    tip.textContent = `${best.label} step ${best.p[0]}: ${fmt(best.p[1])}`;
    const w = 6 * tip.textContent.length + 8, x = Math.min(Math.max(best.x - w / 2, 0), W - w);
    const y = best.y - 22 < T ? best.y + 8 : best.y - 22;  // below the point when above would leave the plot
    for (const [node, attrs] of [[dot, {cx: best.x, cy: best.y, stroke: best.color}], [box, {x, y, width: w}], [tip, {x: x + 4, y: y + 12}]]) {
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      node.setAttribute("visibility", "visible");
    }
  };
  svg.addEventListener("mousemove", (e) => {
    const at = svg.getBoundingClientRect();
    state.hover = {key, mx: e.clientX - at.left, my: e.clientY - at.top};
    show(state.hover.mx, state.hover.my);
  });
  svg.addEventListener("mouseleave", () => {
    state.hover = null;
    [dot, box, tip].forEach((n) => n.setAttribute("visibility", "hidden"));
  });
  if (state.hover && state.hover.key === key) show(state.hover.mx, state.hover.my);
}

// How long ago a stage's files last changed: a "running" stage silent for long was likely killed.
function age(updated) {
  if (updated == null) return "";
  const s = Math.max(0, state.now - updated);
  return s < 120 ? `${Math.round(s)} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function extent(values) { return [Math.min(...values), Math.max(...values)]; }
function fmt(v) { return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : +v.toFixed(3); }

async function showReport(runId, name) {
  const data = await api("/api/report?" + new URLSearchParams({run: runId, name}));
  $("report").replaceChildren(name.endsWith(".html")
    ? el("iframe", {class: "report", sandbox: "", srcdoc: data.text}) : el("pre", {class: "report"}, data.text));
}

async function showEvals(runId) {
  const list = await api("/api/evals?" + new URLSearchParams({run: runId}));
  $("evals").replaceChildren(...list.flatMap((e) => [el("h3", {}, `Eval: ${e.stage}`), evalTable([e]), samples(e.samples)]));
}

function evalTable(evals) {
  const rows = evals.flatMap((e) => e.summary.map((r) => ({...r, run: e.run || ""})));
  const cols = ["run", "family", "lang", "split", "metric", "model", "score"].filter((c) => rows.some((r) => r[c] !== undefined && r[c] !== ""));
  return el("table", {class: "eval"}, el("tr", {}, ...cols.map((c) => el("th", {}, c))),
    ...rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", {}, typeof r[c] === "number" ? fmt(r[c]) : (r[c] ?? ""))))));
}

// Eval samples ({id, task, prompt, reference, outputs: {model: answer}}): one row per prompt, an answer per column.
function samples(list) {
  if (!list.length) return "";
  const models = [...new Set(list.flatMap((s) => Object.keys(s.outputs || {})))];
  const head = el("tr", {}, ...["task", "prompt", "reference", ...models].map((c) => el("th", {}, c)));
  const rows = list.map((s) => el("tr", {}, el("td", {}, `${s.task} (${s.id})`), el("td", {}, s.prompt),
    el("td", {}, s.reference ?? ""), ...models.map((m) => el("td", {}, (s.outputs || {})[m] ?? ""))));
  return el("details", {class: "samples"}, el("summary", {}, `${list.length} samples, answers side by side`),
    el("table", {}, head, ...rows));
}

async function showCompare() {
  const ids = [...state.selected];
  const q = new URLSearchParams(ids.map((id) => ["run", id]));
  const view = await api("/api/compare?" + q);
  state.chosen = null;
  drawRunTable();
  const curves = Object.fromEntries(ids.map((id) => [id, view.runs[id].curves]));
  const evals = ids.flatMap((id) => view.runs[id].evals.map((e) => ({...e, run: id})));
  const box = el("div", {id: "compare-charts"});
  $("detail").replaceChildren(el("h2", {}, "Compare: " + ids.join(", ")), evalTable(evals), el("h3", {}, "Curves ", logToggle()), box, samples(view.samples));
  drawCharts(box, curves);
}

async function startRecipe() {
  try { const r = await api("/api/start", {recipe: $("recipe").value}); say(`started ${r.run}`); await refreshRuns(); }
  catch (err) { say(err.message); }
}

async function stopRun(id) {
  try { await api("/api/stop", {run: id}); say(`stopped ${id}`); await refreshRuns(); } catch (err) { say(err.message); }
}

async function tick() {
  try {
    await refreshRuns();
    if (currentRun()) {
      await pollMetrics();
      drawStages(currentRun());
      const reports = currentRun().reports;
      if (reports.length !== $("reports").children.length) {  // the run wrote its report since
        $("reports").replaceChildren(...reports.map((name) => el("button", {onclick: () => showReport(state.chosen, name)}, name)));
        showEvals(state.chosen);
      }
    }
  } catch (err) { say(err.message); }
  setTimeout(tick, POLL_MS);
}

$("compare").addEventListener("click", showCompare);
$("start").addEventListener("click", startRecipe);
tick();
