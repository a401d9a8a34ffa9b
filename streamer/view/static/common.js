// Shared by the live view's pages: JSON requests with the page's cookie, and text helpers.
"use strict";
const facestreamView = window.facestreamView = { streams: [], curves: {}, names: null };

async function apiCall(method, path, body) {
  const init = { method, headers: { "Content-Type": "application/json" }, credentials: "same-origin" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
  if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
  return data;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const ACTIVE = new Set(["created", "connecting", "running", "stopping"]);

// The stream list, live: Server-Sent Events of GET /streams every second.
function followStreams(onList) {
  const source = new EventSource("/api/streams/events");
  source.onmessage = (e) => {
    const data = JSON.parse(e.data);
    if (Array.isArray(data)) { facestreamView.streams = data; onList(data, null); }
    else onList(null, data.error ? data.error.message : "no answer");
  };
  source.onerror = () => onList(null, "connection to the live view lost; retrying…");
  return source;
}
