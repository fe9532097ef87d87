// Helpers shared by the three pages: API calls, DOM building, score bars, toasts, class colours.
// Plain browser JavaScript, no build step. Requests are same-origin, so the service's token
// cookie (set when a page is first opened with ?token=...) goes with every call.
"use strict";

const UI = (() => {
  const PALETTE = ["#1f5fd6", "#c2410c", "#0f766e", "#7c3aed", "#b91c1c", "#4d7c0f", "#a21caf", "#0369a1", "#92400e", "#475569"];

  async function api(path, options = {}) {
    const opts = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
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
  function colour(label) {
    const i = classOrder.indexOf(label);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
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

  let toastTimer = null;
  function toast(message, { error = false, action = null, actionLabel = "Undo" } = {}) {
    const box = document.getElementById("toast");
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
      document.getElementById("context").textContent = parts.join("   |   ");
      return info;
    } catch (e) {
      toast(`Cannot reach the service: ${e.message}`, { error: true });
      return null;
    }
  }

  // Save one correction (POST ``json`` to ``path``): ``onSaved(res)`` applies it to the page and returns
  // the toast's text, which offers ``undo``. Returns the answer, or null when nothing was saved.
  async function save(path, json, onSaved, undo) {
    let res;
    try {
      res = await api(path, { json });
    } catch (e) {
      toast(`Not saved: ${e.message}`, { error: true });
      return null;
    }
    toast(`${onSaved(res)} · saved`, { action: undo });
    return res;
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

  return { api, el, bars, badge, colour, setClasses, toast, pct, isShortcut, showContext, save, undoLast };
})();
