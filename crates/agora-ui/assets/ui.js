// agora's web UI: the few things a server-rendered page cannot do by itself.
// - the dashboard's live part is replaced whenever /ui/live sends a new one (Server-Sent Events);
// - <pre data-tail> follows a sandbox file, appending what the task writes;
// - forms and buttons with data-confirm ask first.
"use strict";

(function live() {
  const target = document.querySelector("[data-live]");
  if (!target || !window.EventSource) return;
  let updates = 0;
  const source = new EventSource(target.dataset.live);
  source.addEventListener("dashboard", (event) => {
    target.innerHTML = event.data;
    updates += 1;
    document.body.dataset.liveUpdates = String(updates);
  });
  source.onerror = () => document.body.classList.add("offline");
  source.onopen = () => document.body.classList.remove("offline");
})();

document.querySelectorAll("pre[data-tail]").forEach((pre) => {
  let next = null;
  let quietAfterEnd = 0;
  let full = false;
  async function poll() {
    const url = pre.dataset.tail + (next === null ? "" : "&offset=" + next);
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      const piece = await response.json();
      if (!response.ok) {
        pre.dataset.error = piece.message || String(response.status);
        if (next === null) pre.textContent = "(" + pre.dataset.error + ")";
      } else {
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        if (piece.data) pre.append(document.createTextNode(piece.data));
        next = piece.next;
        pre.dataset.offset = String(next);
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        if (piece.ended && !piece.data) quietAfterEnd += 1;
        full = Boolean(piece.full);
      }
    } catch (error) {
      pre.dataset.error = String(error);
    }
    // A full piece means more is waiting: ask again at once. Once the task has ended and
    // nothing more comes, stop asking.
    if (full) setTimeout(poll, 0);
    else if (quietAfterEnd < 2) setTimeout(poll, 1000);
    else pre.dataset.done = "true";
  }
  poll();
});

document.addEventListener("submit", (event) => {
  // The button pressed may ask (a form of several actions), else the form.
  const asking = [event.submitter, event.target].find((el) => el && el.dataset && el.dataset.confirm);
  if (asking && !window.confirm(asking.dataset.confirm)) {
    event.preventDefault();
  }
});
