// Label next page: the batch of pool images the model would learn most from, and the refit.
// One key per image: Enter accepts the predicted class, 1-9 gives another, x drops the image from the
// pool; each is saved at once to the dataset's annotations.csv (u undoes). Refit (r) is the quick update:
// the head refit on every label of the dataset as a draft iteration, scored by cross-validation on train
// (never on the test split); the next batch is suggested by the draft's head.
"use strict";

(() => {
  const { api, el, badge, setClasses, toast, pct, isShortcut, showContext, save, undoLast } = UI;
  const $ = (id) => document.getElementById(id);
  const state = { classes: [], batch: [], sel: 0, busy: false };
  const fileName = (p) => p.split("/").pop();
  const thumbUrl = (it) => `api/label-next/thumb?path=${encodeURIComponent(it.path)}&size=256&v=${it.v}`;
  const batchSize = () => Math.max(1, Math.min(500, Number($("batch-size").value) || 20));
  const query = () => `n=${batchSize()}&strategy=${encodeURIComponent($("strategy").value)}`;

  async function load() {
    try {
      show(await api(`api/label-next?${query()}`));
    } catch (e) {
      $("progress").textContent = "";
      $("batch").replaceChildren(el("li", { class: "empty" }, e.message));
    }
  }

  function show(data) {
    state.classes = data.classes;
    setClasses(data.classes);
    state.batch = data.batch;
    $("class-keys").replaceChildren(...data.classes.slice(0, 9).map((c, i) => el("span", {}, el("kbd", {}, String(i + 1)), " ", c, " ")));
    showProgress(data.progress);
    render();
    const next = state.batch.findIndex((it) => !it.status);
    select(next >= 0 ? next : 0);
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

  function card(it, i) {
    return el("li", {}, el("button", {
      type: "button", class: "ln-card", role: "option", tabindex: "-1", "aria-selected": "false",
      dataset: { path: it.path, index: String(i), status: it.status, label: it.label || "" }, onclick: () => select(i),
    }, el("img", { src: thumbUrl(it), alt: fileName(it.path), loading: "lazy" }),
    el("span", { class: "cap" },
      el("span", { class: "name", title: it.path }, fileName(it.path)),
      el("span", {}, "looks like ", badge(it.predicted)),
      el("span", { class: "muted" }, `${it.reason} · ${it.score.toFixed(2)}`),
      el("span", { dataset: { role: "state" } }, stateText(it)))));
  }

  function render() {
    if (!state.batch.length) {
      $("batch").replaceChildren(el("li", { class: "empty" }, "Nothing left to label in the pool."));
      return;
    }
    $("batch").replaceChildren(...state.batch.map(card));
  }

  function cards() { return [...document.querySelectorAll(".ln-card")]; }

  function select(i, focus = true) {
    const all = cards();
    if (!all.length) return;
    state.sel = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((c, k) => { c.setAttribute("aria-selected", String(k === state.sel)); c.tabIndex = k === state.sel ? 0 : -1; });
    if (focus) all[state.sel].focus();
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

  async function act(json) {
    const i = state.sel;
    const res = await save("api/label-next/label", json, (r) => {
      apply(r.item);
      showProgress(r.progress);
      return r.item.status === "excluded" ? `${fileName(r.item.path)} dropped` : `${fileName(r.item.path)} → ${r.item.label}`;
    }, undo);
    if (res) select(nextOpen(i));
  }

  function undo() {
    undoLast((res) => {
      load();
      return `Undone: ${fileName(res.undone.path)}`;
    });
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

  document.addEventListener("keydown", (ev) => {
    if (!isShortcut(ev)) return;
    const t = ev.target;
    if (t && t.tagName === "BUTTON" && !t.classList.contains("ln-card") && (ev.key === "Enter" || ev.key === " ")) return;
    const it = state.batch[state.sel];
    if (ev.key === "r") { ev.preventDefault(); refit(); return; }
    if (ev.key === "u") { ev.preventDefault(); undo(); return; }
    if (ev.key === "ArrowRight" || ev.key === "j") { ev.preventDefault(); select(state.sel + 1); return; }
    if (ev.key === "ArrowLeft" || ev.key === "k") { ev.preventDefault(); select(state.sel - 1); return; }
    if (!it) return;
    if (ev.key === "Enter" || ev.key === "a") { ev.preventDefault(); act({ path: it.path, label: it.predicted }); return; }
    if (ev.key === "x") { ev.preventDefault(); act({ path: it.path, action: "exclude" }); return; }
    const d = Number(ev.key);
    if (Number.isInteger(d) && d >= 1 && d <= Math.min(9, state.classes.length)) {
      ev.preventDefault();
      act({ path: it.path, label: state.classes[d - 1] });
    }
  });
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); refit(); });

  showContext();
  load();
})();
