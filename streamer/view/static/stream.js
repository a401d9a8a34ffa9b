// One stream's page: its annotated frames (MJPEG in the <img>), its status live, and the
// last minute of pose, expression and emotion per person as curves on <canvas>.
"use strict";

const streamId = decodeURIComponent(location.pathname.replace(/^\/streams\//, ""));
const base = "/api/streams/" + encodeURIComponent(streamId);
const PALETTE = ["#ff6b6b", "#4dd4ac", "#6c8cff", "#f2b84b", "#c77dff", "#5ad1f0", "#ff9f43"];
const GROUPS = [   // what each chart shows: the points' field, its value range and ticks
  { key: "pose", title: "pose °", min: -90, max: 90, ticks: [-60, -30, 0, 30, 60] },
  { key: "expression", title: "expression", min: 0, max: 1, ticks: [0.25, 0.5, 0.75] },
  { key: "emotion", title: "emotion", min: 0, max: 1, ticks: [0.25, 0.5, 0.75] },
];
const GAP_S = 2;   // a curve is broken where its person was not seen for this long
let historyS = 60;

document.getElementById("title").textContent = streamId;
document.title = "facestream · " + streamId;
document.getElementById("live").src = base + "/frames.mjpg";

const stop = document.getElementById("stop");
stop.onclick = async () => {
  stop.disabled = true;
  try { await apiCall("DELETE", base); } catch (err) { alert(err.message); stop.disabled = false; }
};

followStreams((list, problem) => {
  const stats = document.getElementById("stats"), state = document.getElementById("state");
  if (problem) { stats.textContent = problem; return; }
  const s = list.find((x) => x.id === streamId);
  if (!s) { state.className = "pill"; state.textContent = "unknown"; stats.textContent = "no such stream"; return; }
  state.className = "pill " + s.state;
  state.textContent = s.state;
  state.title = s.last_error || "";
  stats.textContent = `${fmt(s.processed_fps, 1)} fps of ${fmt(s.source_fps, 1)} · lag ${fmt(s.lag_s, 2)} s · ` +
    `dropped ${s.dropped_frames} · ${s.frames} frames · ${s.faces} faces`;
  stop.hidden = !ACTIVE.has(s.state);
});

// ---- curves ---------------------------------------------------------------------------
const curves = facestreamView.curves;   // person -> points, oldest first
const cards = {};
let drawPending = false;

const events = new EventSource(base + "/curves");
events.onmessage = (e) => {
  const data = JSON.parse(e.data);
  if (data.names) { facestreamView.names = data.names; historyS = data.history_s; }
  for (const p of data.points) (curves[p.person] = curves[p.person] || []).push(p);
  const newest = Math.max(0, ...Object.values(curves).map((pts) => pts.length ? pts[pts.length - 1].t : 0));
  for (const [who, pts] of Object.entries(curves)) {
    const keep = pts.findIndex((p) => p.t >= newest - historyS);
    if (keep < 0) delete curves[who]; else if (keep > 0) pts.splice(0, keep);
  }
  facestreamView.newest = newest;
  if (!drawPending) { drawPending = true; setTimeout(() => { drawPending = false; drawAll(); }, 100); }
};

function card(who) {
  if (cards[who]) return cards[who];
  const names = facestreamView.names;
  const emotion = el("span", { class: "emotion" });
  const node = el("div", { class: "card person", "data-person": who }, el("h3", {}, el("span", { text: who }), emotion));
  const charts = {};
  for (const g of GROUPS) {
    const keys = names[g.key].map((n, i) => {
      const key = el("span", { class: "key", text: n });
      key.style.setProperty("--c", PALETTE[i % PALETTE.length]);
      return key;
    });
    const canvas = el("canvas", { "data-group": g.key });
    node.append(el("div", { class: "chart" }, el("div", { class: "label" }, el("b", { text: g.title }), ...keys), canvas));
    charts[g.key] = canvas;
  }
  cards[who] = { node, charts, emotion };
  return cards[who];
}

function drawAll() {
  const box = document.getElementById("persons");
  const people = Object.keys(curves).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  for (const who of Object.keys(cards)) if (!curves[who]) { cards[who].node.remove(); delete cards[who]; }
  document.getElementById("no-persons").hidden = people.length > 0;
  for (const who of people) {
    const c = card(who);
    if (!c.node.isConnected) box.append(c.node);
    const pts = curves[who];
    c.emotion.textContent = pts[pts.length - 1].label || "";
    for (const g of GROUPS) drawChart(c.charts[g.key], pts, g, facestreamView.newest);
  }
}

function drawChart(canvas, pts, group, tEnd) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(100, Math.round(canvas.clientWidth * dpr)), h = Math.round(110 * dpr);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  const left = 34 * dpr, pad = 4 * dpr;
  const x = (t) => left + (w - left - pad) * (1 - (tEnd - t) / historyS);
  const y = (v) => pad + (h - 2 * pad) * (1 - (Math.max(group.min, Math.min(group.max, v)) - group.min) / (group.max - group.min));
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#0c1015";
  ctx.fillRect(left, 0, w - left, h);
  ctx.strokeStyle = "#27303b"; ctx.fillStyle = "#8795a5"; ctx.lineWidth = 1;
  ctx.font = `${10 * dpr}px system-ui, sans-serif`; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const tick of group.ticks) {
    ctx.beginPath(); ctx.moveTo(left, y(tick)); ctx.lineTo(w, y(tick)); ctx.stroke();
    ctx.fillText(String(tick), left - 4 * dpr, y(tick));
  }
  ctx.textAlign = "left"; ctx.textBaseline = "bottom";
  ctx.fillText(`−${historyS} s`, left + 3 * dpr, h - 2 * dpr);
  ctx.textAlign = "right";
  ctx.fillText("latest", w - 3 * dpr, h - 2 * dpr);
  const n = pts.length ? pts[0][group.key].length : 0;
  ctx.lineWidth = 1.6 * dpr; ctx.lineJoin = "round";
  for (let i = 0; i < n; i++) {
    ctx.strokeStyle = PALETTE[i % PALETTE.length];
    ctx.beginPath();
    let prev = null;
    for (const p of pts) {
      const v = p[group.key][i];
      if (v === null) { prev = null; continue; }
      if (prev === null || p.t - prev > GAP_S) ctx.moveTo(x(p.t), y(v)); else ctx.lineTo(x(p.t), y(v));
      prev = p.t;
    }
    ctx.stroke();
  }
}
