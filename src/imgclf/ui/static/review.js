// Dataset page, Review view: the data doctor's findings of the loaded run, worst first.
// Filters by finding type, class and split; findings decided in an earlier review are hidden unless
// "show decided" is on. One key per decision: a accepts the suggestion, k keeps the label (the doctor
// stops listing the image), x excludes; with findings selected (m, the cards' boxes, "Select all
// shown") the decision applies to all of them as one correction. Each is saved at once to the
// dataset's annotations.csv, like any correction.
"use strict";

(() => {
  const { api, el, badge, setClasses, toast, isShortcut } = UI;
  const $ = (id) => document.getElementById(id);
  const KIND_TEXT = {
    label_issue: "suspected wrong label", cross_class_duplicate: "same image in another class",
    leak: "test copy of a train image", outlier: "far from every class", duplicate: "near duplicate",
  };
  const state = { items: [], shown: [], sel: -1, loaded: false, error: "", picked: new Set() };
  const fileName = (p) => p.split("/").pop();
  const pct = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.005 ? 1 : 0)}%`;
  const thumbUrl = (path, size, v = "") => `api/thumb?path=${encodeURIComponent(path)}&size=${size}${v ? `&v=${v}` : ""}`;
  const done = (it) => Boolean(it.decided || (it.item && (it.item.status !== "unchanged" || it.item.checked)));

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

  function fillSelect(id, values) {
    const select = $(id);
    const keep = select.value;
    select.replaceChildren(select.options[0], ...values.map((v) => el("option", { value: v }, v)));
    select.value = values.includes(keep) ? keep : "";
  }

  async function load() {
    try {
      const data = await api("api/review");
      setClasses(data.classes);
      state.items = data.items;
      state.error = "";
      fillSelect("review-class", data.classes);
      fillSelect("review-split", [...new Set(data.items.map((it) => it.split))].sort());
    } catch (e) {
      state.items = [];
      state.error = e.message;
    }
    state.loaded = true;
    applyFilters();
  }

  // ------------------------------------------------------------ filters
  function matches(it) {
    const type = $("review-type").value, cls = $("review-class").value, split = $("review-split").value;
    return (!type || it.types.includes(type)) && (!cls || it.given === cls || it.suggestion === cls)
      && (!split || it.split === split) && ($("review-show-decided").checked || !it.decided);
  }

  function applyFilters(keepPath = "") {
    const before = keepPath || (state.shown[state.sel] || {}).path;
    state.shown = state.items.filter(matches);
    const shownPaths = new Set(state.shown.map((it) => it.path));
    state.picked.forEach((p) => { if (!shownPaths.has(p)) state.picked.delete(p); });
    renderList();
    counts();
    const again = state.shown.findIndex((it) => it.path === before);
    const open = state.shown.findIndex((it) => !done(it));
    select(again >= 0 ? again : Math.max(open, 0));
  }

  function counts() {
    $("review-count").textContent = state.error ? "" : `(${state.items.filter((it) => !done(it)).length})`;
    const decided = state.items.filter((it) => it.decided).length;
    $("review-decided-count").textContent = decided ? `(${decided})` : "";
    const n = state.picked.size;
    $("review-picked").textContent = n ? `${n} selected` : "";
    $("review-pick-none").hidden = !n;
  }

  // ------------------------------------------------------------ rendering
  function suggestionText(it) {
    return it.suggestion === "exclude" ? "exclude" : `relabel as ${it.suggestion}`;
  }

  function stateText(it) {
    if (it.decided && !(it.item && (it.item.status !== "unchanged" || it.item.checked))) return `decided earlier (${it.decided})`;
    if (!it.item) return "";
    if (it.item.checked) return "kept";
    if (it.item.status === "relabeled") return `relabeled as ${it.item.label}`;
    return it.item.status === "unchanged" ? "" : it.item.status;
  }

  // How sure the doctor is, in a few words: the label finding's out-of-fold probability of the given
  // label and the neighbours' votes; a pair's similarity; an outlier's distance against the threshold.
  function sureText(it) {
    const f = it.findings[0];
    if ((f.kind === "label_issue" || f.kind === "cross_class_duplicate") && f.p_given !== undefined) {
      const votes = it.votes ? ` · ${it.votes.suggested}/${it.votes.of} neighbours ${it.suggestion}` : "";
      return `${pct(1 - f.p_given)} sure${votes}`;
    }
    if (f.cosine !== undefined && f.cosine !== null) return `cosine ${f.cosine.toFixed(3)}`;
    if (f.dhash_distance !== undefined && f.dhash_distance !== null) return `dhash distance ${f.dhash_distance}`;
    if (f.kind === "outlier") return `${(f.distance / f.threshold).toFixed(2)}× the threshold`;
    return "";
  }

  function row(it, i) {
    const picked = state.picked.has(it.path);
    const box = el("input", {
      type: "checkbox", class: "pick", tabindex: "-1", "aria-label": `select ${fileName(it.path)}`,
      onchange: (ev) => { togglePick(it.path, ev.target.checked); },
    });
    box.checked = picked;
    return el("li", { class: "finding-row", dataset: { picked: String(picked) } }, box, el("button", {
      type: "button", class: "finding", role: "option", tabindex: "-1", "aria-selected": "false",
      dataset: { path: it.path, index: String(i), done: String(done(it)) },
      onclick: (ev) => (ev.shiftKey ? pickRange(i) : select(i, true)),
    }, UI.thumb(thumbUrl(it.path, 128, it.item && it.item.v)),
    el("span", { class: "what" }, badge(it.given), el("span", {}, "→"),
      it.suggestion === "exclude" ? el("span", { class: "badge excluded" }, "exclude") : badge(it.suggestion),
      ...it.findings.map((f) => el("span", { class: "kind" }, KIND_TEXT[f.kind] || f.kind)),
      el("span", { class: "sure" }, sureText(it)),
      el("span", { class: "state", dataset: { role: "state" } }, stateText(it)))));
  }

  function renderList() {
    if (state.error) {
      $("review-list").replaceChildren(el("li", { class: "empty" }, state.error));
    } else if (!state.items.length) {
      $("review-list").replaceChildren(el("li", { class: "empty" }, "No findings: the data doctor found nothing to review."));
    } else if (!state.shown.length) {
      $("review-list").replaceChildren(el("li", { class: "empty" }, "No finding matches these filters."));
    } else {
      $("review-list").replaceChildren(...state.shown.map(row));
    }
  }

  function describe(it, f) {
    if (f.decision) return `Decided in an earlier review (${f.decision}): ${KIND_TEXT[f.kind] || f.kind}.`;
    if (f.kind === "label_issue") {
      const p = f.p_suggested !== undefined ? ` and ${it.suggestion} ${pct(f.p_suggested)}` : "";
      const votes = it.votes ? ` Nearest ${it.votes.of} train images: ${it.votes.given} labelled ${it.given}, ${it.votes.suggested} labelled ${it.suggestion}.` : "";
      return `Suspected wrong label (rank ${f.rank}): models that never saw this image give ${it.given} ${pct(f.p_given)}${p}.${votes}`;
    }
    if (f.kind === "outlier") return `Far from every class: mean cosine distance ${f.distance.toFixed(3)} to its nearest train images (threshold ${f.threshold.toFixed(3)}).`;
    const how = [f.cosine != null ? `feature cosine ${f.cosine.toFixed(3)}` : "", f.dhash_distance != null ? `dhash distance ${f.dhash_distance}` : ""].filter(Boolean).join(", ");
    if (f.kind === "cross_class_duplicate" && !f.twin) return "The same picture is in another class: one of the two labels is wrong.";
    return `${KIND_TEXT[f.kind]} of ${f.twin}${how ? ` (${how})` : ""}.`;
  }

  function renderActions() {
    const it = state.shown[state.sel];
    const n = state.picked.size;
    document.querySelectorAll("#review-actions [data-review]").forEach((b) => { b.disabled = !it && !n; });
    $("review-name").textContent = n ? `${n} selected` : it ? fileName(it.path) : "No finding selected";
    $("review-accept").textContent = n ? `Accept ${n} suggestions` : it ? `Accept: ${suggestionText(it)}` : "Accept the suggestion";
    $("review-keep").textContent = n ? `Keep ${n} labels` : "Keep the label";
    $("review-exclude").textContent = n ? `Exclude ${n}` : "Exclude";
  }

  function renderDetail() {
    const it = state.shown[state.sel];
    renderActions();
    if (!it) { $("review-detail").replaceChildren(); return; }
    const neighbours = Object.entries(it.neighbours || {}).map(([cls, rels]) => el("section", {},
      el("h2", {}, `Nearest train images labelled ${cls}`),
      el("div", { class: "neighbours" }, rels.map((rel) => UI.thumb(thumbUrl(rel, 256), { alt: rel })))));
    $("review-detail").replaceChildren(
      UI.thumb(thumbUrl(it.path, 512, it.item && it.item.v), { alt: it.path, cls: "big", lazy: false }),
      el("div", { class: "facts" },
        el("div", {}, el("b", {}, it.path), ` (${it.split})`),
        el("div", {}, "Given label ", badge(it.given), " · suggestion: ", el("b", {}, suggestionText(it))),
        ...it.findings.map((f) => el("p", {}, describe(it, f))),
        el("div", { id: "review-state" }, stateText(it) ? `Decided: ${stateText(it)}` : "Not decided yet"),
        ...neighbours));
  }

  function select(i, focus = false) {
    const nodes = Array.from(document.querySelectorAll(".finding"));
    nodes.forEach((n) => { n.setAttribute("aria-selected", "false"); n.tabIndex = -1; });
    state.sel = state.shown.length ? Math.max(0, Math.min(state.shown.length - 1, i)) : -1;
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

  // ------------------------------------------------------------ selecting several
  function togglePick(path, on) {
    if (on) state.picked.add(path); else state.picked.delete(path);
    const i = state.shown.findIndex((it) => it.path === path);
    const li = document.querySelectorAll(".finding-row")[i];
    if (li) { li.dataset.picked = String(on); li.querySelector(".pick").checked = on; }
    counts();
    renderActions();
  }

  function pickRange(i) {
    const [a, b] = [Math.min(i, Math.max(state.sel, 0)), Math.max(i, Math.max(state.sel, 0))];
    for (let j = a; j <= b; j += 1) togglePick(state.shown[j].path, true);
    select(i, true);
  }

  function pickAll(on) {
    state.shown.forEach((it) => togglePick(it.path, on));
  }

  function refresh(item) {
    const it = state.items.find((x) => x.path === item.path);
    if (!it) return;
    it.item = item;
    const i = state.shown.indexOf(it);
    const node = document.querySelectorAll(".finding")[i];
    if (node) {
      node.dataset.done = String(done(it));
      node.querySelector('[data-role="state"]').textContent = stateText(it);
    }
    counts();
  }

  // ------------------------------------------------------------ decisions
  async function decide(action) {
    if (state.picked.size) return decideMany(action);
    const it = state.shown[state.sel];
    if (!it) return;
    const saved = await UI.save("api/review/act", { path: it.path, action }, (res) => {
      refresh(res.item);
      return `${fileName(it.path)} → ${stateText(it) || res.item.label}`;
    }, undo);
    if (saved) select(state.sel + 1, true);
  }

  async function decideMany(action) {
    const paths = state.shown.filter((it) => state.picked.has(it.path)).map((it) => it.path);
    const saved = await UI.save("api/review/act-many", { paths, action }, (res) => {
      res.items.forEach(refresh);
      return `${action === "accept" ? "Accepted" : action === "keep" ? "Kept" : "Excluded"} ${paths.length} findings`;
    }, undo);
    if (saved) {
      state.picked.clear();
      document.querySelectorAll(".finding-row").forEach((li) => { li.dataset.picked = "false"; li.querySelector(".pick").checked = false; });
      counts();
      renderDetail();
    }
  }

  function undo() {
    return UI.undoLast((res) => {
      const items = res.items && res.items.length ? res.items : res.item ? [res.item] : [];
      if (!items.length) return "";
      items.forEach(refresh);
      const i = state.shown.findIndex((it) => it.path === items[0].path);
      if (i >= 0) select(i, true);
      return items.length > 1 ? `Undone: ${items.length} findings` : `Undone: ${fileName(items[0].path)}`;
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
    else if (k === "m" && state.shown[state.sel]) togglePick(state.shown[state.sel].path, !state.picked.has(state.shown[state.sel].path));
    else if (k === "escape" && state.picked.size) pickAll(false);
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
  ["review-type", "review-class", "review-split", "review-show-decided"].forEach((id) => $(id).addEventListener("change", () => applyFilters()));
  $("review-pick-all").addEventListener("click", () => pickAll(true));
  $("review-pick-none").addEventListener("click", () => pickAll(false));
  setView(new URLSearchParams(location.search).get("view") === "review" ? "review" : "images");
})();
