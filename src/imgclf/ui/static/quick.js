// Quick update, in the frame of every page: when labels changed since the chosen iteration (on any page),
// a bar under the top bar offers to refit its head on the current labels. The result is a draft iteration
// scored by cross-validation on train, never on the test split; "Switch to it" makes the UI answer with it.
"use strict";

(() => {
  const { api, el, pct, toast } = UI;
  // requests after which the labels may differ from the chosen iteration's
  const LABELLING = /\/ui\/api\/(annotate|undo|review\/act|label-next\/(label|refit)|intake\/(upload|add|undo)|classes\/(rename|merge))\b/;
  const bar = el("section", { id: "quick-update", class: "quickbar", "aria-label": "Quick update", hidden: true });
  const text = el("p", { id: "quick-text", class: "quick-text", role: "status", "aria-live": "polite" });
  const runBtn = el("button", { type: "button", class: "btn primary", id: "quick-run", onclick: () => run() }, "Quick update");
  const switchBtn = el("button", { type: "button", class: "btn", id: "quick-switch", hidden: true }, "Switch to it");
  const state = { busy: false, draft: null, timer: 0 };

  document.head.append(el("link", { rel: "stylesheet", href: "static/quick.css" }));
  bar.append(text, el("span", { class: "quick-actions" }, runBtn, switchBtn));
  // under the strip that names the chosen iteration (else under the top bar): the update is of that iteration
  (document.getElementById("live") || document.querySelector(".topbar") || document.body.firstElementChild).after(bar);
  switchBtn.addEventListener("click", () => switchTo());

  const figure = (v) => (v === null || v === undefined ? "—" : pct(v));
  function changed(c) {
    const parts = [["relabelled", c.relabelled], ["added", c.added], ["removed", c.removed]].filter(([, n]) => n);
    return parts.map(([k, n]) => `${n} ${k}`).join(", ");
  }

  async function refresh() {
    if (state.busy) return;
    let s;
    try {
      s = await api("api/quick-update");
    } catch (e) {
      bar.hidden = true;  // no iteration or no dataset: nothing to update
      return;
    }
    if (state.draft) return;  // the result stays until the page is left
    bar.dataset.changes = String(s.changes.total);
    bar.hidden = s.changes.total === 0;
    text.textContent = `${s.changes.total} label${s.changes.total === 1 ? "" : "s"} changed since iteration ${s.name} ` +
      `(${changed(s.changes)}). Refit its head on the current labels in a few seconds:`;
    runBtn.hidden = false;
    switchBtn.hidden = true;
  }

  function resultText(r) {
    const p = r.parent;
    if (p.cv_accuracy !== null && p.cv_accuracy !== undefined) {
      return `Draft ${r.name}: cross-validated accuracy ${pct(r.cv_accuracy)} on train (was ${pct(p.cv_accuracy)}).`;
    }
    return `Draft ${r.name}: cross-validated accuracy ${pct(r.cv_accuracy)} on train; class-averaged ` +
      `${pct(r.cv_class_avg_accuracy)} (was ${figure(p.cv_class_avg_accuracy)}).`;
  }

  async function run() {
    if (state.busy) return;
    state.busy = true;
    runBtn.disabled = true;
    text.textContent = "Quick update: refitting the head on the current labels…";
    try {
      const r = await api("api/quick-update", { method: "POST" });
      state.draft = r;
      bar.dataset.draft = r.run;
      text.textContent = `${resultText(r)} ${r.n_train} train images, ${r.wall_seconds.toFixed(1)} s. ` +
        "Test results exist only for full iterations.";
      runBtn.hidden = true;
      switchBtn.hidden = false;
      switchBtn.focus();
    } catch (e) {
      text.textContent = `Quick update failed: ${e.message}`;
    } finally {
      state.busy = false;
      runBtn.disabled = false;
    }
  }

  async function switchTo() {
    switchBtn.disabled = true;
    try {
      await api("api/iterations/select", { json: { run: state.draft.run } });
      toast(`Switched to draft ${state.draft.name}`);
      location.reload();
    } catch (e) {
      text.textContent = `${resultText(state.draft)} Cannot switch to it: ${e.message}`;
    } finally {
      switchBtn.disabled = false;
    }
  }

  // any page's label change (through UI.api, which calls fetch) → look again shortly after
  const fetch0 = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const res = await fetch0(input, init);
    const url = typeof input === "string" ? input : input.url;
    if (res.ok && (init?.method || "GET").toUpperCase() === "POST" && LABELLING.test(new URL(url, location.href).pathname)) {
      clearTimeout(state.timer);
      state.timer = setTimeout(refresh, 400);
    }
    return res;
  };
  window.addEventListener("focus", refresh);
  setTimeout(refresh, 600);  // after the page's own first content: counting the changes reads the whole dataset
})();
