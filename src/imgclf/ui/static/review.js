// Dataset page, Review view: the data doctor's findings of the loaded run, worst first.
// One key per decision: a accepts the suggestion, k keeps the label (the doctor stops listing the
// image), x excludes; each is saved at once to the dataset's annotations.csv, like any correction.
"use strict";

(() => {
  const { api, el, badge, setClasses, toast, isShortcut } = UI;
  const $ = (id) => document.getElementById(id);
  const KIND_TEXT = {
    label_issue: "suspected wrong label", cross_class_duplicate: "same image in another class",
    leak: "test copy of a train image", outlier: "far from every class", duplicate: "near duplicate",
  };
  const state = { items: [], sel: -1, loaded: false, error: "" };
  const fileName = (p) => p.split("/").pop();
  const thumbUrl = (path, size, v = "") => `api/thumb?path=${encodeURIComponent(path)}&size=${size}${v ? `&v=${v}` : ""}`;
  const done = (it) => Boolean(it.item && (it.item.status !== "unchanged" || it.item.checked));

  // ------------------------------------------------------------ view switch (?view=review survives a reload)
  function setView(name) {
    const review = name === "review";
    document.body.dataset.view = name;
    $("images-view").hidden = review;
    $("review-view").hidden = !review;
    $("tab-images").setAttribute("aria-selected", String(!review));
    $("tab-review").setAttribute("aria-selected", String(review));
    const qs = new URLSearchParams(location.search);
    if (review) qs.set("view", "review"); else qs.delete("view");
    history.replaceState(null, "", `${location.pathname}${qs.toString() ? "?" + qs : ""}${location.hash}`);
    if (review && !state.loaded) load();
    if (review) focusSelected();
  }

  async function load() {
    try {
      const data = await api("api/review");
      setClasses(data.classes);
      state.items = data.items;
      state.error = "";
    } catch (e) {
      state.items = [];
      state.error = e.message;
    }
    state.loaded = true;
    $("review-count").textContent = state.error ? "" : `(${state.items.filter((it) => !done(it)).length})`;
    renderList();
    select(state.items.findIndex((it) => !done(it)) >= 0 ? state.items.findIndex((it) => !done(it)) : 0);
  }

  // ------------------------------------------------------------ rendering
  function suggestionText(it) {
    return it.suggestion === "exclude" ? "exclude" : `relabel as ${it.suggestion}`;
  }

  function stateText(it) {
    if (!it.item) return "";
    if (it.item.checked) return "kept";
    if (it.item.status === "relabeled") return `relabeled as ${it.item.label}`;
    return it.item.status === "unchanged" ? "" : it.item.status;
  }

  function row(it, i) {
    return el("li", {}, el("button", {
      type: "button", class: "finding", role: "option", tabindex: "-1", "aria-selected": "false",
      dataset: { path: it.path, index: String(i), done: String(done(it)) }, onclick: () => select(i, true),
    }, UI.thumb(thumbUrl(it.path, 128, it.item && it.item.v)),
    el("span", { class: "what" }, badge(it.given), el("span", {}, "→"),
      it.suggestion === "exclude" ? el("span", { class: "badge excluded" }, "exclude") : badge(it.suggestion),
      ...it.findings.map((f) => el("span", { class: "kind" }, KIND_TEXT[f.kind] || f.kind)),
      el("span", { class: "muted", dataset: { role: "state" } }, stateText(it)))));
  }

  function renderList() {
    if (state.error) {
      $("review-list").replaceChildren(el("li", { class: "empty" }, state.error));
    } else if (!state.items.length) {
      $("review-list").replaceChildren(el("li", { class: "empty" }, "No findings: the data doctor found nothing to review."));
    } else {
      $("review-list").replaceChildren(...state.items.map(row));
    }
  }

  function describe(f) {
    if (f.kind === "label_issue") return `Suspected wrong label (rank ${f.rank}): a model that never saw this image gives its label probability ${(100 * f.p_given).toFixed(1)}%.`;
    if (f.kind === "outlier") return `Far from every class: mean cosine distance ${f.distance.toFixed(3)} to its nearest train images (threshold ${f.threshold.toFixed(3)}).`;
    const how = [f.cosine !== null ? `feature cosine ${f.cosine.toFixed(3)}` : "", f.dhash_distance !== null ? `dhash distance ${f.dhash_distance}` : ""].filter(Boolean).join(", ");
    if (f.kind === "cross_class_duplicate" && !f.twin) return "The same picture is in another class: one of the two labels is wrong.";
    return `${KIND_TEXT[f.kind]} of ${f.twin}${how ? ` (${how})` : ""}.`;
  }

  function renderDetail() {
    const it = state.items[state.sel];
    $("review-name").textContent = it ? fileName(it.path) : "No finding selected";
    document.querySelectorAll("#review-actions [data-review]").forEach((b) => { b.disabled = !it; });
    $("review-accept").textContent = it ? `Accept: ${suggestionText(it)}` : "Accept the suggestion";
    if (!it) { $("review-detail").replaceChildren(); return; }
    const neighbours = Object.entries(it.neighbours || {}).map(([cls, rels]) => el("section", {},
      el("h2", {}, `Nearest train images labelled ${cls}`),
      el("div", { class: "neighbours" }, rels.map((rel) => UI.thumb(thumbUrl(rel, 256), { alt: rel })))));
    $("review-detail").replaceChildren(
      UI.thumb(thumbUrl(it.path, 512, it.item && it.item.v), { alt: it.path, cls: "big", lazy: false }),
      el("div", { class: "facts" },
        el("div", {}, el("b", {}, it.path), ` (${it.split})`),
        el("div", {}, "Given label ", badge(it.given), " · suggestion: ", el("b", {}, suggestionText(it))),
        ...it.findings.map((f) => el("p", {}, describe(f))),
        el("div", { id: "review-state" }, stateText(it) ? `Decided: ${stateText(it)}` : "Not decided yet"),
        ...neighbours));
  }

  function select(i, focus = false) {
    const nodes = Array.from(document.querySelectorAll(".finding"));
    nodes.forEach((n) => { n.setAttribute("aria-selected", "false"); n.tabIndex = -1; });
    state.sel = state.items.length ? Math.max(0, Math.min(state.items.length - 1, i)) : -1;
    const node = nodes[state.sel];
    if (node) {
      node.setAttribute("aria-selected", "true");
      node.tabIndex = 0;
      node.scrollIntoView({ block: "nearest" });
      if (focus) node.focus({ preventScroll: true });
    }
    renderDetail();
  }

  function focusSelected() {
    const node = document.querySelectorAll(".finding")[state.sel];
    if (node) node.focus({ preventScroll: true });
  }

  function refresh(item) {
    const i = state.items.findIndex((it) => it.path === item.path);
    if (i < 0) return;
    state.items[i].item = item;
    const node = document.querySelectorAll(".finding")[i];
    if (node) {
      node.dataset.done = String(done(state.items[i]));
      node.querySelector('[data-role="state"]').textContent = stateText(state.items[i]);
    }
    $("review-count").textContent = `(${state.items.filter((it) => !done(it)).length})`;
  }

  // ------------------------------------------------------------ decisions
  async function decide(action) {
    const it = state.items[state.sel];
    if (!it) return;
    const saved = await UI.save("api/review/act", { path: it.path, action }, (res) => {
      refresh(res.item);
      return `${fileName(it.path)} → ${stateText(state.items[state.sel]) || res.item.label}`;
    }, undo);
    if (saved) select(state.sel + 1, true);
  }

  function undo() {
    return UI.undoLast((res) => {
      if (!res.item) return "";
      refresh(res.item);
      const i = state.items.findIndex((it) => it.path === res.item.path);
      if (i >= 0) select(i, true);
      return `Undone: ${fileName(res.item.path)}`;
    });
  }

  function onKey(ev) {
    if (document.body.dataset.view !== "review" || !isShortcut(ev)) return;
    const k = ev.key.toLowerCase();
    let handled = true;
    if (k === "arrowdown" || k === "arrowright" || k === "j") select(state.sel + 1, true);
    else if (k === "arrowup" || k === "arrowleft") select(state.sel - 1, true);
    else if (k === "a") decide("accept");
    else if (k === "k") decide("keep");
    else if (k === "x") decide("exclude");
    else if (k === "u") undo();
    else handled = false;
    if (handled) ev.preventDefault();
  }

  document.addEventListener("keydown", onKey);
  $("tab-images").addEventListener("click", () => setView("images"));
  $("tab-review").addEventListener("click", () => setView("review"));
  $("review-actions").addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-review]");
    if (b) decide(b.dataset.review);
  });
  $("review-undo").addEventListener("click", undo);
  setView(new URLSearchParams(location.search).get("view") === "review" ? "review" : "images");
})();
