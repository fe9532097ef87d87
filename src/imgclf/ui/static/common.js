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
  // Ten hand-picked colours, then hues spread by the golden angle at three lightnesses: every class
  // of a large label set gets its own colour, all dark enough for white text.
  function colour(label) {
    const i = Math.max(0, classOrder.indexOf(label));
    if (i < PALETTE.length) return PALETTE[i];
    const j = i - PALETTE.length;
    return `hsl(${Math.round((j * 137.508 + 20) % 360)}, ${62 - 10 * (j % 2)}%, ${[34, 42, 28][j % 3]}%)`;
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

  // Load ``src`` into ``img``, its ``frame`` saying "loading" until it is shown, and why when it cannot be.
  function show(img, frame, src) {
    frame.classList.add("loading");
    frame.classList.remove("broken");
    frame.querySelectorAll(":scope > .why").forEach((n) => n.remove());
    img.onload = () => { if (img.src.endsWith(src)) frame.classList.remove("loading"); };
    img.onerror = async () => {
      if (!img.src.endsWith(src)) return;
      frame.classList.remove("loading");
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

  // Save one correction (POST ``json`` to ``path``): ``onSaved(res)`` applies it to the page and returns
  // the toast's text, which offers ``undo``. Returns the answer, or null when nothing was saved.
  // A correction that changed nothing (the image already was so) is said so, with nothing to undo.
  async function save(path, json, onSaved, undo) {
    let res;
    try {
      res = await api(path, { json });
    } catch (e) {
      toast(`Not saved: ${e.message}`, { error: true });
      return null;
    }
    const text = onSaved(res);
    const changed = res.item ? res.item.changed !== false : res.changed !== 0;
    if (changed) toast(`${text} · saved`, { action: undo });
    else toast(`${text} already: nothing changed`);
    return res;
  }

  // MB with one decimal: what people read file sizes in.
  const mb = (bytes) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

  // Pages opened again with the browser's Back button come from its cache: reload their data.
  function onReturn(reload) {
    window.addEventListener("pageshow", (ev) => { if (ev.persisted) reload(); });
  }

  // Undo the newest correction: ``onUndone(res)`` applies it to the page and returns the toast's text.
  async function undoLast(onUndone) {
    let res;
    try {
      res = await api("api/undo", { json: {} });
    } catch (e) {
      toast(`Undo failed: ${e.message}`, { error: true });
      return;
    }
    if (!res.undone) { toast("Nothing to undo"); return; }
    const text = onUndone(res);
    if (text) toast(text);
  }

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

  return { api, el, bars, badge, colour, setClasses, toast, pct, mb, isShortcut, showContext, save, undoLast, thumb, show, onReturn,
    selection, swipe };
})();
