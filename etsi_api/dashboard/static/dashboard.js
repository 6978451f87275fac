// qkms dashboard: polls api/state about once a second and updates the page in place.
"use strict";

const POLL_MS = 1000;
const OVERLAP_S = 30;          // ask again for the last 30 s: samples recorded late are not missed
const KEEP_S = 600;            // chart window
const COLOURS = ["#2457c5", "#d23a2f", "#2e9e44", "#e0a106", "#8a6db1", "#0f8b8d", "#c2185b", "#5d4037"];

const series = new Map();      // "pool|owner" -> [[at, qber, rate, bits, state], ...]
const alarmsSeen = new Map();  // key -> alarm
const charts = {};
let since = 0;
let distanceLink = null;

function el(tag, attrs = {}, text = "") {
  const svg = ["svg", "g", "line", "circle", "text"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function fmtBits(bits) {
  if (bits === undefined || bits === null) return "-";
  if (bits >= 1e6) return (bits / 1e6).toFixed(2) + " Mbit";
  if (bits >= 1e3) return (bits / 1e3).toFixed(1) + " kbit";
  return bits + " bit";
}
const fmtPct = (x) => (x === undefined || x === null ? "-" : (100 * x).toFixed(2) + " %");
const fmtRate = (x) => (x === undefined || x === null ? "-" : Math.round(x).toLocaleString("en") + " bit/s");
const fmtTime = (t) => new Date(t * 1000).toLocaleTimeString("en-GB");

// --- topology --------------------------------------------------------------------------

function layout(nodes, links) {
  const ids = nodes.map((n) => n.id);
  const degree = Object.fromEntries(ids.map((id) => [id, 0]));
  links.forEach((l) => l.nodes.forEach((n) => { degree[n] = (degree[n] || 0) + 1; }));
  const isPath = links.length === ids.length - 1 && ids.every((id) => degree[id] <= 2);
  const pos = {};
  if (isPath && ids.length > 1) {
    let current = ids.find((id) => degree[id] === 1);
    const order = [];
    while (current && !order.includes(current)) {
      order.push(current);
      const next = links.map((l) => l.nodes).find((p) => p.includes(current) && !order.includes(p[0] === current ? p[1] : p[0]));
      current = next ? (next[0] === current ? next[1] : next[0]) : null;
    }
    ids.filter((id) => !order.includes(id)).forEach((id) => order.push(id));
    order.forEach((id, i) => { pos[id] = [90 + (i * 720) / Math.max(1, order.length - 1), 100]; });
  } else {
    ids.forEach((id, i) => {
      const a = (2 * Math.PI * i) / ids.length - Math.PI / 2;
      pos[id] = [450 + 300 * Math.cos(a), 105 + 75 * Math.sin(a)];
    });
  }
  return pos;
}

function ownerLevel(link) {
  return link.halves.filter((h) => h.available_bits !== undefined)
    .map((h) => `${h.owner}→ ${fmtBits(h.available_bits)}${h.role === "pqc" ? " (pqc)" : ""}`).join("  ");
}

function drawTopology(state) {
  const svg = document.getElementById("topology");
  const pos = layout(state.nodes, state.links);
  svg.replaceChildren();
  for (const link of state.links) {
    const [a, b] = link.nodes.map((n) => pos[n]);
    const g = el("g", { class: `link ${link.state}`, "data-link": link.id, "data-state": link.state });
    g.append(el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1] }));
    const mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2;
    g.append(el("text", { x: mx, y: my - 14 }, `${link.id} · ${link.policy} · ${link.state}`));
    g.append(el("text", { x: mx, y: my + 22, class: "level" }, ownerLevel(link)));
    const title = el("title", {}, link.halves.map((h) => `${h.pool} from ${h.owner}: ${h.state} ${h.reason || ""}`).join("\n"));
    g.append(title);
    svg.append(g);
  }
  for (const node of state.nodes) {
    const [x, y] = pos[node.id];
    const g = el("g", { class: "node" + (node.self ? " self" : ""), "data-node": node.id });
    g.append(el("circle", { cx: x, cy: y, r: 26 }));
    g.append(el("text", { x, y }, node.id));
    g.append(el("text", { x, y: y + 42, class: "saes" }, node.saes.join(", ")));
    svg.append(g);
  }
}

