// Results page: a run's test images with true and predicted labels and per-class score bars.
// Filter by class or by a confusion-matrix cell, sort by confidence, fix labels in the dataset.
"use strict";

(() => {
  const { api, el, bars, badge, setClasses, toast, pct, isShortcut, showContext } = UI;
  const STEP = 60;  // cards added per "Show more"
  const MAX_CLASS_BUTTONS = 5;  // more classes than this: a menu instead of one button each
  const $ = (id) => document.getElementById(id);

  const state = { data: null, shown: [], limit: STEP, sel: -1, truth: "", pred: "", errors: false, sort: "errors" };

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    state.truth = h.get("true") || "";
    state.pred = h.get("pred") || "";
    state.errors = h.get("errors") === "1";
    state.sort = h.get("sort") || "errors";
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (state.truth) h.set("true", state.truth);
    if (state.pred) h.set("pred", state.pred);
    if (state.errors) h.set("errors", "1");
    if (state.sort !== "errors") h.set("sort", state.sort);
    history.replaceState(null, "", `${location.pathname}${location.search}${h.toString() ? "#" + h : ""}`);
  }

  async function load() {
    try {
      state.data = await api("api/results");
    } catch (e) {
      $("results").replaceChildren(el("li", { class: "empty" }, e.message));
      $("more").hidden = true;
      return;
    }
    setClasses(state.data.labels);
    renderStats();
    renderSelects();
    apply();
  }

  // ------------------------------------------------------------ sidebar
  function renderStats() {
    const m = state.data.metrics;
    const errors = state.data.items.filter((it) => !it.correct).length;
    const stat = (v, k) => el("div", { class: "stat" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
    $("stats").replaceChildren(
      stat(m.accuracy !== undefined ? pct(m.accuracy) : "—", "accuracy"),
      stat(m.class_avg_accuracy !== undefined ? pct(m.class_avg_accuracy) : "—", "class-averaged"),
      stat(String(state.data.items.length), "test images"),
      stat(String(errors), "errors"));
  }

  function renderMatrix() {
    const { labels, confusion_matrix: cm } = state.data;
    const head = el("tr", {}, el("th", {}), labels.map((l) => el("th", { scope: "col", title: l }, l)));
    const rows = labels.map((t, i) => {
      const total = cm[i].reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, el("th", { scope: "row", class: "rowh", title: t }, t), labels.map((p, j) => {
        const n = cm[i][j];
        const a = n ? 0.15 + 0.75 * (n / total) : 0;
        const bg = i === j ? `rgba(24, 121, 78, ${a})` : `rgba(194, 50, 31, ${a})`;
        const active = state.truth === t && state.pred === p;
        return el("td", {}, el("button", {
          type: "button", class: `cell${n ? "" : " zero"}`, "aria-pressed": String(active),
          dataset: { truth: t, pred: p }, "aria-label": `true ${t}, predicted ${p}: ${n} images`,
          style: { background: n ? bg : "", color: a > 0.55 ? "#fff" : "" },
          onclick: () => {
            if (active) { state.truth = ""; state.pred = ""; } else { state.truth = t; state.pred = p; state.errors = false; }
            apply();
          },
        }, String(n)));
      }));
    });
    $("cm").replaceChildren(el("table", { class: "cm", "aria-labelledby": "cm-title" },
      el("thead", {}, el("tr", {}, el("th", {}), el("th", { colspan: String(labels.length), class: "axis" }, "predicted")), head),
      el("tbody", {}, rows)));
  }

  function renderSelects() {
    for (const id of ["f-true", "f-pred"]) {
      $(id).replaceChildren(el("option", { value: "" }, "All classes"), ...state.data.labels.map((l) => el("option", { value: l }, l)));
    }
  }

  function syncControls() {
    $("f-true").value = state.truth;
    $("f-pred").value = state.pred;
    $("f-errors").checked = state.errors;
    $("sort").value = state.sort;
  }

  // ------------------------------------------------------------ list
  function apply() {
    const items = state.data.items.filter((it) =>
      (!state.truth || it.label === state.truth) && (!state.pred || it.predicted === state.pred) && (!state.errors || !it.correct));
    const byName = (a, b) => a.name.localeCompare(b.name) || a.i - b.i;
    const sorters = {
      "errors": (a, b) => (a.correct - b.correct) || (b.score - a.score) || byName(a, b),
      "conf-asc": (a, b) => (a.score - b.score) || byName(a, b),
      "conf-desc": (a, b) => (b.score - a.score) || byName(a, b),
      "name": byName,
    };
    items.sort(sorters[state.sort] || sorters.errors);
    state.shown = items;
    state.limit = STEP;
    state.sel = items.length ? 0 : -1;
    syncControls();
    renderMatrix();
    renderList();
    writeHash();
  }

  function renderList() {
    const total = state.data.items.length;
    const n = state.shown.length;
    const parts = [];
    if (state.truth) parts.push(`true ${state.truth}`);
    if (state.pred) parts.push(`predicted ${state.pred}`);
    if (state.errors) parts.push("errors only");
    $("count").textContent = `Showing ${n} of ${total} test images${parts.length ? " · " + parts.join(" · ") : ""}`;
    if (!n) {
      $("results").replaceChildren(el("li", { class: "empty" }, "No test image matches these filters."));
    } else {
      $("results").replaceChildren(...state.shown.slice(0, state.limit).map((it, k) => card(it, k)));
    }
    $("more").hidden = n <= state.limit;
    $("more").textContent = `Show ${Math.min(STEP, n - state.limit)} more`;
  }

  function card(it, k) {
    const ds = it.dataset;
    const current = ds ? ds.label : null;
    const actions = [];
    if (ds) {
      if (!it.correct && current !== it.predicted) {
        actions.push(el("button", { type: "button", class: "btn primary", onclick: () => relabel(it, "relabel", it.predicted) },
          `Relabel as ${it.predicted}`));
      }
      const others = state.data.labels.filter((l) => l !== current && (it.correct || l !== it.predicted));
      if (others.length <= MAX_CLASS_BUTTONS) {
        others.forEach((l) => actions.push(el("button", { type: "button", class: "btn", onclick: () => relabel(it, "relabel", l) }, `→ ${l}`)));
      } else {
        const pick = el("select", { "aria-label": `Relabel ${it.name} as`, class: "btn",
          onchange: () => { if (pick.value) relabel(it, "relabel", pick.value); } },
        el("option", { value: "" }, "Relabel as…"), others.map((l) => el("option", { value: l }, l)));
        actions.push(pick);
      }
      if (ds.status !== "excluded") actions.push(el("button", { type: "button", class: "btn danger", onclick: () => relabel(it, "exclude") }, "Exclude"));
      if (ds.status !== "unchanged") actions.push(el("button", { type: "button", class: "btn", onclick: () => relabel(it, "restore") }, "Restore"));
    }
    const stateLine = ds && ds.status !== "unchanged"
      ? el("span", { class: "state" }, ds.label ? `now labelled ${ds.label} in the dataset` : `${ds.status} in the dataset`) : null;
    const img = el("img", { class: "thumb", src: `api/results/${it.i}/thumb?size=256&v=${it.v}`, alt: `${it.name}`, loading: "lazy",
      onclick: () => openViewer(it) });
    return el("li", {
      class: `result${it.correct ? "" : " wrong"}`, tabindex: k === state.sel ? "0" : "-1", dataset: { index: String(k), i: String(it.i) },
      "aria-label": `${it.name}: true ${it.label}, predicted ${it.predicted} ${pct(it.score)}${it.correct ? "" : ", error"}`,
      onfocus: () => { state.sel = k; },
    },
      img,
      el("div", { class: "meta" },
        el("span", { class: "name", title: it.rel || it.name }, it.name),
        el("span", { class: "verdict" }, it.correct ? "✓ correct" : "✗ error"),
        el("span", { class: "line" }, "true ", badge(it.label)),
        el("span", { class: "line" }, "predicted ", badge(it.predicted), " ", pct(it.score)),
        stateLine,
        ds ? el("div", { class: "actions" }, actions)
          : el("span", { class: "muted", style: { fontSize: ".8rem" } }, "not in the opened dataset folder: open it with --images to relabel")),
      bars(it.scores, state.data.labels, it.predicted, it.label));
  }

  function cards() { return Array.from($("results").querySelectorAll(".result")); }

  function focusCard(k) {
    const all = cards();
    if (!all.length) return;
    k = Math.max(0, Math.min(all.length - 1, k));
    all.forEach((c) => { c.tabIndex = -1; });
    all[k].tabIndex = 0;
    all[k].focus();
    state.sel = k;
  }

  // ------------------------------------------------------------ corrections
  // Only the cards of the changed image are redrawn, so the list keeps its place and focus.
  function refreshDatasetState(item) {
    for (const it of state.data.items) if (it.dataset_path === item.path) it.dataset = item;
    const sel = state.sel;
    cards().forEach((node) => {
      const k = Number(node.dataset.index);
      if (state.shown[k].dataset_path === item.path) node.replaceWith(card(state.shown[k], k));
    });
    if (sel >= 0) focusCard(sel);
  }

  async function relabel(it, action, label = "") {
    if (!it.dataset_path) { toast("This image is not in the opened dataset folder", { error: true }); return; }
    await UI.save("api/annotate", { path: it.dataset_path, action, label }, (res) => {
      refreshDatasetState(res.item);
      return `${it.name} → ${res.item.label || res.item.status} in the dataset`;
    }, undo);
  }

  function undo() {
    return UI.undoLast((res) => {
      if (res.item) refreshDatasetState(res.item);
      return `Undone: ${res.undone.path}`;
    });
  }

  function openViewer(it) {
    $("viewer-img").src = `api/results/${it.i}/thumb?size=1024&v=${it.v}`;
    $("viewer-img").alt = it.name;
    $("viewer-title").textContent = `${it.name} · true ${it.label} · predicted ${it.predicted} ${pct(it.score)}`;
    $("viewer").showModal();
    $("viewer-close").focus();
  }

  // ------------------------------------------------------------ wiring
  function onKey(ev) {
    if (!isShortcut(ev) || $("viewer").open || !state.data) return;
    const cur = state.shown[state.sel];
    const k = ev.key;
    let handled = true;
    if (k === "ArrowDown" || k === "j") focusCard(state.sel + 1);
    else if (k === "ArrowUp" || k === "k") focusCard(state.sel - 1);
    else if (/^[1-9]$/.test(k) && cur && state.data.labels[Number(k) - 1]) relabel(cur, "relabel", state.data.labels[Number(k) - 1]);
    else if (k === "0" && cur) relabel(cur, "restore");
    else if ((k === "x" || k === "X") && cur) relabel(cur, "exclude");
    else if (k === "u" || k === "U") undo();
    else if (k === "Enter" && cur && ev.target.classList.contains("result")) openViewer(cur);
    else handled = false;
    if (handled) ev.preventDefault();
  }

  readHash();
  document.addEventListener("keydown", onKey);
  $("f-true").addEventListener("change", () => { state.truth = $("f-true").value; apply(); });
  $("f-pred").addEventListener("change", () => { state.pred = $("f-pred").value; apply(); });
  $("f-errors").addEventListener("change", () => { state.errors = $("f-errors").checked; apply(); });
  $("sort").addEventListener("change", () => { state.sort = $("sort").value; apply(); });
  $("clear").addEventListener("click", () => { Object.assign(state, { truth: "", pred: "", errors: false }); apply(); });
  $("more").addEventListener("click", () => { state.limit += STEP; renderList(); });
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  showContext();
  load();
})();
