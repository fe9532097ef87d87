// Try page: drop, pick or paste images; the loaded model classifies each on the server.
// A prediction may also say the image is like no class ("unknown", with the nearest class and an
// out-of-distribution score) or that the model cannot tell ("uncertain"): shown when present.
"use strict";

(() => {
  const { api, el, bars, setClasses, pct, mb, showContext } = UI;
  const $ = (id) => document.getElementById(id);
  // Fields said in words already ("unknown" is the label "Unknown"), not listed again as raw fields.
  const SHOWN = new Set(["label", "score", "scores", "labels", "executionTimeMs", "nearest_label", "ood_score", "unknown"]);
  let labels = [];
  let ready = false;  // a model is loaded
  let maxBytes = 0;  // the service's body limit (serve.max_body_mb); 0 = unknown
  let queue = Promise.resolve();  // one image at a time: the server's batcher serves other clients meanwhile
  let done = 0, total = 0;
  const urls = [];

  async function describe() {
    const info = await showContext();
    const model = info && info.model;
    maxBytes = info && info.max_body_mb ? info.max_body_mb * 1024 * 1024 : 0;
    if (!model) {
      ready = false;
      const loading = info && info.model_loading;
      $("model-info").textContent = loading ? "The model is loading…" : "No model loaded.";
      $("no-model").textContent = loading ? "The model is still loading: images can be classified once it is ready."
        : "No model loaded: nothing can be classified. Start the UI with `imgclf ui --images DIR --run RUN_DIR`.";
      $("no-model").hidden = false;
      $("file").disabled = true;
      $("pick").setAttribute("aria-disabled", "true");
      $("drop").classList.add("disabled");
      if (loading) setTimeout(describe, 2000);
      return;
    }
    ready = true;
    $("no-model").hidden = true;
    $("file").disabled = false;
    $("pick").removeAttribute("aria-disabled");
    $("drop").classList.remove("disabled");
    labels = model.labels;
    setClasses(labels);
    $("model-info").textContent = `${model.backbone} at ${model.resolution} px, ${model.classifier || "classifier"} · classes: ${labels.join(", ")}`;
  }

  function add(files) {
    $("error").textContent = "";
    files = Array.from(files || []);
    if (!files.length) return;
    if (!ready) {
      $("error").textContent = "No model loaded: nothing was sent.";
      return;
    }
    for (const file of files) {
      const node = outcome(file);
      $("outcomes").prepend(node);
      total += 1;
      queue = queue.then(() => classify(file, node));
    }
    count();
  }

  function count() {
    $("try-bar").hidden = !total;
    $("try-count").textContent = `${done} of ${total} image${total === 1 ? "" : "s"} classified`;
  }

  function outcome(file) {
    const url = URL.createObjectURL(file);
    urls.push(url);
    const img = el("img", { class: "preview", src: url, alt: file.name || "the pasted image" });
    const preview = el("span", { class: "thumbwrap", dataset: { overlay: "try" } }, img);
    img.onerror = () => img.replaceWith(el("span", { class: "no-preview" }, "no preview: the browser cannot show this file"));
    return el("li", { class: "outcome panel", dataset: { state: "busy" }, "aria-busy": "true" },
      preview,
      el("div", { class: "prediction" },
        el("div", { class: "name" }, file.name || "pasted image"),
        el("div", { class: "label pred-label" }, "…"),
        el("div", { class: "score pred-score" }, "classifying"),
        el("div", { class: "trust" }),
        el("div", { class: "pred-bars" }),
        el("p", { class: "muted meta small" })));
  }

  function tooLarge(file) {
    return maxBytes && file.size > maxBytes
      ? `${file.name || "the image"} is ${mb(file.size)}; the server accepts at most ${mb(maxBytes)} per request (setting serve.max_body_mb)`
      : "";
  }

  async function classify(file, node) {
    const q = (sel) => node.querySelector(sel);
    const fail = (message) => {
      node.dataset.state = "error";
      q(".pred-label").textContent = "Not classified";
      q(".pred-score").replaceWith(el("p", { class: "alert pred-error" }, message));
    };
    try {
      const big = tooLarge(file);
      if (big) { fail(big); return; }
      let res;
      try {
        res = await api("api/predict", { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
      } catch (e) {
        fail(e.status === 413 && !e.message.includes("MB") ? `${e.message} (${file.name}: ${mb(file.size)})` : e.message);
        return;
      }
      if (res.labels) { labels = res.labels; setClasses(labels); }
      show(node, res, file);
    } finally {
      node.removeAttribute("aria-busy");
      done += 1;
      count();
    }
  }

  function show(node, res, file) {
    const q = (sel) => node.querySelector(sel);
    const unknown = res.label === "unknown", uncertain = res.label === "uncertain";
    node.dataset.state = "done";
    node.dataset.label = res.label;
    q(".pred-label").textContent = unknown ? "Unknown" : uncertain ? "Uncertain" : res.label;
    q(".pred-score").textContent = unknown ? "like none of the classes the model knows"
      : uncertain ? "the model cannot tell between its classes" : `score ${pct(res.score)}`;
    const facts = [];
    if (res.nearest_label !== undefined) facts.push(el("span", { class: "fact", dataset: { key: "nearest_label" } }, "nearest class ", el("b", {}, res.nearest_label)));
    if (res.ood_score !== undefined) facts.push(el("span", { class: "fact", dataset: { key: "ood_score" } }, "out-of-distribution score ", el("b", {}, Number(res.ood_score).toFixed(3))));
    for (const [k, v] of Object.entries(res)) {  // any other plain field a newer service adds
      if (SHOWN.has(k) || v === null || typeof v === "object" || typeof v === "boolean") continue;
      facts.push(el("span", { class: "fact", dataset: { key: k } }, `${k.replace(/_/g, " ")} `, el("b", {}, typeof v === "number" ? String(+v.toFixed(4)) : String(v))));
    }
    q(".trust").replaceChildren(...facts);
    const best = res.nearest_label || (unknown || uncertain ? null : res.label);
    if (res.scores) q(".pred-bars").replaceChildren(bars(res.scores, labels.length ? labels : Object.keys(res.scores), best, null));
    q(".meta").textContent = `${file.name || "pasted image"} · ${Math.round(res.executionTimeMs || 0)} ms on the server`;
    document.dispatchEvent(new CustomEvent("imgclf:prediction", { detail: { node, result: res, file } }));
  }

  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); if (ready) drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); add(ev.dataTransfer.files); });
  // A drop anywhere else on the page must not navigate away to the image.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
  $("file").addEventListener("change", () => { add($("file").files); $("file").value = ""; });
  $("pick").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); if (ready) $("file").click(); }
  });
  $("pick").addEventListener("click", (ev) => { if (!ready) { ev.preventDefault(); add([]); $("error").textContent = "No model loaded: nothing can be classified."; } });
  document.addEventListener("paste", (ev) => {
    const files = Array.from(ev.clipboardData?.files || []).filter((x) => x.type.startsWith("image/"));
    if (files.length) add(files);
  });
  $("try-clear").addEventListener("click", () => {
    $("outcomes").replaceChildren();
    urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    done = 0; total = 0;
    count();
  });
  UI.keys(["maps"]);  // cam.js handles it
  describe();
})();
