// Adding images and classes. Dataset page: drop or pick files and folders onto a class, a new class
// or the pool; each file's outcome listed (added, duplicate with "Add anyway", refused with the
// reason); the upload undone whole; classes renamed and merged. Try page: the image just
// classified added to a class or to the pool. The server checks every file (safe decoder, limits,
// duplicates) and records each addition in annotations.csv.
"use strict";

(() => {
  const { api, el, toast, mb } = UI;
  const $ = (id) => document.getElementById(id);
  const POOL = "\u0000pool", NEW = "\u0000new";  // the target select's values that are no class
  const MAX_FILES_PER_REQUEST = 200;
  const REMOVED = "Undo moves the added files to the dataset's .imgclf-removed/ folder: nothing is deleted.";
  let maxBytes = 0;  // the service's body limit (serve.max_body_mb); 0 = unknown

  async function limits() {
    try {
      const info = await api("api/info");
      maxBytes = info && info.max_body_mb ? info.max_body_mb * 1024 * 1024 : 0;
      return info;
    } catch (_) {
      return null;
    }
  }

  // Files in requests under the body limit (a little room for the form's own bytes), each as one part.
  function requests(files) {
    const room = maxBytes ? maxBytes * 0.9 : Infinity;
    const out = [];
    let cur = [], size = 0;
    for (const f of files) {
      if (cur.length && (size + f.size > room || cur.length >= MAX_FILES_PER_REQUEST)) { out.push(cur); cur = []; size = 0; }
      cur.push(f);
      size += f.size;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  // Send ``files`` to ``target`` ({label, create}; label "" = the pool) in as many requests as the body
  // limit needs, all of one batch. Returns {batch, items, added}; a file over the limit is refused here.
  async function upload(files, target, { force = false, batch = "" } = {}) {
    const items = [];
    const fits = [];
    for (const f of files) {
      if (maxBytes && f.size > maxBytes * 0.9) {
        items.push({ name: f.name, status: "refused", reason: "too_large",
          message: `${mb(f.size)}; the server accepts at most ${mb(maxBytes)} per request (setting serve.max_body_mb)` });
      } else fits.push(f);
    }
    let added = 0, error = "";
    for (const part of requests(fits)) {
      const form = new FormData();
      part.forEach((f) => form.append("files", f, f.name || "image"));
      form.append("label", target.label);
      if (target.create) form.append("create", "1");
      if (force) form.append("force", "1");
      if (batch) form.append("batch", batch);
      try {
        const res = await api("api/intake/upload", { method: "POST", body: form });
        batch = res.batch;
        added += res.added + res.labelled;
        items.push(...res.items);
        UI.remember(res.items.filter((it) => it.status === "added" || it.status === "labelled").map((it) => it.path));
      } catch (e) {
        error = e.message;
        part.forEach((f) => items.push({ name: f.name, status: "refused", reason: "not_sent", message: e.message }));
      }
    }
    return { batch, items, added, error };
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const where = (label) => (label ? `class ${label}` : "the pool");

  // ------------------------------------------------------------ Dataset page

  function datasetPage() {
    let classes = [];
    let last = null;  // the newest upload: {batch, target, files by name}
    let want = "";  // the class to choose once the listing has it (a class just made)

    function fillTargets() {
      const sel = $("intake-target");
      const was = want || sel.value;
      sel.replaceChildren(...classes.map((c) => el("option", { value: c }, c)),
        el("option", { value: POOL }, "Pool (no class yet)"), el("option", { value: NEW }, "New class…"));
      sel.value = [...sel.options].some((o) => o.value === was) ? was : (classes[0] || POOL);
      if (sel.value === want) want = "";
      $("intake-new").hidden = sel.value !== NEW;
    }

    function target(label = null) {
      if (label !== null) return { label, create: false };
      const v = $("intake-target").value;
      if (v === POOL) return { label: "", create: false };
      if (v === NEW) return { label: $("intake-name").value.trim(), create: true };
      return { label: v, create: false };
    }

    async function add(files, label = null) {
      files = Array.from(files || []).filter((f) => f && f.name !== ".DS_Store");
      if (!files.length) { toast("No file to add"); return; }
      const to = target(label);
      if (to.create && !to.label) {
        toast("Name the new class first", { error: true });
        $("intake-name").focus();
        return;
      }
      $("intake-drop").classList.add("busy");
      $("intake-drop").setAttribute("aria-busy", "true");
      const res = await upload(files, to);
      $("intake-drop").classList.remove("busy");
      $("intake-drop").removeAttribute("aria-busy");
      last = { batch: res.batch, target: to, files: new Map(files.map((f) => [f.name, f])), undone: false };
      if (to.create && res.added) { want = to.label; $("intake-name").value = ""; }
      show(res);
      if (res.added) document.dispatchEvent(new CustomEvent("imgclf:dataset-changed"));
      toast(res.error ? `Not all sent: ${res.error}` : `${plural(res.added, "image")} added to ${where(to.label)}`,
        res.error ? { error: true } : (res.added ? { action: undoUpload, actionLabel: "Undo" } : {}));
    }

    function row(it) {
      const tag = it.status;
      const why = it.status === "added" ? `as ${it.path}`
        : it.status === "refused" ? `${it.reason.replace(/_/g, " ")}: ${it.message}` : it.message;
      const li = el("li", { dataset: { status: it.status, reason: it.reason || "" } },
        el("span", { class: `intake-tag ${it.status}` }, tag),
        el("span", { class: "intake-name", title: it.name }, it.name),
        el("span", { class: "intake-why" }, why));
      if (it.status === "duplicate" && last && last.files.has(it.name)) {
        li.append(el("button", { type: "button", class: "btn small", onclick: () => addAnyway(it.name, li) }, "Add anyway"));
      }
      return li;
    }

    function show(res) {
      const box = $("intake-result");
      const n = (s) => res.items.filter((it) => it.status === s).length;
      const counts = [`${plural(n("added"), "image")} added to ${where(last.target.label)}`];
      if (n("labelled")) counts.push(`${n("labelled")} from the pool given the class`);
      if (n("duplicate")) counts.push(`${plural(n("duplicate"), "duplicate")} not added`);
      if (n("refused")) counts.push(`${n("refused")} refused`);
      box.replaceChildren(
        el("p", { class: "intake-summary", id: "intake-summary" }, counts.join(" · ")),
        el("ul", { class: "intake-list", "aria-labelledby": "intake-summary" }, res.items.map(row)),
        el("div", { class: "intake-after" },
          res.batch && res.added ? el("button", { type: "button", class: "btn", id: "intake-undo", onclick: undoUpload }, "Undo this upload") : null,
          el("button", { type: "button", class: "btn", id: "intake-dismiss", onclick: () => { box.hidden = true; $("intake-pick").focus(); } }, "Close")),
        el("p", { class: "muted small" }, REMOVED));
      box.hidden = false;
    }

    async function addAnyway(name, li) {
      const file = last.files.get(name);
      const res = await upload([file], last.target, { force: true, batch: last.batch });
      const it = res.items[0];
      if (res.batch) last.batch = res.batch;
      li.replaceWith(row(it));
      if (res.added) {
        document.dispatchEvent(new CustomEvent("imgclf:dataset-changed"));
        toast(`${name} added anyway`);
        if (!$("intake-undo")) $("intake-result").querySelector(".intake-after").prepend(
          el("button", { type: "button", class: "btn", id: "intake-undo", onclick: undoUpload }, "Undo this upload"));
      } else toast(`${name}: ${it.message}`, { error: true });
    }

    async function undoUpload() {
      if (!last || !last.batch || last.undone) { toast("Nothing to undo"); return; }
      let res;
      try {
        res = await api("api/intake/undo", { json: { batch: last.batch } });
      } catch (e) {
        toast(`Undo failed: ${e.message}`, { error: true });
        return;
      }
      last.undone = true;
      const n = (res.removed || []).length;
      $("intake-result").querySelectorAll("li[data-status=added]").forEach((li) => {
        li.dataset.status = "undone";
        li.querySelector(".intake-tag").textContent = "undone";
      });
      $("intake-undo")?.remove();
      $("intake-result").querySelector(".intake-summary").textContent = `Upload undone: ${plural(n, "image")} moved to .imgclf-removed/`;
      document.dispatchEvent(new CustomEvent("imgclf:dataset-changed"));
      toast(`Upload undone: ${plural(n, "image")} moved out of the dataset (to .imgclf-removed/, not deleted)`);
    }

    // A dropped folder is read whole (Chromium, Firefox, Safari: webkitGetAsEntry); else the files dropped.
    async function dropped(dt) {
      const entries = Array.from(dt.items || []).map((i) => (i.kind === "file" && i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
      if (!entries.length || entries.some((e) => !e)) return Array.from(dt.files || []);
      const out = [];
      const walk = async (entry) => {
        if (entry.name.startsWith(".")) return;
        if (entry.isFile) { out.push(await new Promise((ok, no) => entry.file(ok, no))); return; }
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((ok, no) => reader.readEntries(ok, no));
          if (!batch.length) break;
          for (const e of batch) await walk(e);
        }
      };
      for (const e of entries) await walk(e);
      return out;
    }

    function dropZone(node, labelOf) {
      const on = (ev) => { const l = labelOf(ev); if (l === undefined) return; ev.preventDefault(); ev.stopPropagation(); (ev.target.closest(".filter") || node).classList.add("over"); };
      const off = (ev) => (ev.target.closest?.(".filter") || node).classList.remove("over");
      node.addEventListener("dragenter", on);
      node.addEventListener("dragover", on);
      node.addEventListener("dragleave", off);
      node.addEventListener("drop", async (ev) => {
        const label = labelOf(ev);
        if (label === undefined) return;
        ev.preventDefault();
        ev.stopPropagation();
        off(ev);
        add(await dropped(ev.dataTransfer), label);
      });
    }

    function openClasses() {
      $("rename-from").replaceChildren(...classes.map((c) => el("option", { value: c }, c)));
      $("rename-to").value = "";
      $("merge-sources").replaceChildren(...classes.map((c) =>
        el("label", { class: "check" }, el("input", { type: "checkbox", value: c }), c)));
      $("merge-names").replaceChildren(...classes.map((c) => el("option", { value: c })));
      $("merge-into").value = "";
      $("classes-error").textContent = "";
      $("classes-dialog").showModal();
      $("rename-from").focus();
    }

    async function classChange(path, json, text) {
      $("classes-error").textContent = "";
      let res;
      try {
        res = await api(path, { json });
      } catch (e) {
        $("classes-error").textContent = e.message;
        return;
      }
      $("classes-dialog").close();
      UI.remember(res.paths);  // this page's undo takes the rename or merge back
      document.dispatchEvent(new CustomEvent("imgclf:dataset-changed"));
      toast(`${text}: ${plural(res.changed, "image")} relabelled · saved (u undoes it)`);
    }

    document.addEventListener("imgclf:summary", (ev) => { classes = ev.detail.classes.slice(); fillTargets(); });
    $("intake-target").addEventListener("change", () => {
      $("intake-new").hidden = $("intake-target").value !== NEW;
      if ($("intake-target").value === NEW) $("intake-name").focus();
    });
    $("intake-pick").addEventListener("click", () => $("intake-files").click());
    $("intake-pick-folder").addEventListener("click", () => $("intake-folder").click());
    $("intake-files").addEventListener("change", () => { add($("intake-files").files); $("intake-files").value = ""; });
    $("intake-folder").addEventListener("change", () => { add($("intake-folder").files); $("intake-folder").value = ""; });
    dropZone($("intake-drop"), () => null);
    dropZone($("filters"), (ev) => {  // onto a class, or the pool, of the sidebar's list
      const b = ev.target.closest && ev.target.closest(".filter");
      if (!b) return undefined;
      if (b.dataset.status === "pool") return "";
      if (b.dataset.label) return b.dataset.label;
      return b.dataset.status ? undefined : null;  // "All images": the chosen target; a status: no drop
    });
    window.addEventListener("dragover", (ev) => ev.preventDefault());  // a drop elsewhere must not open the file
    window.addEventListener("drop", (ev) => ev.preventDefault());
    $("classes-open").addEventListener("click", openClasses);
    $("classes-close").addEventListener("click", () => $("classes-dialog").close());
    $("classes-dialog").addEventListener("close", () => $("classes-open").focus());
    $("rename-go").addEventListener("click", () => {
      const old = $("rename-from").value, to = $("rename-to").value.trim();
      classChange("api/classes/rename", { old, new: to }, `${old} renamed ${to}`);
    });
    $("merge-go").addEventListener("click", () => {
      const sources = [...$("merge-sources").querySelectorAll("input:checked")].map((i) => i.value);
      const into = $("merge-into").value.trim();
      classChange("api/classes/merge", { sources, into }, `${sources.join(", ")} merged into ${into}`);
    });
    // The page's listing may have come before this script was run: the classes are asked for here too.
    // A folder without images yet has no listing: it still gets the pool and "New class…" as targets.
    limits().then((info) => {
      if (classes.length) return;
      classes = (info && info.dataset && info.dataset.classes) || [];
      fillTargets();
    });
  }

  // ------------------------------------------------------------ Try page

  function tryPage() {
    let classes = null;  // the dataset's classes; null = no dataset loaded (no add buttons)
    const ready = limits().then((info) => { classes = info && info.dataset ? info.dataset.classes : null; });

    function addButtons(node, result, file) {
      if (!classes || node.querySelector(".try-add")) return;
      const status = el("p", { class: "try-add-status small", role: "status" });
      const menu = el("div", { class: "try-add-menu", role: "group", "aria-label": "Add to class", hidden: true });
      const toggle = el("button", { type: "button", class: "btn", "aria-expanded": "false", onclick: () => open(menu.hidden) }, "Add to class…");
      const open = (yes) => {
        menu.hidden = !yes;
        toggle.setAttribute("aria-expanded", String(yes));
        if (yes) menu.querySelector("button")?.focus();
      };
      const first = classes.includes(result.label) ? [result.label] : [];
      menu.append(...[...first, ...classes.filter((c) => !first.includes(c))].map((c) =>
        el("button", { type: "button", class: "btn", dataset: { label: c }, onclick: () => { open(false); send(c); } }, c)));
      menu.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.preventDefault(); open(false); toggle.focus(); } });
      const pool = el("button", { type: "button", class: "btn", onclick: () => send("") }, "Add to pool");
      node.querySelector(".prediction").append(el("div", { class: "try-add" }, toggle, pool, menu, status));

      async function send(label, force = false) {
        status.textContent = "adding…";
        let res;
        try {
          res = await api(`api/intake/add?${new URLSearchParams({ label, name: file.name || "pasted.png", force: force ? "true" : "false" })}`,
            { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
        } catch (e) {
          status.textContent = `Not added: ${e.message}`;
          return;
        }
        const it = res.items[0];
        if (it.status === "added" || it.status === "labelled") {
          status.replaceChildren(it.status === "added" ? `Added to ${where(label)} as ${it.path}` : `Added to ${where(label)}: ${it.message}`);
          toast(`Added to ${where(label)}`, { action: async () => {
            try { await api("api/intake/undo", { json: { batch: res.batch } }); status.textContent = it.status === "added" ? "Undone: moved out of the dataset (to .imgclf-removed/)" : "Undone: back in the pool without a class"; } catch (e) { toast(`Undo failed: ${e.message}`, { error: true }); }
          } });
        } else if (it.status === "duplicate") {
          status.replaceChildren(`Not added: ${it.message} `,
            el("button", { type: "button", class: "btn small", onclick: () => send(label, true) }, "Add anyway"));
        } else {
          status.textContent = `Not added: ${it.message}`;
        }
      }
    }

    document.addEventListener("imgclf:prediction", (ev) => ready.then(() => addButtons(ev.detail.node, ev.detail.result, ev.detail.file)));
  }

  if (document.body.dataset.page === "dataset") datasetPage();
  else if (document.body.dataset.page === "try") tryPage();
})();
