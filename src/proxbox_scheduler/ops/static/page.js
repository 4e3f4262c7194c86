// The console's behaviour: poll /status, swap the page in when it changed, drive the control buttons.
// Without this script the server-rendered page is complete; the buttons stay hidden.
"use strict";
(() => {
  const POLL_MS = 5000;
  const REDRAW_MS = 60000;
  const TOKEN_KEY = "proxbox-scheduler-control-token";
  let signature = null;
  let redrawnAt = Date.now();
  let pending = null;

  const sign = (status) =>
    JSON.stringify((status.jobs || []).map((j) => [j.name, j.state, j.paused, j.current && j.current.stage_index,
      j.runs && j.runs[0] && j.runs[0].id, j.skips && j.skips.length, j.next_fire]));

  async function redraw() {
    const answer = await fetch(location.href, { cache: "no-store" });
    if (!answer.ok) return;
    const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = doc.getElementById("main");
    const focused = document.activeElement && document.activeElement.closest("[data-job] .controls button");
    const focusKey = focused ? [focused.closest("[data-job]").dataset.job, focused.dataset.action] : null;
    document.getElementById("main").replaceWith(fresh);
    redrawnAt = Date.now();
    wire();
    if (focusKey) {
      const box = `[data-job="${CSS.escape(focusKey[0])}"] .controls`;
      const again = document.querySelector(`${box} button[data-action="${focusKey[1]}"]`)
        || document.querySelector(`${box} button`);
      if (again) again.focus();
    }
  }

  async function poll() {
    try {
      const answer = await fetch("/status", { cache: "no-store" });
      if (answer.ok) {
        const now = sign(await answer.json());
        if (signature !== null && (now !== signature || Date.now() - redrawnAt > REDRAW_MS)) await redraw();
        signature = now;
      }
    } catch (_) {
      // the scheduler restarts or the network blinks: the next poll tries again
    }
    setTimeout(poll, POLL_MS);
  }

  function askToken(then) {
    const form = document.getElementById("token-form");
    pending = then;
    form.hidden = false;
    form.querySelector("input").focus();
  }

  async function send(job, action, box) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return askToken(() => send(job, action, box));
    const result = box.querySelector(".result");
    result.textContent = `${action}: sending…`;
    const answer = await fetch(`/jobs/${encodeURIComponent(job)}/${action}`, {
      method: "POST", headers: { Authorization: `Bearer ${token}` }, cache: "no-store",
    });
    if (answer.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      result.textContent = "the token was not accepted";
      return askToken(() => send(job, action, box));
    }
    const body = await answer.json().catch(() => ({}));
    result.textContent = answer.ok ? `${action}: ${body.result || "done"}` : `${action}: ${body.error || answer.status}`;
    await redraw();
    const again = document.querySelector(`[data-job="${CSS.escape(job)}"] .controls .result`);
    if (again) again.textContent = result.textContent;
  }

  function wire() {
    for (const box of document.querySelectorAll(".controls")) {
      box.hidden = false;
      for (const button of box.querySelectorAll("button")) {
        button.addEventListener("click", () => send(box.dataset.job, button.dataset.action, box));
      }
    }
    for (const mark of document.querySelectorAll("svg g[data-detail]")) {
      const line = mark.closest(".card").querySelector(".detail");
      const show = () => { line.textContent = mark.dataset.detail; };
      mark.addEventListener("focus", show);
      mark.addEventListener("mouseenter", show);
    }
  }

  const tokenForm = document.getElementById("token-form");
  if (tokenForm) {
    tokenForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = tokenForm.querySelector("input");
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      tokenForm.hidden = true;
      const then = pending;
      pending = null;
      if (then) then();
    });
  }
  wire();
  poll();
})();
