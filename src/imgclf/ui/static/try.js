// Try page: drop, pick or paste an image; the loaded model classifies it on the server.
"use strict";

(() => {
  const { api, bars, setClasses, pct, showContext } = UI;
  const $ = (id) => document.getElementById(id);
  let labels = [];
  let previewUrl = null;

  async function describe() {
    const info = await showContext();
    const model = info && info.model;
    if (!model) {
      $("model-info").textContent = "No model is loaded: start the UI with `imgclf ui --images DIR --run RUN_DIR`.";
      $("pick").setAttribute("aria-disabled", "true");
      return;
    }
    labels = model.labels;
    setClasses(labels);
    $("model-info").textContent = `${model.backbone} at ${model.resolution} px, ${model.classifier || "classifier"} · classes: ${labels.join(", ")}`;
  }

  async function classify(file) {
    $("error").textContent = "";
    if (!file) return;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    $("preview").src = previewUrl;
    $("preview").alt = file.name || "the uploaded image";
    $("pred-label").textContent = "…";
    $("pred-score").textContent = "classifying";
    $("pred-bars").replaceChildren();
    $("pred-meta").textContent = file.name || "";
    $("outcome").hidden = false;
    try {
      const res = await api("api/predict", { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
      if (res.labels) { labels = res.labels; setClasses(labels); }
      $("pred-label").textContent = res.label;
      $("pred-score").textContent = `score ${pct(res.score)}`;
      $("pred-bars").replaceChildren(bars(res.scores, labels, res.label, null));
      $("pred-meta").textContent = `${file.name || "pasted image"} · ${Math.round(res.executionTimeMs)} ms on the server`;
      $("outcome").dataset.label = res.label;
    } catch (e) {
      $("outcome").hidden = true;
      $("error").textContent = `Could not classify ${file.name || "the image"}: ${e.message}`;
    }
  }

  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); classify(ev.dataTransfer.files[0]); });
  // A drop anywhere else on the page must not navigate away to the image.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
  $("file").addEventListener("change", () => { classify($("file").files[0]); $("file").value = ""; });
  $("pick").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("file").click(); }
  });
  document.addEventListener("paste", (ev) => {
    const f = Array.from(ev.clipboardData?.files || []).find((x) => x.type.startsWith("image/"));
    if (f) classify(f);
  });
  describe();
})();