function drawHalves(state) {
  const body = document.querySelector("#halves tbody");
  body.replaceChildren();
  for (const link of state.links) {
    for (const h of link.halves) {
      const m = h.metrics || {};
      const row = el("tr", { "data-link": link.id, "data-owner": h.owner, "data-pool": h.pool });
      const cells = [link.id, h.pool, h.owner, null, fmtPct(m.qber), fmtRate(m.secret_rate_bps),
        fmtBits(h.available_bits), h.reason || ""];
      cells.forEach((text, i) => {
        const td = el("td", i === 3 ? { class: `state ${h.state}` } : i === 7 ? { class: "reason" } : {});
        if (i === 3) td.append(el("span", {}, h.state)); else td.textContent = text;
        row.append(td);
      });
      body.append(row);
    }
  }
}

// --- alarms ----------------------------------------------------------------------------

function addAlarms(alarms) {
  for (const a of alarms) alarmsSeen.set(`${a.at}|${a.link_id}|${a.owner}|${a.kind}|${a.severity}`, a);
  const list = document.getElementById("alarms");
  const sorted = [...alarmsSeen.values()].sort((x, y) => y.at - x.at).slice(0, 200);
  if (!sorted.length) return;
  list.replaceChildren(...sorted.map((a) => {
    const li = el("li", { class: a.severity, "data-link": a.link_id, "data-owner": a.owner, "data-at": a.at,
      "data-kind": a.kind, "data-severity": a.severity });
    li.append(el("time", {}, fmtTime(a.at)));
    li.append(document.createTextNode(`${a.link_id} (${a.owner}): ${a.message}`));
    return li;
  }));
}

function updateBanner(state) {
  const banner = document.getElementById("banner");
  const bad = state.links.flatMap((l) => l.halves.filter((h) => /eavesdropper/i.test(h.reason || "")
    && ["degraded", "down"].includes(h.state)).map((h) => `${l.id} (${h.owner})`));
  banner.hidden = bad.length === 0;
  banner.textContent = bad.length ? `Possible eavesdropper on ${[...new Set(bad)].join(", ")}` : "";
}

// --- time series -----------------------------------------------------------------------

function addSamples(samples) {
  const cutoff = Date.now() / 1000 - KEEP_S;
  for (const [half, points] of Object.entries(samples)) {
    const known = series.get(half) || [];
    const last = known.length ? known[known.length - 1][0] : -Infinity;
    known.push(...points.filter((p) => p[0] > last));
    series.set(half, known.filter((p) => p[0] >= cutoff));
  }
}

