// Dataset page: thumbnails per class, filters, and fast corrections by click or keyboard.
// Each correction is sent at once; the server appends it to the dataset's annotations.csv.
"use strict";

(() => {
  const { api, el, badge, colour, setClasses, toast, showContext } = UI;
  const PAGE_SIZE = 100;
  const $ = (id) => document.getElementById(id);

  const state = { label: "", status: "", q: "", page: 0, total: 0, items: [], sel: -1, summary: null, wantSel: "", pickMode: false };
  const picked = UI.selection(() => renderPicked());  // rel paths chosen for one correction of them all

  // ------------------------------------------------------------ URL state (survives a reload)
  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    state.label = h.get("label") || "";
    state.status = h.get("status") || "";
    state.q = h.get("q") || "";
    state.page = Math.max(0, parseInt(h.get("page") || "0", 10) || 0);
    state.wantSel = h.get("sel") || "";
    $("search").value = state.q;
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (state.label) h.set("label", state.label);
    if (state.status) h.set("status", state.status);
    if (state.q) h.set("q", state.q);
    if (state.page) h.set("page", String(state.page));
    const cur = state.items[state.sel];
    if (cur) h.set("sel", cur.path);
    history.replaceState(null, "", `${location.pathname}${location.search}${h.toString() ? "#" + h : ""}`);
  }

  // ------------------------------------------------------------ loading
  // Only the newest listing is shown: one asked for before a correction was saved answers with the
  // state before it, so a correction made while a listing is on its way asks for a fresh one.
  let loads = 0, inflight = 0;
  async function load({ refresh = false, select = "first" } = {}) {
    const qs = new URLSearchParams({ label: state.label, status: state.status, q: state.q,
      offset: String(state.page * PAGE_SIZE), limit: String(PAGE_SIZE) });
    if (refresh) qs.set("refresh", "true");
    const ticket = ++loads;
    let data;
    inflight += 1;
    try {
      data = await api(`api/images?${qs}`);
    } catch (e) {
      if (ticket !== loads) return;
      $("grid").replaceChildren(el("div", { class: "empty", style: { gridColumn: "1 / -1" } }, e.message));
      toast(e.message, { error: true });
      return;
    } finally {
      inflight -= 1;
    }
    if (ticket !== loads) return;
    if (data.total && state.page * PAGE_SIZE >= data.total) {  // the filter shrank: go to its last page
      state.page = Math.floor((data.total - 1) / PAGE_SIZE);
      return load({ select });
    }
    state.total = data.total;
    state.items = data.items;
    setSummary(data.summary);
    renderGrid();
    let idx = -1;
    if (state.wantSel) idx = state.items.findIndex((it) => it.path === state.wantSel);
    if (idx < 0 && state.items.length) idx = select === "last" ? state.items.length - 1 : 0;
    state.wantSel = "";
    selectIndex(idx, { focus: document.activeElement === document.body || document.activeElement?.closest?.("#grid") !== null });
    renderPager();
  }

  function setSummary(summary) {
    state.summary = summary;
    setClasses(summary.classes);
    renderFilters();
    renderClassButtons();
    $("saved-where").textContent = `Corrections are saved at once to ${summary.root}/annotations.csv, with their history; a correction never moves or deletes an image.`;
    document.dispatchEvent(new CustomEvent("imgclf:summary", { detail: summary }));
  }

  // ------------------------------------------------------------ rendering
  function renderFilters() {
    const s = state.summary;
    const entry = (text, count, label, status, extra = null) => {
      const pressed = state.label === label && state.status === status;
      return el("li", {}, el("button", {
        type: "button", class: "filter", "aria-pressed": String(pressed), dataset: { label, status },
        onclick: async () => {
          state.label = label; state.status = status; state.page = 0;
          await load();
          UI.scrollToOnPhone($("actions"));
        },
      }, extra, el("span", {}, text), el("span", { class: "count" }, String(count))));
    };
    const items = [entry("All images", s.total, "", "")];
    s.classes.forEach((c, i) => items.push(entry(c, s.counts[c] || 0, c, "",
      el("span", { class: "swatch", style: { background: colour(c) }, "aria-hidden": "true" }))));
    items.push(el("li", { class: "sep", role: "presentation" }));
    items.push(entry("Relabeled", s.statuses.relabeled, "", "relabeled"));
    items.push(entry("Excluded", s.statuses.excluded, "", "excluded"));
    items.push(entry("Ambiguous", s.statuses.ambiguous, "", "ambiguous"));
    items.push(entry("Pool (no class yet)", s.statuses.pool || 0, "", "pool"));
    $("filters").replaceChildren(...items);
  }

  function renderClassButtons() {
    $("class-buttons").replaceChildren(...state.summary.classes.map((c, i) =>
      el("button", { type: "button", class: "btn", dataset: { act: "relabel", label: c }, title: `Relabel as ${c}` },
        i < 9 ? el("kbd", {}, String(i + 1)) : null,
        el("span", { class: "swatch", style: { background: colour(c) }, "aria-hidden": "true" }), c)));
  }

  const thumbUrl = (it, size) => `api/thumb?path=${encodeURIComponent(it.path)}&size=${size}&v=${it.v}`;
  const fileName = (p) => p.split("/").pop();

  function labelText(it) {
    if (it.status === "excluded") return "excluded";
    if (it.status === "ambiguous") return "ambiguous";
    if (it.status === "pool") return "in the pool, no class yet";
    return it.label;
  }

  function tile(it, i) {
    const img = UI.thumb(thumbUrl(it, 256));
    const node = el("button", {
      type: "button", class: "tile", role: "option", tabindex: "-1", "aria-selected": "false",
      dataset: { path: it.path, index: String(i) },
      onclick: (ev) => {
        if (ev.shiftKey) picked.toggle(it.path, state.items.map((x) => x.path), true);
        else if (ev.ctrlKey || ev.metaKey || state.pickMode) picked.toggle(it.path);
        selectIndex(i, { focus: true });
      },
      ondblclick: () => openViewer(),
    }, img, el("span", { class: "flag" }), el("span", { class: "cap" }));
    fillTile(node, it);
    return node;
  }

  function fillTile(node, it) {
    node.dataset.status = it.status;
    node.dataset.picked = String(picked.has(it.path));
    node.setAttribute("aria-checked", String(picked.has(it.path)));
    node.dataset.label = it.label || "";
    node.setAttribute("aria-label", `${fileName(it.path)}: ${labelText(it)}`);
    const flag = node.querySelector(".flag");
    flag.textContent = it.status === "unchanged" ? "" : it.status.toUpperCase();
    flag.hidden = !flag.textContent;
    const tag = it.label ? badge(it.label) : el("span", { class: `badge ${it.status}` }, it.status);
    const was = it.status === "unchanged" || it.status === "pool" ? []
      : [el("span", { class: "was" }, it.pool ? "from the pool" : `folder: ${it.original}`)];
    node.querySelector(".cap").replaceChildren(tag, ...was, el("span", { class: "name", title: it.path }, fileName(it.path)));
  }

  function renderGrid() {
    const nodes = [];
    let group = null;
    if (!state.items.length) {
      const why = state.total === 0 && !state.label && !state.status && !state.q ? "The dataset has no images." : "No image matches this filter.";
      $("grid").replaceChildren(el("div", { class: "empty", style: { gridColumn: "1 / -1" } }, why));
      return;
    }
    state.items.forEach((it, i) => {
      if (it.original !== group) {
        group = it.original;
        nodes.push(it.pool ? el("h3", { class: "group", role: "presentation" }, "Pool", el("span", { class: "muted" }, "unlabelled images"))
          : el("h3", { class: "group", role: "presentation" },
            el("span", { class: "swatch", style: { background: colour(group) }, "aria-hidden": "true" }), group,
            el("span", { class: "muted" }, "folder")));
      }
      nodes.push(tile(it, i));
    });
    $("grid").replaceChildren(...nodes);
  }

  function renderPager() {
    const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
    const from = state.total ? state.page * PAGE_SIZE + 1 : 0;
    const to = Math.min(state.total, (state.page + 1) * PAGE_SIZE);
    $("page-info").textContent = `Page ${state.page + 1} of ${pages} · images ${from}–${to} of ${state.total}`;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  // ------------------------------------------------------------ selection
  const tiles = () => Array.from($("grid").querySelectorAll(".tile"));

  function selectIndex(i, { focus = false } = {}) {
    const all = tiles();
    all.forEach((t) => { t.setAttribute("aria-selected", "false"); t.tabIndex = -1; });
    state.sel = i;
    const cur = state.items[i];
    const node = all[i];
    if (node) {
      node.setAttribute("aria-selected", "true");
      node.tabIndex = 0;
      if (focus) node.focus({ preventScroll: true });
      node.scrollIntoView({ block: "nearest" });
    }
    $("selected-name").textContent = cur ? fileName(cur.path) : "No image selected";
    document.querySelectorAll("#actions [data-act]").forEach((b) => { b.disabled = !cur; });
    writeHash();
    if ($("viewer").open) fillViewer();
  }

  async function move(delta) {
    const n = state.items.length;
    if (!n) return;
    const next = state.sel + delta;
    if (next >= n && (state.page + 1) * PAGE_SIZE < state.total) { state.page += 1; await load({ select: "first" }); return; }
    if (next < 0 && state.page > 0) { state.page -= 1; await load({ select: "last" }); return; }
    selectIndex(Math.max(0, Math.min(n - 1, next)), { focus: true });
  }

  // Up and down go to the nearest tile in the row above or below, whatever the grid's width.
  function moveVertical(dir) {
    const all = tiles();
    const cur = all[state.sel];
    if (!cur) return;
    const r0 = cur.getBoundingClientRect();
    const cx = r0.left + r0.width / 2;
    const rows = all.map((t, i) => ({ i, r: t.getBoundingClientRect() }))
      .filter(({ r }) => (dir > 0 ? r.top > r0.top + 4 : r.top < r0.top - 4));
    if (!rows.length) { move(dir * PAGE_SIZE); return; }
    const rowTop = dir > 0 ? Math.min(...rows.map(({ r }) => r.top)) : Math.max(...rows.map(({ r }) => r.top));
    const row = rows.filter(({ r }) => Math.abs(r.top - rowTop) < 4);
    row.sort((a, b) => Math.abs(a.r.left + a.r.width / 2 - cx) - Math.abs(b.r.left + b.r.width / 2 - cx));
    selectIndex(row[0].i, { focus: true });
  }

  // ------------------------------------------------------------ corrections
  function updateItem(item) {
    const i = state.items.findIndex((it) => it.path === item.path);
    if (i < 0) return -1;
    state.items[i] = item;
    const node = tiles()[i];
    if (node) fillTile(node, item);
    return i;
  }

  // ------------------------------------------------------------ several images at once
  function renderPicked() {
    const n = picked.size;
    $("picked-count").textContent = n ? `${n} selected` : "";
    $("picked-count").title = n ? "The actions and keys apply to all the selected images" : "";
    $("pick-none").hidden = !n;
    tiles().forEach((t) => {
      t.dataset.picked = String(picked.has(t.dataset.path));
      t.setAttribute("aria-checked", t.dataset.picked);
    });
  }

  async function pickAll() {
    try {
      const res = await api(`api/images/paths?${new URLSearchParams({ label: state.label, status: state.status, q: state.q })}`);
      picked.set(res.paths);
    } catch (e) {
      toast(e.message, { error: true });
    }
  }

  async function actOnPicked(action, label) {
    const paths = [...picked.keys];
    const what = action === "relabel" ? label : action;
    const saved = await UI.save("api/annotate/many", { paths, action, label }, (res) => {
      res.items.forEach(updateItem);
      setSummary(res.summary);
      return `${paths.length} images → ${what} (${res.changed} changed)`;
    }, undo);
    if (saved) {  // the filter may no longer hold them: list it again, on the same image
      picked.clear();
      state.wantSel = state.items[state.sel]?.path || "";
      load();
    }
  }

  async function act(action, label = "") {
    // the selection, unless the viewer is open: its keys and buttons act on the image it shows
    if (picked.size && !$("viewer").open) { await actOnPicked(action, label); return; }
    const cur = state.items[state.sel];
    if (!cur) return;
    const saved = await UI.save("api/annotate", { path: cur.path, action, label }, (res) => {
      reloadIfStale();
      updateItem(res.item);
      setSummary(res.summary);
      return `${fileName(cur.path)} → ${labelText(res.item)}`;
    }, undo);
    if (!saved) return;
    if ($("advance").checked && !$("viewer").open) move(1);
    else selectIndex(state.sel, { focus: true });
  }

  function reloadIfStale() {
    if (!inflight) return;
    state.wantSel = state.items[state.sel]?.path || "";
    load();
  }

  function undo() {
    return UI.undoLast((res) => {
      const text = showUndone(res);
      reloadIfStale();
      return text;
    });
  }

  function showUndone(res) {
    setSummary(res.summary);
    if ((res.removed || []).length) {  // an upload undone: its images left the dataset
      load({ refresh: true });
      return `Undone: ${res.removed.length} added image${res.removed.length === 1 ? "" : "s"} moved out of the dataset (to .imgclf-removed/, not deleted)`;
    }
    (res.items || []).forEach(updateItem);
    if (!res.item) return "";
    const i = updateItem(res.item);
    if (i >= 0) selectIndex(i, { focus: true });
    if ((res.items || []).length > 1) return `Undone: ${res.items.length} images are back as they were`;
    return `Undone: ${fileName(res.item.path)} is ${labelText(res.item)} again`;
  }

  // ------------------------------------------------------------ viewer
  function fillViewer() {
    const cur = state.items[state.sel];
    if (!cur) return;
    UI.show($("viewer-img"), $("viewer-stage"), thumbUrl(cur, 1024));
    $("viewer-img").alt = cur.path;
    $("viewer-title").textContent = cur.path;
    $("viewer-label").replaceChildren(cur.label ? badge(cur.label) : el("span", { class: `badge ${cur.status}` }, cur.status));
    const classes = state.summary ? state.summary.classes : [];
    $("viewer-actions").replaceChildren(...[
      ...classes.filter((c) => c !== cur.label).map((c) => el("button", { type: "button", class: "btn", onclick: () => act("relabel", c) }, `→ ${c}`)),
      cur.status !== "excluded" ? el("button", { type: "button", class: "btn danger", onclick: () => act("exclude") }, "Exclude") : null,
      cur.status !== "unchanged" ? el("button", { type: "button", class: "btn", onclick: () => act("restore") }, "Restore") : null,
    ].filter(Boolean));
    document.dispatchEvent(new CustomEvent("imgclf:viewer", { detail: { slot: $("viewer-overlay"), item: cur, side: "dataset" } }));
  }
  function openViewer() {
    if (!state.items[state.sel]) return;
    fillViewer();
    if (!$("viewer").open) $("viewer").showModal();
    $("viewer-close").focus();
  }
  function closeViewer() {
    $("viewer").close();
  }

  // ------------------------------------------------------------ keys and clicks
  const KEYS = ["prev", "next", "up", "down", "first", "last", "pageUp", "pageDown", "open", "class", "restore", "keep", "exclude",
    "ambiguous", "undo", "pick", "escape"];
  const REVIEW_KEYS = ["up", "down", "accept", "keep", "exclude", "undo"];  // the Review view's (review.js handles them)

  function onKey(action, ev, digit) {
    if (document.body.dataset.view === "review") return false;
    if (document.querySelector("dialog[open]:not(#viewer)")) return false;  // another dialog (intake.js's) has the keys
    const viewerOpen = $("viewer").open;
    const classes = state.summary ? state.summary.classes : [];
    if (action === "next") move(1);
    else if (action === "prev") move(-1);
    else if (action === "down") viewerOpen ? move(1) : moveVertical(1);
    else if (action === "up") viewerOpen ? move(-1) : moveVertical(-1);
    else if (action === "first") selectIndex(0, { focus: true });
    else if (action === "last") selectIndex(state.items.length - 1, { focus: true });
    else if (action === "pageDown") { if (!$("next").disabled) { state.page += 1; load(); } }
    else if (action === "pageUp") { if (!$("prev").disabled) { state.page -= 1; load(); } }
    else if (action === "class" && classes[digit - 1]) act("relabel", classes[digit - 1]);
    else if (action === "restore") act("restore");
    else if (action === "keep") act("keep");
    else if (action === "exclude") act("exclude");
    else if (action === "ambiguous") act("ambiguous");
    else if (action === "undo") undo();
    else if (action === "pick" && state.items[state.sel]) picked.toggle(state.items[state.sel].path);
    else if (action === "escape" && !viewerOpen && picked.size) picked.clear();
    else if (action === "open") {
      const t = ev.target;  // Enter on a link or another button is theirs, not "open the chosen image"
      if (t.closest("a, summary") || (t.tagName === "BUTTON" && !t.classList.contains("tile") && t.id !== "viewer-close")) return false;
      viewerOpen ? closeViewer() : openViewer();
    } else return false;
    return true;
  }

  function wire() {
    UI.keys(() => (document.body.dataset.view === "review" ? [] : KEYS), onKey);
    UI.keys(() => (document.body.dataset.view === "review" ? REVIEW_KEYS : []));
    $("actions").addEventListener("click", (ev) => {
      const b = ev.target.closest("[data-act]");
      if (b) act(b.dataset.act, b.dataset.label || "");
    });
    $("undo").addEventListener("click", undo);
    $("prev").addEventListener("click", () => { state.page -= 1; load(); });
    $("next").addEventListener("click", () => { state.page += 1; load(); });
    $("viewer-close").addEventListener("click", closeViewer);
    $("viewer-prev").addEventListener("click", () => move(-1));
    $("viewer-next").addEventListener("click", () => move(1));
    $("viewer").addEventListener("close", () => tiles()[state.sel]?.focus({ preventScroll: true }));
    UI.swipe($("viewer-stage"), (d) => move(d));
    $("pick-mode").addEventListener("click", () => {
      state.pickMode = !state.pickMode;
      $("pick-mode").setAttribute("aria-pressed", String(state.pickMode));
    });
    $("pick-all").addEventListener("click", pickAll);
    $("pick-none").addEventListener("click", () => picked.clear());
    window.addEventListener("hashchange", () => {
      if (location.hash.length > 1 && !location.hash.includes("=")) return;  // the skip link's #grid, not a state
      readHash();
      load();
    });
    UI.onReturn(() => load({ refresh: true }));
    document.addEventListener("imgclf:dataset-changed", () => load({ refresh: true }));  // intake.js added or relabelled images
    new ResizeObserver(() => document.documentElement.style.setProperty("--toolbar-h", `${$("actions").offsetHeight}px`)).observe($("actions"));
    let timer = null;
    $("search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.q = $("search").value.trim(); state.page = 0; load(); }, 250);
    });
  }

  readHash();
  wire();
  showContext();
  load({ refresh: true });
})();
