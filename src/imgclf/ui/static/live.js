// The strip under the top bar on every page: which iteration the page shows (and answers with) and
// which one the service publishes. It polls /ui/api/live; when another iteration is chosen or
// published (on this page, another tab, or another window), the page reloads so that nothing it
// shows or answers comes from a model it no longer names.
"use strict";

(() => {
  const strip = document.getElementById("live");
  if (!strip) return;
  let version = null;
  const KEY = "imgclf-live-note";

  function render(s) {
    strip.replaceChildren();
    if (!s.chosen && !s.published) {
      strip.append(UI.el("span", { class: "muted" }, "No iteration yet: train one on the Train page or with `imgclf run`."));
      return;
    }
    const chosen = s.chosen ? UI.el("strong", { id: "live-chosen" }, s.chosen) : UI.el("em", {}, "none");
    strip.append(UI.el("span", {}, "Showing iteration ", chosen));
    if (s.chosen_incomplete) strip.append(UI.el("span", { class: "warn-text" }, ` · ⚠ did not finish`));
    const pub = s.published ? UI.el("strong", { id: "live-published" }, s.published) : UI.el("em", { id: "live-published" }, "nothing published");
    strip.append(UI.el("span", {}, " · Endpoint: ", pub));
    if (s.endpoint && s.endpoint !== s.published) strip.append(UI.el("span", { class: "muted" }, ` (answering with ${s.endpoint})`));
    if (document.body.dataset.page !== "iterations") strip.append(" ", UI.el("a", { href: "iterations" }, "Iterations"));
  }

  async function poll() {
    try {
      const s = await UI.api("api/live");
      if (version !== null && s.version !== version) {
        sessionStorage.setItem(KEY, `Now showing iteration ${s.chosen}`);
        location.reload();
        return;
      }
      version = s.version;
      render(s);
    } catch (_) { /* the service restarts or is unreachable: the next poll tries again */ }
  }

  const note = sessionStorage.getItem(KEY);
  if (note) { sessionStorage.removeItem(KEY); setTimeout(() => UI.toast(note), 300); }
  poll();
  setInterval(poll, 2000);
  window.imgclfLive = { poll, forget: () => { version = null; } };
})();