function aligned(column) {
  const halves = [...series.keys()].sort();
  const times = [...new Set(halves.flatMap((h) => series.get(h).map((p) => Math.round(p[0]))))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const data = [times];
  for (const h of halves) {
    const values = new Array(times.length).fill(null);
    for (const p of series.get(h)) values[index.get(Math.round(p[0]))] = p[column];
    data.push(values);
  }
  return { halves, data };
}

function chartFor(id, column, label, scale) {
  const { halves, data } = aligned(column);
  const target = document.getElementById(id);
  const key = halves.join(",");
  if (!charts[id] || charts[id].key !== key) {
    if (charts[id]) charts[id].plot.destroy();
    const opts = {
      width: Math.max(300, target.clientWidth), height: 220,
      scales: { x: { time: true }, y: scale || {} },
      axes: [{}, { label, size: 70, values: (u, vals) => vals.map((v) => (column === 1 ? (100 * v).toFixed(1) + "%" : v >= 1000 ? (v / 1000).toFixed(0) + "k" : v)) }],
      series: [{}, ...halves.map((h, i) => ({ label: h.replace("|", " from "), stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true }))],
    };
    charts[id] = { key, plot: new uPlot(opts, data, target) };
  } else {
    charts[id].plot.setData(data);
  }
}

// --- rate vs distance ------------------------------------------------------------------

function fillDistanceChoices(state) {
  const select = document.getElementById("rate-link");
  const simulated = state.links.filter((l) => l.local && l.kinds.includes("simulated")).map((l) => l.id);
  if (select.options.length === simulated.length) return;
  select.replaceChildren(...simulated.map((id) => el("option", { value: id }, id)));
  if (simulated.length && !distanceLink) { distanceLink = simulated[0]; loadDistance(); }
}

async function loadDistance() {
  const note = document.getElementById("distance-note");
  const response = await fetch(`api/rate-distance/${encodeURIComponent(distanceLink)}`, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) { note.textContent = body.message; setTimeout(loadDistance, 3000); return; }
  const positive = (xs) => xs.map((x) => (x > 0 ? x : null));
  const measured = body.lengths_km.map((L, i) => (i === nearest(body.lengths_km, body.length_km) && body.measured_bits_per_pulse > 0 ? body.measured_bits_per_pulse : null));
  const data = [body.lengths_km, positive(body.plob_bits_per_pulse), positive(body.decoy_bits_per_pulse), measured];
  const target = document.getElementById("chart-distance");
  if (charts.distance) charts.distance.plot.destroy();
  charts.distance = { plot: new uPlot({
    width: Math.max(300, target.clientWidth), height: 280,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: "fibre length (km)" },
      { label: "secret bits per pulse", size: 80, values: (u, vals) => vals.map((v) => (v == null ? "" : v.toExponential(0))) }],
    series: [{}, { label: "PLOB bound (Pirandola et al. 2017)", stroke: "#1d2330", width: 2, dash: [6, 4] },
      { label: `decoy BB84, asymptotic (μ=${body.mu}, ν=${body.nu})`, stroke: "#2457c5", width: 2 },
      { label: "this link, measured (finite key)", stroke: "#d23a2f", width: 0, points: { show: true, size: 10, fill: "#d23a2f" } }],
  }, data, target) };
  const reach = body.decoy_max_km >= body.lengths_km[body.lengths_km.length - 1] - 0.1
    ? `beyond ${body.decoy_max_km.toFixed(0)} km` : `up to ${body.decoy_max_km.toFixed(0)} km`;
  note.textContent = `${body.link}: ${body.preset} preset at ${body.length_km} km; decoy-state key ${reach}; `
    + `sifting factor ${body.sifting_factor.toFixed(3)}, ${(body.pulse_rate_hz / 1e9).toFixed(2)} GHz pulses.`;
}

function nearest(xs, x) {
  let best = 0;
  xs.forEach((v, i) => { if (Math.abs(v - x) < Math.abs(xs[best] - x)) best = i; });
  return best;
}

// --- the loop --------------------------------------------------------------------------

function apply(state) {
  document.getElementById("node-name").textContent = `node ${state.node}`;
  drawTopology(state);
  drawHalves(state);
  addSamples(state.samples);
  addAlarms(state.alarms);
  updateBanner(state);
  chartFor("chart-qber", 1, "QBER", { range: (u, min, max) => [0, Math.max(0.05, max || 0)] });
  chartFor("chart-rate", 2, "bit/s");
  chartFor("chart-pool", 3, "bits");
  fillDistanceChoices(state);
  const lm = state.link_manager;
  const status = document.getElementById("status");
  status.className = "status";
  status.textContent = `link manager ${lm.state}${lm.restarts ? `, ${lm.restarts} restarts` : ""} · updated ${fmtTime(state.now)}`;
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
  document.body.dataset.updatedAt = String(state.now);
}

async function poll() {
  try {
    const response = await fetch(`api/state?since=${since}`, { cache: "no-store" });
    const state = await response.json();
    if (!response.ok) throw new Error(state.message || response.statusText);
    apply(state);
    since = Math.max(0, state.now - OVERLAP_S);
  } catch (error) {
    const status = document.getElementById("status");
    status.className = "status error";
    status.textContent = `no answer from the node: ${error.message}`;
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("rate-link").addEventListener("change", (event) => {
  distanceLink = event.target.value;
  loadDistance();
});
poll();
