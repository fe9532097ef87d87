// Label next page: the batch of pool images the model would learn most from, and the refit.
// The bar above the batch acts on the chosen image: accept the suggested class (a, or Enter on the
// chosen card), any class by its button or the class menu (1-9 for the first nine), drop it from the
// pool (x); each is saved at once to the dataset's annotations.csv (u undoes). Refit (r) is the quick
// update: the head refit on every label of the dataset as a draft iteration, scored by cross-validation
// on train (never on the test split); the next batch is suggested by the draft's head.
"use strict";

(() => {
  const { api, el, badge, colour, setClasses, pct, showContext, save, undoLast } = UI;
  const MAX_CLASS_BUTTONS = 10;  // more classes than this: one menu of them all instead of a button each
  const $ = (id) => document.getElementById(id);
  const state = { classes: [], batch: [], sel: 0, busy: false };
  const fileName = (p) => p.split("/").pop();
  const thumbUrl = (it) => `api/label-next/thumb?path=${encodeURIComponent(it.path)}&size=256&v=${it.v}`;
  const batchSize = () => Math.max(1, Math.min(500, Number($("batch-size").value) || 20));
  const query = () => `n=${batchSize()}&strategy=${encodeURIComponent($("strategy").value)}`;

  async function load() {
    try {
      show(await api(`api/label-next?${query()}`));
      UI.disableAll(document.querySelector(".label-next"), false);
    } catch (e) {
      $("progress").textContent = "";
      $("batch").replaceChildren(el("li", { class: "empty" }, e.message));
      state.batch = [];
      UI.disableAll(document.querySelector(".label-next"), true, [$("ln-keys")]);  // nothing to label or refit
      chosen();
    }
  }

  function show(data) {
    state.classes = data.classes;
    setClasses(data.classes);
    state.batch = data.batch;
    renderClassControls();
    showProgress(data.progress);
    render();
    const next = state.batch.findIndex((it) => !it.status);
    select(next >= 0 ? next : 0);
  }

  // A button per class (1-9 on the first nine), or one menu of every class when there are many.
  function renderClassControls() {
    const give = (c) => act({ label: c });
    if (state.classes.length <= MAX_CLASS_BUTTONS) {
      $("ln-classes").replaceChildren(...state.classes.map((c, i) => el("button", {
        type: "button", class: "btn", dataset: { label: c }, title: `Give the class ${c}`, onclick: () => give(c),
      }, i < 9 ? el("kbd", {}, String(i + 1)) : null, el("span", { class: "swatch", style: { background: colour(c) }, "aria-hidden": "true" }), c)));
      return;
    }
    const menu = el("select", { class: "btn", id: "ln-class-menu", "aria-label": "Give the chosen image the class",
      onchange: () => { const c = menu.value; menu.value = ""; if (c) give(c); } },
    el("option", { value: "" }, "Give the class…"),
    state.classes.map((c, i) => el("option", { value: c }, i < 9 ? `${i + 1} · ${c}` : c)));
    $("ln-classes").replaceChildren(menu);
  }

  function showProgress(p) {
    $("progress").textContent = `${p.labelled} labelled of ${p.pool} in the pool · ${p.left} left` +
      (p.excluded ? ` · ${p.excluded} dropped` : "");
    $("history").replaceChildren(...p.history.map((h) => el("li", { dataset: { run: h.name, draft: String(h.draft) } },
      h.draft ? `draft ${h.name} (${h.n_train} train images): cross-validated accuracy ${cvPct(h.cv_accuracy)}, ` +
        `class-averaged ${cvPct(h.cv_class_avg_accuracy)}`
        : `iteration ${h.name}: cross-validated class-averaged accuracy ${cvPct(h.cv_class_avg_accuracy)}`)));
  }

  function cvPct(v) { return v === null || v === undefined ? "—" : pct(v); }

  function stateText(it) {
    if (it.status === "labelled") return `labelled ${it.label}`;
    if (it.status === "excluded") return "dropped from the pool";
    return "";
  }

  // Why an image the service kept comes first: what it answered, and when (serve.keep_inputs).
  function servedText(s) {
    const flagged = s.unknown && s.answer !== "unknown" ? ", flagged unknown," : "";
    return `The service answered ${s.answer}${flagged} on ${new Date(s.first_asked).toLocaleDateString()}` +
      (s.times_asked > 1 ? ` · asked ${s.times_asked} times` : "");
  }

  function card(it, i) {
    return el("li", {}, el("button", {
      type: "button", class: "ln-card", role: "option", tabindex: "-1", "aria-selected": "false",
      dataset: { path: it.path, index: String(i), status: it.status, label: it.label || "" }, onclick: () => select(i),
    }, el("img", { src: thumbUrl(it), alt: fileName(it.path), loading: "lazy" }),
    el("span", { class: "cap" },
      el("span", { class: "name", title: it.path }, fileName(it.path)),
      el("span", {}, "looks like ", badge(it.predicted)),
      it.served ? el("span", { class: "ln-served", dataset: { role: "served" } }, servedText(it.served))
        : el("span", { class: "muted" }, `${it.reason} · ${it.score.toFixed(2)}`),
      el("span", { dataset: { role: "state" } }, stateText(it)))));
  }

  function render() {
    if (!state.batch.length) {
      $("batch").replaceChildren(el("li", { class: "empty" }, "Nothing left to label in the pool."));
      return;
    }
    $("batch").replaceChildren(...state.batch.map(card));
  }

  // The bar names the chosen image and its suggestion; without one its actions are off.
  function chosen() {
    const it = state.batch[state.sel];
    $("ln-chosen").textContent = it ? fileName(it.path) : "No image chosen";
    $("ln-chosen").title = it ? it.path : "";
    $("ln-accept-text").textContent = it ? `Accept: ${it.predicted}` : "Accept";
    for (const c of $("ln-actions").querySelectorAll("[data-act], #ln-classes button, #ln-classes select")) c.disabled = !it;
    $("ln-prev").disabled = !it || state.sel <= 0;
    $("ln-next").disabled = !it || state.sel >= state.batch.length - 1;
  }

  function cards() { return [...document.querySelectorAll(".ln-card")]; }

  function select(i, focus = true) {
    const all = cards();
    if (!all.length) return;
    state.sel = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((c, k) => { c.setAttribute("aria-selected", String(k === state.sel)); c.tabIndex = k === state.sel ? 0 : -1; });
    if (focus) all[state.sel].focus({ preventScroll: true });
    all[state.sel].scrollIntoView({ block: "nearest" });
    chosen();
  }

  // Cards per row of the grid: up and down move by a row.
  function perRow() {
    const all = cards();
    if (!all.length) return 1;
    const top = all[0].getBoundingClientRect().top;
    return Math.max(1, all.filter((c) => Math.abs(c.getBoundingClientRect().top - top) < 4).length);
  }

  function apply(item) {
    const i = state.batch.findIndex((it) => it.path === item.path);
    if (i < 0) return;
    Object.assign(state.batch[i], { status: item.status, label: item.label });
    const c = cards()[i];
    c.dataset.status = item.status;
    c.dataset.label = item.label || "";
    c.querySelector('[data-role="state"]').textContent = stateText(state.batch[i]);
  }

  function nextOpen(from) {
    for (let k = from + 1; k < state.batch.length; k++) if (!state.batch[k].status) return k;
    return Math.min(from + 1, state.batch.length - 1);
  }

  // Label the chosen image: ``what`` is {label} or {action: "exclude"}.
  async function act(what) {
    const i = state.sel;
    const it = state.batch[i];
    if (!it) return;
    const json = { path: it.path, ...what };
    const res = await save("api/label-next/label", json, (r) => {
      apply(r.item);
      showProgress(r.progress);
      return r.item.status === "excluded" ? `${fileName(r.item.path)} dropped` : `${fileName(r.item.path)} → ${r.item.label}`;
    }, undo);
    if (res) select(nextOpen(i));
  }

  function undo() {
    return undoLast(() => load());
  }

  async function refit() {
    if (state.busy) return;
    state.busy = true;
    $("refit").disabled = true;
    $("error").textContent = "";
    const out = $("refit-result");
    out.hidden = false;
    out.textContent = "Refitting (quick update)…";
    try {
      const res = await api("api/label-next/refit", { json: { n: batchSize(), strategy: $("strategy").value } });
      const r = res.refit;
      const was = r.parent.cv_accuracy ?? null;
      const key = was === null ? "cv_class_avg_accuracy" : "cv_accuracy";
      const before = r.parent[key] ?? null;
      const diff = before === null ? 0 : r[key] - before;
      out.dataset.run = r.name;
      out.dataset.after = String(r[key]);
      out.dataset.before = before === null ? "" : String(before);
      out.replaceChildren(`Draft ${r.name}: cross-validated ${key === "cv_accuracy" ? "accuracy" : "class-averaged accuracy"} `,
        el("span", { class: diff > 0 ? "up" : diff < 0 ? "down" : "" }, pct(r[key])),
        ` on ${r.n_train} train images (was ${cvPct(before)} for ${r.parent.name}) · ` +
        `accuracy ${pct(r.cv_accuracy)}, class-averaged ${pct(r.cv_class_avg_accuracy)} · ${r.wall_seconds.toFixed(1)} s · ` +
        "test results only for full iterations");
      show(res);
    } catch (e) {
      out.hidden = true;
      $("error").textContent = `Refit failed: ${e.message}`;
    } finally {
      state.busy = false;
      $("refit").disabled = false;
    }
  }

  // Enter accepts only on the chosen card itself: pressed anywhere else (a link, a button, the page)
  // it labels nothing.
  UI.keys(["prev", "next", "up", "down", "open", "class", "accept", "exclude", "undo", "refit"], (action, ev, digit) => {
    const it = state.batch[state.sel];
    if (action === "refit") refit();
    else if (action === "undo") undo();
    else if (action === "next" || action === "prev") select(state.sel + (action === "next" ? 1 : -1));
    else if (action === "down" || action === "up") select(state.sel + (action === "down" ? 1 : -1) * perRow());
    else if (!it) return false;
    else if (action === "open") {
      if (ev.target !== cards()[state.sel]) return false;
      act({ label: it.predicted });
    } else if (action === "accept") act({ label: it.predicted });
    else if (action === "exclude") act({ action: "exclude" });
    else if (action === "class" && state.classes[digit - 1]) act({ label: state.classes[digit - 1] });
    else return false;
    return true;
  });
  $("ln-accept").addEventListener("click", () => { const it = state.batch[state.sel]; if (it) act({ label: it.predicted }); });
  $("ln-drop").addEventListener("click", () => act({ action: "exclude" }));
  $("ln-prev").addEventListener("click", () => select(state.sel - 1));
  $("ln-next").addEventListener("click", () => select(state.sel + 1));
  $("ln-undo").addEventListener("click", undo);
  $("ln-keys").addEventListener("click", UI.showKeys);
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); refit(); });

  showContext();
  load();
})();
