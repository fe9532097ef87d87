// Class activation maps: where the model finds a class, as an overlay that can be switched on and off.
// Results page: over every card's thumbnail and in the viewer (the predicted or the true class);
// try page: over each classified image, with its colour key. The key w switches the maps on and off
// (m selects images on the results page).
// Self-contained: the pages announce what they draw (events on document: imgclf:card {node, item,
// side}, imgclf:viewer {slot, item, side}, imgclf:prediction {node, result, file}) and leave a place
// for overlays (.thumbwrap[data-overlay], #viewer-overlay); the map is an image laid over the page's
// own, which is never changed, so switching off just removes the overlays.
"use strict";

(() => {
  const page = document.body.dataset.page;
  if (page !== "results" && page !== "try") return;
  const { el, toast, isShortcut } = UI;
  const $ = (id) => document.getElementById(id);
  const KEY = "w";
  const TITLE = "Class activation map: where the model finds the class (red most evidence, blue least). Key w";
  const state = { on: false, which: "predicted" };

  // The overlay of ``host`` (a thumbnail frame or the viewer's slot) shows ``url``; no url removes it.
  // An overlay that cannot be loaded is removed and that url not asked for again in this host.
  function overlay(host, url) {
    let img = host.querySelector(":scope > img.cam-overlay");
    if (!url) { if (img) img.remove(); return; }
    if ((img && img.dataset.map === url) || host.dataset.camFailed === url) return;
    if (!img) {
      img = el("img", { class: "cam-overlay", alt: "", "aria-hidden": "true", decoding: "async" });
      host.append(img);
    }
    img.classList.add("cam-loading");
    img.dataset.map = url;
    img.onload = () => { if (img.dataset.map === url) img.classList.remove("cam-loading"); };
    img.onerror = () => { if (img.dataset.map === url) { host.dataset.camFailed = url; img.remove(); } };
    img.src = url;
  }

  function addKey(dt, dd) {
    const keys = document.querySelector("dl.keys");
    if (keys) keys.append(el("dt", {}, el("kbd", {}, dt)), el("dd", {}, dd));
  }

  function onKey(toggle, when = () => true) {
    document.addEventListener("keydown", (ev) => {
      if ((ev.key === KEY || ev.key === KEY.toUpperCase()) && isShortcut(ev) && when()) { ev.preventDefault(); toggle(); }
    });
  }

  // ------------------------------------------------------------ results page: cards and viewer
  // A test image is a row of the run's predictions.csv (result=I, the classes by which=). A train image
  // (scored out of fold) is not a row there: it is mapped by its path in the dataset, for the class its
  // card names, and has no map when it is not in the opened dataset folder.
  const shown = new WeakMap();  // thumbnail frame → {item, side} of its card
  const viewer = { slot: null, item: null, side: "test" };

  function mapUrl(item, side, size, format = "png") {
    const q = new URLSearchParams({ size: String(size), format });
    if (side === "test") {
      q.set("result", String(item.i));
      q.set("which", state.which);
    } else if (item.dataset_path) {
      q.set("path", item.dataset_path);
      q.set("class", state.which === "true" ? item.label : item.predicted);
    } else {
      return null;
    }
    return `api/explain?${q}`;
  }

  function frames() { return Array.from(document.querySelectorAll('#results .thumbwrap[data-overlay="result"]')); }

  function syncFrame(frame) {
    const s = shown.get(frame);
    overlay(frame, state.on && s ? mapUrl(s.item, s.side, 256) : null);
  }

  function syncViewer() {
    if (viewer.slot) overlay(viewer.slot, state.on && viewer.item ? mapUrl(viewer.item, viewer.side, 1024) : null);
  }

  async function explainable() {
    // One map as numbers first: a model that cannot be explained says why once, not on every card.
    const s = frames().map((f) => shown.get(f)).find((x) => x && mapUrl(x.item, x.side, 256));
    if (!s) return true;
    try {
      await UI.api(mapUrl(s.item, s.side, 256, "json"));
      return true;
    } catch (e) {
      toast(`No maps: ${e.message}`, { error: true });
      return false;
    }
  }

  async function setResults(on) {
    const box = $("cam-on");
    if (on && !state.on && !(await explainable())) { box.checked = false; return; }
    state.on = on;
    box.checked = on;
    box.closest(".cam-control").querySelector(".cam-scale").hidden = !on;
    [...frames(), viewer.slot].forEach((h) => { if (h) delete h.dataset.camFailed; });
    frames().forEach(syncFrame);
    syncViewer();
  }

  function initResults() {
    const toolbar = $("bulk");
    if (!toolbar) return;
    const which = el("select", { id: "cam-which", class: "btn", "aria-label": "Class to map",
      onchange: () => { state.which = which.value; setResults(state.on); } },
    el("option", { value: "predicted" }, "predicted class"), el("option", { value: "true" }, "true class"));
    const box = el("input", { type: "checkbox", id: "cam-on", onchange: () => setResults(box.checked) });
    const control = el("span", { class: "cam-control" }, el("label", { class: "check", title: TITLE }, box, "Where the model looks"), which,
      el("span", { class: "cam-scale", title: "blue: least evidence for the class, red: most", hidden: true }));
    const count = $("count");
    if (count) count.after(control); else toolbar.prepend(control);
    addKey(KEY, "where the model looks (class maps)");
    document.addEventListener("imgclf:card", (ev) => {
      const { node, item, side } = ev.detail;
      const frame = node.querySelector('.thumbwrap[data-overlay="result"]');
      if (!frame) return;
      shown.set(frame, { item, side });
      syncFrame(frame);
    });
    document.addEventListener("imgclf:viewer", (ev) => {
      const { slot, item, side } = ev.detail;
      if (viewer.slot && viewer.slot !== slot) overlay(viewer.slot, null);
      Object.assign(viewer, { slot, item, side });
      delete slot.dataset.camFailed;
      syncViewer();
    });
    onKey(() => setResults(!state.on));
  }

  // ------------------------------------------------------------ try page: each classified image
  const tried = new WeakMap();  // outcome node → {file, cls, map (a blob URL once made), failed}
  const blobs = new Set();
  let queue = Promise.resolve();  // one map at a time, in the order the images were classified

  // The class the outcome names: its label, or the nearest class of an unknown image; else the most likely one.
  function classOf(result) {
    const scores = result.scores || {};
    const named = [result.nearest_label, result.label].find((c) => c && c in scores);
    if (named) return named;
    const ranked = Object.entries(scores).sort((a, b) => b[1] - a[1]);
    return ranked.length ? ranked[0][0] : "";
  }

  async function makeMap(entry) {
    const q = new URLSearchParams({ size: "512" });
    if (entry.cls) q.set("class", entry.cls);
    const res = await fetch(`../explain?${q}`, { method: "POST", body: entry.file, credentials: "same-origin",
      headers: { "Content-Type": entry.file.type || "application/octet-stream" } });
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`;
      try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    entry.map = URL.createObjectURL(await res.blob());
    blobs.add(entry.map);
  }

  function colourKey(node, entry) {
    let key = node.querySelector(".cam-key");
    if (!state.on || !entry.map) { if (key) key.remove(); return; }
    if (!key) {
      key = el("p", { class: "cam-key small" });
      node.querySelector(".prediction").append(key);
    }
    key.replaceChildren(el("span", { class: "cam-scale", "aria-hidden": "true" }),
      `Where the model finds ${entry.cls || "the predicted class"}: red most evidence, blue least`);
  }

  function syncOutcome(node) {
    const entry = tried.get(node);
    const frame = node.querySelector('.thumbwrap[data-overlay="try"]');
    if (!entry || !frame) return;
    if (state.on && !entry.map && !entry.failed && !entry.pending) {
      entry.pending = true;
      $("cam-status").textContent = "making the maps…";
      queue = queue.then(async () => {
        try {
          await makeMap(entry);
        } catch (e) {
          entry.failed = true;
          toast(`No map: ${e.message}`, { error: true });
        }
        entry.pending = false;
        syncOutcome(node);
        if (!document.querySelector(".outcome.cam-pending")) $("cam-status").textContent = "";
      });
    }
    node.classList.toggle("cam-pending", Boolean(state.on && entry.pending));
    overlay(frame, state.on && entry.map ? entry.map : null);
    colourKey(node, entry);
  }

  function outcomes() { return Array.from(document.querySelectorAll("#outcomes .outcome")); }

  function setTry(on) {
    state.on = on;
    $("cam-on").checked = on;
    if (!on) $("cam-status").textContent = "";
    outcomes().forEach((node) => { const e = tried.get(node); if (e && on) e.failed = false; syncOutcome(node); });
  }

  function initTry() {
    const bar = $("try-bar");
    if (!bar) return;
    const box = el("input", { type: "checkbox", id: "cam-on", onchange: () => setTry(box.checked) });
    const control = el("span", { class: "cam-control" },
      el("label", { class: "check", title: TITLE }, box, "Where the model looks"),
      el("span", { id: "cam-status", class: "muted", "aria-live": "polite" }));
    const count = $("try-count");
    if (count) count.after(control); else bar.prepend(control);
    document.addEventListener("imgclf:prediction", (ev) => {
      const { node, result, file } = ev.detail;
      tried.set(node, { file, cls: classOf(result), map: "", failed: false, pending: false });
      syncOutcome(node);
    });
    const clear = $("try-clear");
    if (clear) clear.addEventListener("click", () => { blobs.forEach((u) => URL.revokeObjectURL(u)); blobs.clear(); });
    onKey(() => setTry(!state.on), () => !bar.hidden);
  }

  if (page === "results") initResults(); else initTry();
})();
