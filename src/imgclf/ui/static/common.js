// Helpers shared by the three pages: API calls, DOM building, score bars, toasts, class colours.
// Plain browser JavaScript, no build step. Requests are same-origin, so the service's token
// cookie (set when a page is first opened with ?token=...) goes with every call.
"use strict";

const UI = (() => {
  const PALETTE = ["#1f5fd6", "#c2410c", "#0f766e", "#7c3aed", "#b91c1c", "#4d7c0f", "#a21caf", "#0369a1", "#92400e", "#475569"];

  async function api(path, options = {}) {
    // no-store: a page opened again with Back must not be handed an answer from before a correction
    const opts = { credentials: "same-origin", cache: "no-store", ...options, headers: { ...(options.headers || {}) } };
    if (opts.json !== undefined) {
      opts.method = opts.method || "POST";
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const msg = (data && (data.error || data.detail)) || `${res.status} ${res.statusText}`;
      const err = new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  let classOrder = [];
  function setClasses(labels) { classOrder = labels.slice(); }
  // Ten hand-picked colours, then hues spread by the golden angle at three lightnesses, each darkened
  // until white text on it has a contrast of at least 4.5:1: every class of a large label set gets
  // its own colour, and its name stays readable on it.
  function colour(label) {
    const i = Math.max(0, classOrder.indexOf(label));
    if (i < PALETTE.length) return PALETTE[i];
    const j = i - PALETTE.length;
    const h = Math.round((j * 137.508 + 20) % 360), s = 62 - 10 * (j % 2);
    let l = [34, 42, 28][j % 3];
    while (l > 5 && contrast([255, 255, 255], hslToRgb(h, s, l)) < 4.6) l -= 2;
    return `hsl(${h}, ${s}%, ${l}%)`;
  }
  function hslToRgb(h, s, l) {
    s /= 100; l /= 100;
    const k = (n) => (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return [0, 8, 4].map((n) => 255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
  }
  // WCAG 2 contrast ratio of two sRGB colours ([r, g, b], 0-255).
  function contrast(a, b) {
    const lum = ([r, g, bl]) => {
      const [R, G, B] = [r, g, bl].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * R + 0.7152 * G + 0.0722 * B;
    };
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }
  function badge(label) {
    return el("span", { class: "badge", style: { background: colour(label) } }, label);
  }

  const pct = (p) => `${(100 * p).toFixed(p >= 0.995 || p === 0 ? 0 : 1)}%`;

  function bars(scores, labels, predicted, truth) {
    return el("div", { class: "bars", role: "list", "aria-label": "Score per class" }, labels.map((lab) => {
      const p = scores[lab] || 0;
      const cls = ["barrow", lab === predicted ? "pred" : "", lab === truth ? "truth" : ""].join(" ").trim();
      return el("div", { class: cls, role: "listitem", dataset: { label: lab }, "aria-label": `${lab}: ${pct(p)}` },
        el("span", { class: "lab", title: lab }, lab),
        el("span", { class: "track" }, el("span", { class: "fill", style: { width: `${Math.max(0, Math.min(1, p)) * 100}%` } })),
        el("span", { class: "pct" }, pct(p)));
    }));
  }

  // A thumbnail in a frame that shows it is loading (thumbnails are made on first request) and,
  // when it cannot be shown, why: the server's reason, not a broken-image icon. The frame
  // (``.thumbwrap``) is also where overlays on the image go.
  function thumb(src, { alt = "", cls = "", onclick = null, lazy = true } = {}) {
    const img = el("img", { alt, class: cls || null, loading: lazy ? "lazy" : null, decoding: "async" });
    const wrap = el("span", { class: "thumbwrap", onclick }, img);
    show(img, wrap, src);
    return wrap;
  }

  // A loading frame shimmers only while it is in view (class ``inview``): a lazy thumbnail far down a page
  // stays "loading" until it is scrolled to, and animating those off screen kept the page busy for nothing.
  const inView = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => entries.forEach((e) => e.target.classList.toggle("inview", e.isIntersecting)))
    : null;

  function loaded(frame) {
    frame.classList.remove("loading", "inview");
    if (inView) inView.unobserve(frame);
  }

  // Load ``src`` into ``img``, its ``frame`` saying "loading" until it is shown, and why when it cannot be.
  function show(img, frame, src) {
    frame.classList.add("loading");
    if (inView) inView.observe(frame); else frame.classList.add("inview");
    frame.classList.remove("broken");
    frame.querySelectorAll(":scope > .why").forEach((n) => n.remove());
    img.onload = () => { if (img.src.endsWith(src)) loaded(frame); };
    img.onerror = async () => {
      if (!img.src.endsWith(src)) return;
      loaded(frame);
      frame.classList.add("broken");
      frame.append(el("span", { class: "why", role: "note" }, `cannot show the image: ${await failure(src)}`));
    };
    img.src = src;
  }

  async function failure(src) {
    try {
      await api(src);
      return "the browser could not display it";
    } catch (e) {
      return e.message;
    }
  }

  // A toast shown while a modal dialog is open goes inside the dialog: the rest of the page is
  // inert then and under the dialog's backdrop, and its Undo button must stay reachable.
  let toastTimer = null;
  function toast(message, { error = false, action = null, actionLabel = "Undo" } = {}) {
    const box = document.getElementById("toast");
    const host = document.querySelector("dialog[open]") || document.body;
    if (box.parentElement !== host) host.append(box);
    box.replaceChildren(el("span", {}, message));
    box.classList.toggle("error", error);
    if (action) box.append(el("button", { type: "button", onclick: () => { box.hidden = true; action(); } }, actionLabel));
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, error ? 8000 : 4500);
  }

  // Keys typed into a form field or with a modifier are not shortcuts.
  function isShortcut(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return false;
    const t = ev.target;
    return !(t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable));
  }

  async function showContext() {
    try {
      const info = await api("api/info");
      const parts = [];
      if (info.dataset) parts.push(`dataset ${info.dataset.name} · ${info.dataset.total} images`);
      if (info.run) parts.push(`run ${info.run.split("/").pop()}`);
      if (info.model) parts.push(`model ${info.model.backbone} · ${info.model.labels.length} classes`);
      if (info.run_incomplete) parts.push(`⚠ ${info.run_incomplete.message} (${info.run_incomplete.hint})`);
      document.getElementById("context").textContent = parts.join("   |   ");
      return info;
    } catch (e) {
      toast(`Cannot reach the service: ${e.message}`, { error: true });
      return null;
    }
  }

  // The images this page changed itself (this tab; kept over a reload): its undo acts on these only,
  // never on a correction made on another page.
  const OWN_KEY = `imgclf:changed:${location.pathname}`;
  const MAX_OWN = 20000;
  function ownPaths() {
    try { return JSON.parse(sessionStorage.getItem(OWN_KEY) || "[]"); } catch (_) { return []; }
  }
  function remember(paths) {
    const fresh = new Set(paths);
    const all = ownPaths().filter((p) => !fresh.has(p)).concat(paths).slice(-MAX_OWN);
    try { sessionStorage.setItem(OWN_KEY, JSON.stringify(all)); } catch (_) { /* storage full: undo still scoped to what fits */ }
  }

  // Save one correction (POST ``json`` to ``path``): ``onSaved(res)`` applies it to the page and returns
  // the toast's text, which offers ``undo``. Returns the answer, or null when nothing was saved.
  // A correction that changed nothing (the image already was so) is said so, with nothing to undo.
  // ``note``: a sentence the toast adds when something changed (e.g. that it changed the test split).
  async function save(path, json, onSaved, undo, { note = "" } = {}) {
    let res;
    try {
      res = await api(path, { json });
    } catch (e) {
      toast(`Not saved: ${e.message}`, { error: true });
      return null;
    }
    const text = onSaved(res);
    const changed = res.item ? res.item.changed !== false : res.changed !== 0;
    if (changed) {
      remember(json.paths || [json.path]);
      toast(`${text} · saved${note ? ` · ${note}` : ""}`, { action: undo });
    } else toast(`${text} already: nothing changed`);
    return res;
  }

  // MB with one decimal: what people read file sizes in.
  const mb = (bytes) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

  // Pages opened again with the browser's Back button come from its cache: reload their data.
  function onReturn(reload) {
    window.addEventListener("pageshow", (ev) => { if (ev.persisted) reload(); });
  }

  // Undo the newest correction this page made: ``onUndone(res)`` applies it to the page. The toast
  // always says what was undone, on which image, and what the image is now.
  async function undoLast(onUndone) {
    const mine = ownPaths();
    if (!mine.length) { toast("Nothing to undo: no change was made on this page"); return; }
    let res;
    try {
      res = await api("api/undo", { json: { paths: mine } });
    } catch (e) {
      toast(`Undo failed: ${e.message}`, { error: true });
      return;
    }
    if (!res.undone) { toast("Nothing to undo: every change made on this page is undone already"); return; }
    onUndone(res);
    toast(undoneText(res.back || []));
  }

  const fileOf = (p) => p.split("/").pop();
  function didText(undid) {
    if (undid.action === "relabel" || undid.action === "label" || undid.action === "keep") {
      return undid.action === "keep" ? `“keep ${undid.label}”` : `“→ ${undid.label}”`;
    }
    return `“${undid.action}”`;
  }
  function nowText(b) {
    if (b.status === "unlabelled") return "unlabelled in the pool again";
    if (b.status === "excluded" || b.status === "ambiguous") return `${b.status} again`;
    if (b.status === "unchanged") return `back to ${b.label} (its folder's label)`;
    return `back to ${b.label}`;
  }
  // "Undone “→ squares” on circles_003.jpg: back to circles (its folder's label)"; several images name a few.
  function undoneText(back) {
    if (!back.length) return "Undone";
    if (back.length === 1) return `Undone ${didText(back[0].undid)} on ${fileOf(back[0].path)}: ${nowText(back[0])}`;
    const some = back.slice(0, 3).map((b) => `${fileOf(b.path)} ${nowText(b)}`).join(", ");
    return `Undone ${didText(back[0].undid)} on ${back.length} images: ${some}${back.length > 3 ? `, and ${back.length - 3} more` : ""}`;
  }

  // ------------------------------------------------------------ keys
  // One keymap for every page: a key means the same wherever it is used. A page lists the actions it
  // offers (``keys``) and handles them by name; ``?`` shows the page's keys in a dialog.
  const DIGITS = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
  const KEYMAP = [
    { action: "prev", keys: ["ArrowLeft"], label: "←", what: "previous image" },
    { action: "next", keys: ["ArrowRight"], label: "→", what: "next image" },
    { action: "up", keys: ["ArrowUp"], label: "↑", what: "previous image (the row above in a grid)" },
    { action: "down", keys: ["ArrowDown"], label: "↓", what: "next image (the row below in a grid)" },
    { action: "first", keys: ["Home"], label: "Home", what: "first image" },
    { action: "last", keys: ["End"], label: "End", what: "last image" },
    { action: "pageUp", keys: ["PageUp"], label: "PgUp", what: "previous page of images" },
    { action: "pageDown", keys: ["PageDown"], label: "PgDn", what: "next page of images" },
    { action: "open", keys: ["Enter"], label: "Enter", what: "the chosen image's main action: enlarge it (close again), or on Label next accept its suggested class" },
    { action: "class", keys: DIGITS, label: "1–9", what: "give the chosen image class 1 to 9; every class is also in the page's class buttons or menu" },
    { action: "restore", keys: ["0"], label: "0", what: "back to its folder's label" },
    { action: "accept", keys: ["a", "A"], label: "a", what: "accept the suggested class (the model's prediction or the data doctor's suggestion)" },
    { action: "keep", keys: ["k", "K"], label: "k", what: "keep the label as it is (a person checked it)" },
    { action: "exclude", keys: ["x", "X"], label: "x", what: "exclude the image (from training and testing, or drop it from the pool)" },
    { action: "ambiguous", keys: ["q", "Q"], label: "q", what: "mark the image ambiguous (left out)" },
    { action: "undo", keys: ["u", "U"], label: "u", what: "undo the last change made on this page" },
    { action: "pick", keys: ["m", "M"], label: "m", what: "select / unselect the image for an action on several" },
    { action: "maps", keys: ["w", "W"], label: "w", what: "where the model looks (class maps) on / off" },
    { action: "refit", keys: ["r", "R"], label: "r", what: "refit the model on the labels given and suggest the next batch" },
    { action: "escape", keys: ["Escape"], label: "Esc", what: "close, or clear the selection" },
    { action: "help", keys: ["?"], label: "?", what: "show these keys" },
  ];
  const BY_KEY = new Map(KEYMAP.flatMap((k) => k.keys.map((key) => [key, k])));
  const offered = [];  // functions giving the actions a page offers now

  // Handle the page's keys: ``actions`` (a list, or a function giving it at the time) says which it
  // offers, ``onAction(action, ev, digit)`` handles one and returns false when it did nothing with it.
  // Without ``onAction`` the keys are only listed (another script of the page handles them).
  function keys(actions, onAction = null) {
    const mine = typeof actions === "function" ? actions : () => actions;
    offered.push(mine);
    if (onAction) document.addEventListener("keydown", (ev) => {
      if (!isShortcut(ev) || helpOpen()) return;
      const entry = BY_KEY.get(ev.key);
      if (!entry || !mine().includes(entry.action)) return;
      if (onAction(entry.action, ev, entry.action === "class" ? Number(ev.key) : null) !== false) ev.preventDefault();
    });
  }

  // On a phone the images are below the filters: a filter chosen there scrolls to what it shows.
  const PHONE = window.matchMedia("(max-width: 700px)");
  function scrollToOnPhone(node) {
    if (PHONE.matches && node) node.scrollIntoView({ block: "start" });
  }

  const helpOpen = () => Boolean(document.querySelector("dialog#keys-help[open]"));
  let helpReturn = null;
  function showKeys() {
    let dlg = document.getElementById("keys-help");
    if (!dlg) {
      dlg = el("dialog", { id: "keys-help", class: "keys-help", "aria-labelledby": "keys-help-title" });
      dlg.addEventListener("close", () => { if (helpReturn && helpReturn.isConnected) helpReturn.focus({ preventScroll: true }); });
      document.body.append(dlg);
    }
    const now = new Set([].concat(...offered.map((f) => f()), "help"));
    dlg.replaceChildren(
      el("h2", { id: "keys-help-title" }, "Keys on this page"),
      el("p", { class: "muted small" }, "Every page uses the same keys for the same things."),
      el("dl", { class: "keys" }, KEYMAP.filter((k) => now.has(k.action)).flatMap((k) => [
        el("dt", { dataset: { action: k.action } }, el("kbd", {}, k.label)), el("dd", {}, k.what)])),
      el("form", { method: "dialog" }, el("button", { class: "btn", type: "submit", id: "keys-help-close" }, el("kbd", {}, "Esc"), " Close")));
    helpReturn = document.activeElement;
    dlg.showModal();
    dlg.querySelector("#keys-help-close").focus();
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "?" && isShortcut(ev) && !helpOpen()) { ev.preventDefault(); showKeys(); }
  });

  // A dialog closing with the toast inside hands it back to the page.
  document.addEventListener("close", () => {
    const box = document.getElementById("toast");
    if (box && box.closest("dialog") && !box.closest("dialog").open) document.body.append(box);
  }, true);

  // Multi-selection over an ordered list of keys: toggle, shift-range from the last toggled, all, none.
  function selection(onChange) {
    const keys = new Set();
    let anchor = null;
    return {
      keys,
      has: (k) => keys.has(k),
      get size() { return keys.size; },
      toggle(k, order = null, range = false) {
        if (range && anchor !== null && order) {
          const a = order.indexOf(anchor), b = order.indexOf(k);
          if (a >= 0 && b >= 0) {
            const on = !keys.has(k) || keys.has(anchor);
            for (const x of order.slice(Math.min(a, b), Math.max(a, b) + 1)) on ? keys.add(x) : keys.delete(x);
            anchor = k;
            onChange();
            return;
          }
        }
        keys.has(k) ? keys.delete(k) : keys.add(k);
        anchor = k;
        onChange();
      },
      set(list) { keys.clear(); list.forEach((k) => keys.add(k)); anchor = null; onChange(); },
      clear() { if (!keys.size) return; keys.clear(); anchor = null; onChange(); },
    };
  }

  // Left and right swipes on ``node`` (a phone's viewer): ``onSwipe(+1)`` for the next, ``-1`` for the previous.
  function swipe(node, onSwipe) {
    let x0 = null, y0 = null;
    node.addEventListener("touchstart", (ev) => { x0 = ev.touches[0].clientX; y0 = ev.touches[0].clientY; }, { passive: true });
    node.addEventListener("touchend", (ev) => {
      if (x0 === null) return;
      const dx = ev.changedTouches[0].clientX - x0, dy = ev.changedTouches[0].clientY - y0;
      x0 = null;
      if (Math.abs(dx) > 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) onSwipe(dx < 0 ? 1 : -1);
    });
  }

  // Disable (or enable again) every control inside ``root`` but those ``except``: a page without what
  // they need (a run, a model) shows its message and offers nothing that would fail.
  function disableAll(root, off, except = []) {
    root.querySelectorAll("button, select, input, textarea").forEach((c) => { if (!except.includes(c)) c.disabled = off; });
  }

  return { api, el, bars, badge, colour, contrast, setClasses, toast, pct, mb, isShortcut, showContext, save, undoLast, remember, thumb, show,
    onReturn, selection, swipe, keys, showKeys, disableAll, scrollToOnPhone };
})();
