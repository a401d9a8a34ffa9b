// The streams page: the list live, submit a stream, stop one.
"use strict";

function streamRow(s) {
  const stop = el("button", { class: "danger", text: "Stop" });
  stop.hidden = !ACTIVE.has(s.state);
  stop.onclick = async () => {
    stop.disabled = true;
    try { await apiCall("DELETE", "/api/streams/" + encodeURIComponent(s.id)); }
    catch (err) { document.getElementById("submit-error").textContent = err.message; stop.disabled = false; }
  };
  const name = el("a", { href: "/streams/" + encodeURIComponent(s.id), text: s.id });
  const state = el("span", { class: "pill " + s.state, text: s.state });
  if (s.last_error) state.title = s.last_error;
  const cells = [
    el("td", {}, name), el("td", { class: "url", text: s.url, title: s.url }), el("td", {}, state),
    el("td", { class: "num", text: fmt(s.source_fps, 1) }), el("td", { class: "num", text: fmt(s.processed_fps, 1) }),
    el("td", { class: "num", text: fmt(s.lag_s, 2) }), el("td", { class: "num", text: String(s.dropped_frames) }),
    el("td", { class: "num", text: String(s.frames) }), el("td", { class: "num", text: String(s.faces) }),
    el("td", {}, stop),
  ];
  const row = el("tr", { "data-stream": s.id, "data-state": s.state }, ...cells);
  return row;
}

followStreams((list, problem) => {
  const updated = document.getElementById("updated");
  if (problem) { updated.textContent = problem; return; }
  const body = document.querySelector("#streams tbody");
  body.replaceChildren(...(list.length ? list.map(streamRow)
    : [el("tr", { class: "empty" }, el("td", { colspan: "10", text: "no streams yet: submit one above" }))]));
  updated.textContent = "updated " + new Date().toLocaleTimeString();
});

document.getElementById("submit").onsubmit = async (e) => {
  e.preventDefault();
  const error = document.getElementById("submit-error");
  const url = document.getElementById("url"), name = document.getElementById("name");
  error.textContent = "";
  try {
    await apiCall("POST", "/api/streams", { url: url.value, name: name.value || null });
    url.value = ""; name.value = "";
  } catch (err) { error.textContent = err.message; }
};
