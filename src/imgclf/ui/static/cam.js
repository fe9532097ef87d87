// Class activation maps: where the model finds a class, as an overlay that can be switched on and off.
// Results page: on every card and in the viewer (predicted or true class); try page: on the preview.
// Self-contained: it adds its own controls and follows the pages' images (result cards carry
// data-i, the viewer's image its result's thumbnail URL, the try page's preview a blob URL), so the
// pages only load this script. The key m switches the maps on and off.
"use strict";

(() => {
  const page = document.body.dataset.page;
  if (page !== "results" && page !== "try") return;
  const { el, toast, isShortcut } = UI;
  const $ = (id) => document.getElementById(id);
  const state = { on: false, which: "predicted" };
  const ORIG = "camOrig";  // data-cam-orig: the image's own src while a map is shown

  function mapUrl(i, size) {
    return `api/explain?result=${i}&size=${size}&which=${state.which}`;
  }

  function show(img, url) {
    if (!img.dataset[ORIG]) img.dataset[ORIG] = img.getAttribute("src") || "";
    img.classList.add("cam-loading");
    img.addEventListener("load", () => img.classList.remove("cam-loading"), { once: true });
    img.addEventListener("error", () => { img.dataset.camFailed = state.which; restore(img); }, { once: true });
    img.src = url;
    img.dataset.cam = state.which;
  }

  function restore(img) {
    if (img.dataset[ORIG] !== undefined) {
      img.dataset.camRestored = img.dataset[ORIG];
      img.src = img.dataset[ORIG];
      delete img.dataset[ORIG];
    }
    delete img.dataset.cam;
    img.classList.remove("cam-loading");
  }

  // ------------------------------------------------------------ results page: cards and viewer
  function cardImages() { return Array.from(document.querySelectorAll("#results .result[data-i] img.thumb")); }

  function syncCard(img) {
    const i = img.closest(".result").dataset.i;
    if (state.on && img.dataset.cam !== state.which && img.dataset.camFailed !== state.which) show(img, mapUrl(i, 256));
    else if (!state.on && img.dataset.cam) restore(img);
  }

  function syncViewer() {
    const img = $("viewer-img");
    if (!img) return;
    const own = img.dataset[ORIG] !== undefined ? img.dataset[ORIG] : img.getAttribute("src") || "";
    const m = own.match(/api\/results\/(\d+)\/thumb/);
    if (state.on && m && img.dataset.cam !== state.which && img.dataset.camFailed !== state.which) show(img, mapUrl(m[1], 1024));
    else if (!state.on && img.dataset.cam) restore(img);
  }

  async function check(i) {
    // One map as numbers first: a model that cannot be explained says why once, not on every card.
    try {
      await UI.api(`api/explain?result=${i}&format=json&which=${state.which}`);
      return true;
    } catch (e) {
      toast(`No maps: ${e.message}`, { error: true });
      return false;
    }
  }

  async function setResults(on) {
    const box = $("cam-on");
    if (on && !state.on) {
      const first = cardImages()[0];
      if (first && !(await check(first.closest(".result").dataset.i))) { box.checked = false; return; }
    }
    state.on = on;
    box.checked = on;
    [...cardImages(), $("viewer-img")].forEach((img) => { if (img) delete img.dataset.camFailed; });
    cardImages().forEach(syncCard);
    syncViewer();
  }

  function initResults() {
    const toolbar = document.querySelector("#main .toolbar");
    if (!toolbar) return;
    const which = el("select", { id: "cam-which", class: "btn", "aria-label": "Class to map",
      onchange: () => { state.which = which.value; setResults(state.on); } },
    el("option", { value: "predicted" }, "predicted class"), el("option", { value: "true" }, "true class"));
    const box = el("input", { type: "checkbox", id: "cam-on", onchange: () => setResults(box.checked) });
    toolbar.append(el("span", { class: "cam-control" },
      el("label", { class: "check", title: "Class activation map: where the model finds the class (red most, blue least). Key m" },
        box, "Where the model looks"), which));
    new MutationObserver(() => { if (state.on) cardImages().forEach(syncCard); })
      .observe($("results"), { childList: true, subtree: true });
    const viewerImg = $("viewer-img");
    if (viewerImg) {
      new MutationObserver(() => {
        const src = viewerImg.getAttribute("src") || "";
        if (src.includes("api/explain")) return;  // a map shown here
        if (src === viewerImg.dataset.camRestored) { delete viewerImg.dataset.camRestored; return; }  // its own image back
        delete viewerImg.dataset[ORIG];  // the page opened another image
        delete viewerImg.dataset.camFailed;
        delete viewerImg.dataset.cam;
        syncViewer();
      }).observe(viewerImg, { attributes: true, attributeFilter: ["src"] });
    }
    document.addEventListener("keydown", (ev) => {
      if ((ev.key === "m" || ev.key === "M") && isShortcut(ev)) { ev.preventDefault(); setResults(!state.on); }
    });
  }

  // ------------------------------------------------------------ try page: the uploaded image
  const tried = { own: "", map: "", mapOf: "" };  // the page's image URL, the map's URL and the image it maps

  async function mapOfTried() {
    const source = tried.own;
    const blob = await (await fetch(source)).blob();
    const res = await fetch("../explain?size=1024", { method: "POST", body: blob, credentials: "same-origin",
      headers: { "Content-Type": blob.type || "application/octet-stream" } });
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`;
      try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    const url = URL.createObjectURL(await res.blob());
    if (tried.map) URL.revokeObjectURL(tried.map);
    Object.assign(tried, { map: url, mapOf: source });
  }

  async function setTry(on) {
    const img = $("preview");
    state.on = on;
    $("cam-on").checked = on;
    if (!on || !tried.own) {
      $("cam-status").textContent = "";
      if (img.dataset.cam) { delete img.dataset.cam; img.src = tried.own; }
      return;
    }
    if (tried.mapOf !== tried.own) {
      $("cam-status").textContent = "making the map…";
      try {
        await mapOfTried();
      } catch (e) {
        if (!$("outcome").hidden) toast(`No map: ${e.message}`, { error: true });  // else the page says what is wrong
        state.on = false;
        $("cam-on").checked = false;
        return;
      } finally {
        $("cam-status").textContent = "";
      }
      if (!state.on) return;
    }
    if (state.on && tried.mapOf === tried.own) {
      img.dataset.cam = "predicted";
      img.src = tried.map;
      $("cam-status").textContent = "red: most evidence for the predicted class, blue: least";
    }
  }

  function initTry() {
    const img = $("preview");
    const panel = document.querySelector("#outcome .prediction");
    if (!img || !panel) return;
    const box = el("input", { type: "checkbox", id: "cam-on", onchange: () => setTry(box.checked) });
    panel.append(el("p", { class: "cam-control" },
      el("label", { class: "check", title: "Class activation map of the predicted class (red most, blue least). Key m" },
        box, "Where the model looks"), el("span", { id: "cam-status", class: "muted", "aria-live": "polite" })));
    new MutationObserver(() => {
      const src = img.getAttribute("src") || "";
      if (src === tried.map || src === tried.own) return;  // our own switching
      tried.own = src;  // the page shows a new image
      delete img.dataset.cam;
      if (state.on) setTry(true);
    }).observe(img, { attributes: true, attributeFilter: ["src"] });
    document.addEventListener("keydown", (ev) => {
      if ((ev.key === "m" || ev.key === "M") && isShortcut(ev) && !$("outcome").hidden) { ev.preventDefault(); setTry(!state.on); }
    });
  }

  if (page === "results") initResults(); else initTry();
})();
