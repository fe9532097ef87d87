// Iterations page: every run of the dataset, show / publish / roll back, compare two, downloads and snippets.
"use strict";

(() => {
  const { api, el, toast, pct } = UI;
  const list = document.getElementById("iterations");
  const errorBox = document.getElementById("it-error");
  let data = null;

  const fig = (v) => (v === null || v === undefined ? "–" : pct(v));
  const secs = (s) => (s === null || s === undefined ? "–" : s >= 90 ? `${(s / 60).toFixed(1)} min` : `${Math.round(s)} s`);
  const when = (t) => new Date(t * 1000).toLocaleString();

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  async function act(path, json, done) {
    try {
      const res = await api(path, json === null ? { method: "POST" } : { json });
      window.imgclfLive && window.imgclfLive.forget(); // this page switched on purpose: no reload for it
      await load();
      toast(done(res));
      return res;
    } catch (e) {
      toast(`Not done: ${e.message}`, { error: true });
      return null;
    }
  }

  function row(it) {
    const chosen = data.live.chosen === it.name;
    const tags = [];
    if (it.published) tags.push(el("span", { class: "tag published" }, "published"));
    if (it.state === "draft") tags.push(el("span", { class: "tag draft" }, "draft"));
    if (it.state === "incomplete") tags.push(el("span", { class: "tag incomplete" }, "did not finish"));
    if (it.test_changed && it.test_changed.length) {
      tags.push(el("span", { class: "tag testdiff", title: it.test_changed.slice(0, 20).join("\n") },
        `test split differs (${it.test_changed.length})`));
    }
    const score = it.state === "draft"
      ? [el("span", { class: "fig" }, fig(it.cv_accuracy), el("small", {}, "cross-validated on train")),
        el("span", { class: "fig" }, "–", el("small", {}, "no test figures")), el("span", { class: "fig" }, ""), el("span", { class: "fig" }, "")]
      : [el("span", { class: "fig" }, fig(it.accuracy), el("small", {}, "test accuracy")),
        el("span", { class: "fig" }, fig(it.class_avg_accuracy), el("small", {}, "class-averaged")),
        el("span", { class: "fig" }, it.ece === null || it.ece === undefined ? "–" : it.ece.toFixed(3), el("small", {}, "ECE")),
        el("span", { class: "fig" }, secs(it.wall_s), el("small", {}, "wall time"))];
    const changed = it.labels_changed === null || it.labels_changed === undefined ? "first iteration"
      : `${it.labels_changed} label${it.labels_changed === 1 ? "" : "s"} changed since the previous`;
    return el("li", { class: `itrow${chosen ? " chosen" : ""}`, dataset: { name: it.name }, "aria-current": chosen ? "true" : null },
      el("span", { class: "name" }, it.name, ...tags, el("small", { class: "muted", style: { display: "block", fontWeight: 400 } }, when(it.started))),
      ...score,
      el("span", { class: "meta" }, `${it.preset || "custom"} · ${(it.featurizers || []).join(", ")}`, el("small", {}, changed)),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "btn", disabled: chosen, "aria-label": `Show iteration ${it.name}`,
          onclick: () => act("api/iterations/select", { run: it.name }, (s) => `Now showing iteration ${s.chosen}`) }, chosen ? "Shown" : "Show"),
        el("button", { type: "button", class: "btn primary", disabled: it.published, "aria-label": `Publish iteration ${it.name}`,
          onclick: () => act("api/publish", { run: it.name }, (s) => `Published iteration ${s.published}: the endpoints answer with it`) },
          it.published ? "Published" : "Publish")));
  }

  function options(select, its, pick) {
    const keep = select.value;
    select.replaceChildren(...its.filter((it) => it.state !== "draft").map((it) => el("option", { value: it.name }, it.name)));
    select.value = keep && its.some((it) => it.name === keep) ? keep : pick;
  }

  function snippets() {
    const url = `${location.origin}/predict`;
    const auth = data.token_required;
    document.getElementById("snip-curl").textContent =
      `curl -s ${auth ? '-H "Authorization: Bearer $IMGCLF_TOKEN" ' : ""}-F files=@photo.jpg ${url}`;
    document.getElementById("snip-py").textContent = [
      "import httpx",
      "",
      `r = httpx.post("${url}",`,
      `               files={"files": open("photo.jpg", "rb")}${auth ? "," : ")"}`,
      ...(auth ? ['               headers={"Authorization": "Bearer " + TOKEN})'] : []),
      "print(r.json()[\"predictions\"][0][\"label\"])",
    ].join("\n");
  }

  function renderPublish() {
    const p = data.live.published;
    const state = document.getElementById("pub-state");
    state.replaceChildren(p
      ? el("span", {}, "The endpoints (/predict, /score, /v2) answer with ", el("strong", {}, p), ".")
      : el("span", {}, "Nothing is published yet: the endpoints answer with ",
        el("strong", {}, data.live.endpoint || "no model"), ". Publish an iteration to choose what they answer with."));
    const back = document.getElementById("rollback");
    back.disabled = !data.rollback_to;
    back.textContent = data.rollback_to ? `Roll back to ${data.rollback_to}` : "Roll back";
    const target = p || data.live.chosen;
    for (const [id, path] of [["dl-bundle", "api/download/bundle"], ["dl-onnx", "api/download/onnx"]]) {
      const a = document.getElementById(id);
      a.href = target ? `${path}?run=${encodeURIComponent(target)}` : "#";
      a.setAttribute("aria-disabled", target ? "false" : "true");
    }
    snippets();
  }

  async function load() {
    try {
      data = await api("api/iterations");
      showError("");
    } catch (e) {
      showError(e.message);
      list.replaceChildren();
      return;
    }
    list.replaceChildren(...data.iterations.map(row));
    const full = data.iterations.filter((it) => it.state !== "draft");
    options(document.getElementById("cmp-before"), data.iterations, full[1] ? full[1].name : (full[0] || {}).name);
    options(document.getElementById("cmp-after"), data.iterations, (full[0] || {}).name);
    document.getElementById("cmp-go").disabled = full.length < 2;
    renderPublish();
  }

  function delta(v) {
    if (v === null || v === undefined) return el("td", {}, "–");
    const pts = (100 * v).toFixed(1);
    return el("td", { class: v > 0 ? "up" : v < 0 ? "down" : "" }, `${v > 0 ? "+" : ""}${pts}`);
  }

  function tiles(items, title) {
    if (!items.length) return el("p", { class: "muted" }, `${title}: none.`);
    return el("div", {}, el("h3", { style: { fontSize: "1rem" } }, `${title} (${items.length})`),
      el("ul", { class: "cmp-grid", "aria-label": title }, items.map((it) => el("li", { dataset: { image: it.image } },
        it.dataset_path ? el("img", { src: `api/thumb?path=${encodeURIComponent(it.dataset_path)}&size=128`, alt: it.image, loading: "lazy" }) : null,
        el("div", {}, el("strong", {}, it.image.split("/").pop())),
        el("div", {}, `true ${it.label}: ${it.before} → ${it.after}`)))));
  }

  async function compare() {
    const before = document.getElementById("cmp-before").value;
    const after = document.getElementById("cmp-after").value;
    const box = document.getElementById("compare");
    const body = document.getElementById("cmp-body");
    if (!before || !after || before === after) { toast("Pick two different iterations to compare", { error: true }); return; }
    let c;
    try { c = await api(`api/iterations/compare?before=${encodeURIComponent(before)}&after=${encodeURIComponent(after)}`); }
    catch (e) { toast(`Cannot compare: ${e.message}`, { error: true }); return; }
    const notes = [];
    if (!c.comparable) {
      const which = (title, items) => (items.length ? el("div", {}, el("h4", {}, `${title} (${items.length})`),
        el("ul", { class: "cmp-images" }, items.map((t) => el("li", {}, t)))) : null);
      notes.push(el("div", { class: "alert", role: "alert", id: "cmp-warning" },
        el("p", {}, "Not tested on the same yardstick: ",
          !c.same_images ? `${c.only_before.length} test image(s) only in ${c.before}, ${c.only_after.length} only in ${c.after}. ` : "",
          !c.same_labels ? `${c.relabelled.length} test image(s) relabelled. ` : "",
          `Both are scored on the ${c.n_shared} test images they share, with ${c.after}'s labels.`),
        el("details", { id: "cmp-which" }, el("summary", {}, "Which images"),
          which("Relabelled", c.relabelled.map((r) => `${r.image}: ${r.before} → ${r.after}`)),
          which(`Only in ${c.before}'s test split`, c.only_before),
          which(`Only in ${c.after}'s test split`, c.only_after))));
    }
    const table = el("table", { class: "cmp-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "class"), el("th", {}, "precision"), el("th", {}, "Δ"), el("th", {}, "recall"),
        el("th", {}, "Δ"), el("th", {}, "F1"), el("th", {}, "Δ"), el("th", {}, "images"))),
      el("tbody", {}, c.per_class.map((r) => el("tr", {}, el("td", {}, r.class),
        el("td", {}, fig(r.precision_after)), delta(r.precision_delta), el("td", {}, fig(r.recall_after)), delta(r.recall_delta),
        el("td", {}, fig(r.f1_after)), delta(r.f1_delta), el("td", {}, String(r.support))))));
    body.replaceChildren(...notes,
      el("p", {}, `${c.after} against ${c.before}: accuracy ${fig(c.accuracy_before)} → ${fig(c.accuracy_after)}, class-averaged ${fig(c.class_avg_accuracy_before)} → ${fig(c.class_avg_accuracy_after)} on ${c.n_shared} test images.`),
      el("div", { class: "cmp-wrap" }, table),
      tiles(c.fixed, "Fixed"), tiles(c.broken, "Broken"), tiles(c.changed, "Changed, still wrong"));
    box.hidden = false;
    box.focus();
  }

  document.getElementById("cmp-go").addEventListener("click", compare);
  document.getElementById("rollback").addEventListener("click", () =>
    act("api/rollback", null, (s) => `Rolled back: the endpoints answer with ${s.published}`));
  for (const b of document.querySelectorAll("[data-copy]")) {
    b.addEventListener("click", async () => {
      const text = document.getElementById(b.dataset.copy).textContent;
      try { await navigator.clipboard.writeText(text); toast("Copied"); }
      catch (_) { toast("Select the text and copy it (the browser refused the clipboard)", { error: true }); }
    });
  }
  UI.showContext();
  load();
})();
