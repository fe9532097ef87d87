// Results page: a run's scored images with true and predicted labels and per-class score bars.
// Test images are scored by the model; train images out of fold by the data doctor. Filter by
// class or by a confusion-matrix cell, sort by loss or confidence, fix labels in the dataset, one
// image or a selection at once.
"use strict";

(() => {
  const { api, el, bars, badge, setClasses, toast, pct, showContext } = UI;
  const STEP = 60;  // cards added per "Show more"
  const MAX_CLASS_BUTTONS = 5;  // more classes than this: a menu instead of one button each
  const PHONE = window.matchMedia("(max-width: 700px)");
  const YARDSTICK = "the test split, the yardstick every run is scored on";
  const $ = (id) => document.getElementById(id);

  const state = { data: null, side: "test", shown: [], limit: STEP, sel: -1, truth: "", pred: "", errors: false, sort: "errors",
    viewing: -1 };
  const picked = UI.selection(() => renderSelection());  // result rows (``i``) chosen for a bulk action

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    state.side = h.get("split") === "train" ? "train" : "test";
    state.truth = h.get("true") || "";
    state.pred = h.get("pred") || "";
    state.errors = h.get("errors") === "1";
    state.sort = h.get("sort") || "errors";
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (state.side !== "test") h.set("split", state.side);
    if (state.truth) h.set("true", state.truth);
    if (state.pred) h.set("pred", state.pred);
    if (state.errors) h.set("errors", "1");
    if (state.sort !== "errors") h.set("sort", state.sort);
    history.replaceState(null, "", `${location.pathname}${location.search}${h.toString() ? "#" + h : ""}`);
  }

  async function load() {
    $("results").setAttribute("aria-busy", "true");
    try {
      state.data = await api(`api/results?split=${state.side}`);
    } catch (e) {
      state.data = null;
      $("results").replaceChildren(el("li", { class: "empty" }, e.message));
      $("results").removeAttribute("aria-busy");
      $("more").hidden = true;
      renderSide(e.message);
      UI.disableAll(document.querySelector(".layout"), true);  // no run: nothing to filter, pick or correct
      return;
    }
    $("results").removeAttribute("aria-busy");
    UI.disableAll(document.querySelector(".layout"), false);
    setClasses(state.data.labels);
    renderSide();
    renderSelects();
    renderLinks();
    picked.set([]);
    apply();
  }

  // ------------------------------------------------------------ sidebar
  function renderSide(problem = "") {
    for (const b of document.querySelectorAll("[data-side]")) b.setAttribute("aria-pressed", String(b.dataset.side === state.side));
    $("side-note").textContent = problem ? "" : state.side === "test"
      ? "Scored by the trained model: it never saw these images."
      : "Scored out of fold by the data doctor: each by models that never saw its label.";
    if (problem) $("stats").replaceChildren();
  }

  function renderStats() {
    const items = state.data.items;
    const errors = items.filter((it) => !it.correct).length;
    const acc = items.length ? (items.length - errors) / items.length : undefined;
    const classAvg = perClass().recall.filter((v) => v !== null);
    const stat = (v, k) => el("div", { class: "stat" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
    $("stats").replaceChildren(
      stat(acc !== undefined ? pct(acc) : "—", "accuracy"),
      stat(classAvg.length ? pct(classAvg.reduce((a, b) => a + b, 0) / classAvg.length) : "—", "class-averaged"),
      stat(String(items.length), `${state.side} images`),
      stat(String(errors), "errors"));
  }

  // Precision, recall, F1, support and AUC per class, in label order: the server's figures of the side shown.
  function perClass() {
    const pc = state.data.per_class;
    const of = (key) => state.data.labels.map((l) => (pc[key] || {})[l] ?? null);
    return { precision: of("per_class_precision"), recall: of("per_class_recall"), f1: of("per_class_f1"),
      support: of("per_class_support"), auc: of("roc_auc") };
  }

  function renderPerClass() {
    const labels = state.data.labels;
    const f = perClass();
    const num = (v, digits = 3) => (v === null || v === undefined ? "—" : v.toFixed(digits));
    $("per-class-what").textContent = state.side === "test" ? "(test split)" : "(train images, out of fold; no AUC)";
    const head = el("tr", {}, ["class", "precision", "recall", "F1", "support", "AUC"].map((h, j) =>
      el("th", { scope: "col", class: j ? "num" : null }, h)));
    const rows = labels.map((l, i) => el("tr", { dataset: { label: l } },
      el("th", { scope: "row", class: "cls" }, el("button", { type: "button", class: "linklike", title: `Show the ${l} images`,
        onclick: () => { Object.assign(state, { truth: l, pred: "", errors: false }); apply(); scrollToList(); } }, badge(l))),
      el("td", { class: "num" }, num(f.precision[i])), el("td", { class: "num" }, num(f.recall[i])),
      el("td", { class: "num" }, num(f.f1[i])), el("td", { class: "num" }, String(f.support[i])),
      el("td", { class: "num" }, num(f.auc[i]))));
    $("per-class").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  }

  function renderLinks() {
    const files = state.data.files || {};
    const names = { report: "Full report (report.html)", roc: "ROC curves", confusion: "Confusion matrix plot", curves: "Training curves" };
    $("run-links").replaceChildren(...Object.entries(names).filter(([k]) => files[k]).map(([k, text]) =>
      el("a", { href: `api/run/${k}`, target: "_blank", rel: "noopener" }, text)));
  }

  function renderMatrix() {
    const labels = state.data.labels;
    const cm = state.data.confusion_matrix;
    const head = el("tr", {}, el("th", {}), labels.map((l) => el("th", { scope: "col", title: l }, l)));
    const rows = labels.map((t, i) => {
      const total = cm[i].reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, el("th", { scope: "row", class: "rowh", title: t }, t), labels.map((p, j) => {
        const n = cm[i][j];
        const { bg, ink } = cellColours(n ? 0.15 + 0.75 * (n / total) : 0, i === j);
        const active = state.truth === t && state.pred === p;
        return el("td", {}, el("button", {
          type: "button", class: `cell${n ? "" : " zero"}`, "aria-pressed": String(active),
          dataset: { truth: t, pred: p }, "aria-label": `true ${t}, predicted ${p}: ${n} images`,
          style: { background: n ? bg : "", color: n ? ink : "" },
          onclick: () => {
            if (active) { state.truth = ""; state.pred = ""; } else { state.truth = t; state.pred = p; state.errors = false; }
            apply();
            if (!active) scrollToList();
          },
        }, String(n)));
      }));
    });
    $("cm").replaceChildren(el("table", { class: "cm", "aria-labelledby": "cm-title" },
      el("thead", {}, el("tr", {}, el("th", {}), el("th", { colspan: String(labels.length), class: "axis" }, "predicted")), head),
      el("tbody", {}, rows)));
  }

  // A cell's shade (green on the diagonal, red off it, stronger for more images) and the text colour,
  // white or ink, that reads on it at a contrast of at least 4.5:1 (the shade is lightened until one does).
  const WHITE = [255, 255, 255], INK = [29, 35, 43];
  function cellColours(alpha, diagonal) {
    const base = diagonal ? [24, 121, 78] : [194, 50, 31];
    for (let a = alpha; ; a -= 0.05) {
      const rgb = base.map((c) => Math.round(a * c + (1 - a) * 255));  // over the panel's white
      const ink = [WHITE, INK].find((t) => UI.contrast(t, rgb) >= 4.5);
      if (ink || a <= 0) return { bg: `rgb(${rgb.join(", ")})`, ink: `rgb(${(ink || INK).join(", ")})` };
    }
  }

  // On a phone the list is below the sidebar: a choice made there scrolls to what it shows.
  function scrollToList() {
    UI.scrollToOnPhone($("bulk"));
  }

  function renderSelects() {
    for (const id of ["f-true", "f-pred"]) {
      $(id).replaceChildren(el("option", { value: "" }, "All classes"), ...state.data.labels.map((l) => el("option", { value: l }, l)));
    }
    $("bulk-label").replaceChildren(el("option", { value: "" }, "Relabel as…"), ...state.data.labels.map((l) => el("option", { value: l }, l)));
  }

  function syncControls() {
    $("f-true").value = state.truth;
    $("f-pred").value = state.pred;
    $("f-errors").checked = state.errors;
    $("sort").value = state.sort;
  }

  // ------------------------------------------------------------ list
  function apply() {
    if (!state.data) return;
    const items = state.data.items.filter((it) =>
      (!state.truth || it.label === state.truth) && (!state.pred || it.predicted === state.pred) && (!state.errors || !it.correct));
    const byName = (a, b) => a.name.localeCompare(b.name) || a.i - b.i;
    const sorters = {
      "errors": (a, b) => (a.correct - b.correct) || (b.score - a.score) || byName(a, b),
      "loss": (a, b) => (b.loss - a.loss) || byName(a, b),
      "conf-asc": (a, b) => (a.score - b.score) || byName(a, b),
      "conf-desc": (a, b) => (b.score - a.score) || byName(a, b),
      "name": byName,
    };
    items.sort(sorters[state.sort] || sorters.errors);
    state.shown = items;
    state.limit = STEP;
    state.sel = -1;  // nothing is acted on until an image is chosen (↓, a click, or Tab into a card)
    syncControls();
    renderStats();
    renderMatrix();
    renderPerClass();
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
    $("count").textContent = `Showing ${n} of ${total} ${state.side} images${parts.length ? " · " + parts.join(" · ") : ""}`;
    if (!n) {
      $("results").replaceChildren(el("li", { class: "empty" }, `No ${state.side} image matches these filters.`));
    } else {
      $("results").replaceChildren(...state.shown.slice(0, state.limit).map((it, k) => card(it, k)));
    }
    $("more").hidden = n <= state.limit;
    $("more").textContent = `Show ${Math.min(STEP, n - state.limit)} more`;
    renderSelection();
  }

  const thumbSrc = (it, size) => `api/results/${it.i}/thumb?size=${size}&v=${it.v}&split=${state.side}`;

  function actionsOf(it) {
    const ds = it.dataset;
    const current = ds ? ds.label : null;
    const actions = [];
    if (!ds) return actions;
    const test = state.side === "test";
    if (!it.correct && current !== it.predicted) {  // on a test image not the first choice: it would move the yardstick
      actions.push(el("button", { type: "button", class: test ? "btn" : "btn primary", onclick: () => relabel(it, "relabel", it.predicted),
        title: test ? `A test image: relabelling it changes ${YARDSTICK}` : null }, `Relabel as ${it.predicted}`));
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
    if (test) actions.push(el("p", { class: "yardstick" }, `A test image: relabelling or excluding it changes ${YARDSTICK}.`));
    return actions;
  }

  function card(it, k) {
    const ds = it.dataset;
    const stateLine = ds && ds.status !== "unchanged"
      ? el("span", { class: "state" }, ds.label ? `now labelled ${ds.label} in the dataset` : `${ds.status} in the dataset`) : null;
    const box = el("input", { type: "checkbox", class: "pick", "aria-label": `Select ${it.name}`, checked: picked.has(it.i),
      disabled: !ds, onclick: (ev) => pickRange(it, ev) });
    const thumbnail = UI.thumb(thumbSrc(it, 256), { alt: it.name, cls: "thumb", onclick: () => { state.sel = k; openViewer(); } });
    thumbnail.dataset.overlay = "result";  // where an overlay on the image goes (its frame is position: relative)
    const node = el("li", {
      class: `result${it.correct ? "" : " wrong"}${picked.has(it.i) ? " picked" : ""}`, tabindex: k === state.sel ? "0" : "-1",
      dataset: { index: String(k), i: String(it.i) }, "aria-current": k === state.sel ? "true" : null,
      "aria-label": `${it.name}: true ${it.label}, predicted ${it.predicted} ${pct(it.score)}${it.correct ? "" : ", error"}`,
    },
      thumbnail,
      el("div", { class: "meta" },
        el("label", { class: "name-line" }, box, el("span", { class: "name", title: it.rel || it.name }, it.name)),
        el("span", { class: "verdict" }, it.correct ? "✓ correct" : "✗ error", el("span", { class: "loss" }, ` · loss ${it.loss.toFixed(2)}`)),
        el("span", { class: "line" }, "true ", badge(it.label)),
        el("span", { class: "line" }, "predicted ", badge(it.predicted), " ", pct(it.score)),
        stateLine,
        ds ? el("div", { class: "actions" }, actionsOf(it))
          : el("span", { class: "muted small" }, "not found in the opened dataset folder (by path or content): open it with --images to relabel")),
      bars(it.scores, state.data.labels, it.predicted, it.label));
    document.dispatchEvent(new CustomEvent("imgclf:card", { detail: { node, item: it, side: state.side } }));
    return node;
  }

  function cards() { return Array.from($("results").querySelectorAll(".result")); }

  // The chosen card: the one keys act on. Focus anywhere inside a card (a click, Tab to its buttons) chooses it.
  function markCurrent(k) {
    state.sel = k;
    cards().forEach((c) => {
      const here = Number(c.dataset.index) === k;
      c.tabIndex = here ? 0 : -1;
      here ? c.setAttribute("aria-current", "true") : c.removeAttribute("aria-current");
    });
  }

  function focusCard(k) {
    const all = cards();
    if (!all.length) return;
    k = Math.max(0, Math.min(all.length - 1, k));
    markCurrent(k);
    all[k].focus({ preventScroll: true });
    all[k].scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------ selection for bulk actions
  function pickRange(it, ev) {
    picked.toggle(it.i, state.shown.filter((x) => x.dataset).map((x) => x.i), ev.shiftKey);
  }

  function renderSelection() {
    const n = picked.size;
    $("bulk-count").textContent = n ? `${n} selected` : "";
    for (const id of ["bulk-label", "bulk-exclude", "bulk-restore", "bulk-none"]) $(id).disabled = !n;
    cards().forEach((c) => {
      const on = picked.has(Number(c.dataset.i));
      c.classList.toggle("picked", on);
      const box = c.querySelector(".pick");
      if (box) box.checked = on;
    });
  }

  async function bulk(action, label = "") {
    const chosen = state.data.items.filter((it) => picked.has(it.i) && it.dataset_path);
    if (!chosen.length) return;
    const paths = [...new Set(chosen.map((it) => it.dataset_path))];
    const res = await UI.save("api/annotate/many", { paths, action, label }, (r) => {
      r.items.forEach(refreshDatasetState);
      return `${paths.length} images → ${action === "relabel" ? label : action} in the dataset (${r.changed} changed)`;
    }, undo, { note: state.side === "test" ? `this changes ${YARDSTICK}` : "" });
    if (res) picked.clear();
  }

  // ------------------------------------------------------------ corrections
  // Only the cards of the changed image are redrawn: the list keeps its place, and the focus stays
  // on the card it was in.
  function refreshDatasetState(item) {
    for (const it of state.data.items) if (it.dataset_path === item.path) it.dataset = item;
    const active = document.activeElement;
    cards().forEach((node) => {
      const k = Number(node.dataset.index);
      if (state.shown[k].dataset_path !== item.path) return;
      const hadFocus = node.contains(active);
      const fresh = card(state.shown[k], k);
      node.replaceWith(fresh);
      if (hadFocus) fresh.focus({ preventScroll: true });
    });
    if ($("viewer").open) fillViewer();
  }

  async function relabel(it, action, label = "") {
    if (!it.dataset_path) { toast("This image is not in the opened dataset folder", { error: true }); return; }
    await UI.save("api/annotate", { path: it.dataset_path, action, label }, (res) => {
      refreshDatasetState(res.item);
      return `${it.name} → ${res.item.label || res.item.status} in the dataset`;
    }, undo, { note: state.side === "test" ? `this changes ${YARDSTICK}` : "" });
  }

  function undo() {
    return UI.undoLast((res) => (res.items || []).forEach(refreshDatasetState));
  }

  // ------------------------------------------------------------ viewer
  function fillViewer() {
    const it = state.shown[state.sel];
    if (!it) return;
    UI.show($("viewer-img"), $("viewer-stage"), thumbSrc(it, 1024));
    $("viewer-img").alt = it.name;
    $("viewer-title").textContent = it.name;  // the name may be cut short; what was predicted never is
    $("viewer-title").title = it.rel || it.name;
    $("viewer-label").replaceChildren(el("span", { class: "verdict-line" }, "true ", badge(it.label), " · predicted ", badge(it.predicted),
      ` ${pct(it.score)}`));
    $("viewer-actions").replaceChildren(...actionsOf(it));
    $("viewer-prev").disabled = state.sel <= 0;
    $("viewer-next").disabled = state.sel >= Math.min(state.shown.length, state.limit) - 1;
    document.dispatchEvent(new CustomEvent("imgclf:viewer", { detail: { slot: $("viewer-overlay"), item: it, side: state.side } }));
  }

  function openViewer() {
    if (!state.shown[state.sel]) return;
    fillViewer();
    if (!$("viewer").open) $("viewer").showModal();
    $("viewer-close").focus();
  }

  function viewerMove(delta) {
    const last = Math.min(state.shown.length, state.limit) - 1;
    const k = Math.max(0, Math.min(last, state.sel + delta));
    if (k === state.sel) return;
    markCurrent(k);
    fillViewer();
  }

  // ------------------------------------------------------------ wiring
  const KEYS = ["up", "down", "prev", "next", "open", "class", "restore", "keep", "exclude", "pick", "undo"];

  function onKey(action, ev, digit) {
    if (!state.data) return false;
    const viewerOpen = $("viewer").open;
    const cur = state.shown[state.sel];
    const onImage = ["class", "restore", "keep", "exclude", "pick"].includes(action);
    if (viewerOpen && (action === "next" || action === "down")) viewerMove(1);
    else if (viewerOpen && (action === "prev" || action === "up")) viewerMove(-1);
    else if (action === "down") focusCard(state.sel + 1);
    else if (action === "up") focusCard(state.sel - 1);
    else if (action === "undo") undo();
    else if (!cur && onImage) toast("Choose an image first: ↓, or click it");
    else if (action === "class" && state.data.labels[digit - 1]) relabel(cur, "relabel", state.data.labels[digit - 1]);
    else if (action === "restore") relabel(cur, "restore");
    else if (action === "keep") relabel(cur, "keep");
    else if (action === "exclude") relabel(cur, "exclude");
    else if (action === "pick" && cur.dataset) picked.toggle(cur.i);
    else if (action === "open" && !viewerOpen && ev.target.classList.contains("result")) openViewer();
    else return false;
    return true;
  }

  function reload() {
    if (location.hash.length > 1 && !location.hash.includes("=")) return;  // the skip link's #results, not a state
    const side = state.side;
    readHash();
    if (side !== state.side || !state.data) load(); else apply();
  }

  readHash();
  if (PHONE.matches) $("per-class-panel").open = false;  // on a phone the images come first
  UI.keys(KEYS, onKey);
  UI.keys(["maps"]);  // cam.js handles it
  $("results").addEventListener("focusin", (ev) => {
    const node = ev.target.closest(".result");
    if (node && Number(node.dataset.index) !== state.sel) markCurrent(Number(node.dataset.index));
  });
  document.querySelectorAll("[data-side]").forEach((b) => b.addEventListener("click", () => {
    if (state.side === b.dataset.side) return;
    state.side = b.dataset.side;
    Object.assign(state, { truth: "", pred: "", errors: false });
    writeHash();
    load();
  }));
  $("f-true").addEventListener("change", () => { state.truth = $("f-true").value; apply(); });
  $("f-pred").addEventListener("change", () => { state.pred = $("f-pred").value; apply(); });
  $("f-errors").addEventListener("change", () => { state.errors = $("f-errors").checked; apply(); });
  $("sort").addEventListener("change", () => { state.sort = $("sort").value; apply(); });
  $("clear").addEventListener("click", () => { Object.assign(state, { truth: "", pred: "", errors: false }); apply(); });
  $("more").addEventListener("click", () => { state.limit += STEP; renderList(); });
  $("bulk-label").addEventListener("change", () => { const l = $("bulk-label").value; $("bulk-label").value = ""; if (l) bulk("relabel", l); });
  $("bulk-exclude").addEventListener("click", () => bulk("exclude"));
  $("bulk-restore").addEventListener("click", () => bulk("restore"));
  $("bulk-all").addEventListener("click", () => picked.set(state.shown.filter((it) => it.dataset).map((it) => it.i)));
  $("bulk-none").addEventListener("click", () => picked.clear());
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("viewer-prev").addEventListener("click", () => viewerMove(-1));
  $("viewer-next").addEventListener("click", () => viewerMove(1));
  $("viewer").addEventListener("close", () => { if (state.sel >= 0) focusCard(state.sel); });
  UI.swipe($("viewer-stage"), viewerMove);
  window.addEventListener("hashchange", reload);
  UI.onReturn(load);
  showContext();
  load();
})();
