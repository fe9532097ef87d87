// Training jobs on every page: polls the dataset's newest job (every second while one runs), shows a strip
// under the top bar (its step, progress and ETA, or how it ended, with "Switch to it" for a finished one) and
// hands every answer to the page as an "imgclf-job" event (the Train page draws its panel from it).
"use strict";

const JOBS = (() => {
  const { api, el, toast } = UI;
  const RUNNING_MS = 1000, IDLE_MS = 5000, HIDDEN_MS = 5000;
  const onTrainPage = document.body.dataset.page === "train";  // it shows the job in full itself
  let timer = null, stopped = false, last = null;

  document.head.append(el("link", { rel: "stylesheet", href: "static/jobs.css" }));
  const strip = el("section", { class: "jobstrip", id: "jobstrip", "aria-label": "Training", hidden: true });
  const text = el("span", { class: "text", role: "status", "aria-live": "polite" });
  const bar = el("progress", { max: "1", value: "0", "aria-label": "Progress of the training's current step" });
  const actions = el("span", { class: "actions" });
  strip.append(text, bar, el("span", { class: "spacer" }), actions);
  document.querySelector(".topbar").after(strip);

  const seenKey = (job) => `imgclf-job-seen:${job.id}`;
  const seen = (job) => { try { return localStorage.getItem(seenKey(job)) === "1"; } catch (_) { return false; } };
  const markSeen = (job) => { try { localStorage.setItem(seenKey(job), "1"); } catch (_) { /* private mode */ } };

  // 75 → "1:15", 3700 → "1:01:40"
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "—";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  // What a progress object says: {stage, done, fraction, rate, eta} as display text (fraction null without a bar).
  function figures(p) {
    if (!p) return { stage: "starting", done: "—", fraction: null, rate: "—", eta: "—" };
    const stage = p.task && p.task !== p.stage ? `${p.stage} · ${p.task}` : p.stage || "starting";
    const has = p.total !== null && p.total !== undefined && p.total > 0;
    const fraction = has ? Math.min(1, p.done / p.total) : null;
    return {
      stage,
      done: has ? `${p.done} / ${p.total} ${p.unit} (${Math.round(100 * fraction)}%)` : "—",
      fraction,
      rate: p.rate ? `${p.rate >= 10 ? Math.round(p.rate) : p.rate.toFixed(1)} ${p.unit}/s` : "—",
      eta: p.eta_s !== null && p.eta_s !== undefined ? duration(p.eta_s) : "—",
    };
  }

  // The one-line account of a job that ended.
  function ending(job) {
    if (job.state === "finished") return `Training finished: new iteration ${job.id}`;
    if (job.state === "cancelled") return `Training cancelled: run ${job.id} was not finished and is marked incomplete`;
    return `Training failed: ${job.message || `exit code ${job.exit_code}`}`;
  }

  // Make the finished job's run the UI's iteration; a UI that cannot switch (404) says so and points to the Train page.
  // (remembered for the tab: the Train page the fallback leads to then says so at once)
  const NO_SWITCH = "imgclf-no-switch";
  let canSwitch = (() => { try { return sessionStorage.getItem(NO_SWITCH) !== "1"; } catch (_) { return true; } })();
  async function switchTo(job, button) {
    button.disabled = true;
    try {
      await api("api/iterations/select", { json: { run: job.run_dir } });
    } catch (e) {
      button.disabled = false;
      if (e.status === 404) {
        canSwitch = false;
        try { sessionStorage.setItem(NO_SWITCH, "1"); } catch (_) { /* private mode */ }
        publish(last);
        const fallback = document.getElementById("jobstrip-train") || document.getElementById("switch-note");
        if (fallback) fallback.focus();
      } else {
        toast(`Not switched: ${e.message}`, { error: true });
      }
      return false;
    }
    markSeen(job);
    location.reload();  // every part of the page answers with the new iteration
    return true;
  }

  function render(data) {
    const job = data && data.job;
    if (onTrainPage || !job || (job.state !== "running" && seen(job))) { strip.hidden = true; return; }
    strip.hidden = false;
    strip.dataset.state = job.state;
    text.setAttribute("aria-live", job.state === "running" ? "off" : "polite");  // no announcement every second
    actions.replaceChildren();
    if (job.state === "running") {
      const f = figures(data.progress);
      text.textContent = `Training ${data.dataset}: ${f.stage}` + (f.fraction !== null ? ` · ${f.done}` : "") +
        (f.rate !== "—" ? ` · ${f.rate}` : "") + (f.eta !== "—" ? ` · step ends in ${f.eta}` : "") +
        ` · ${duration(job.elapsed_s)} elapsed`;
      bar.hidden = f.fraction === null;
      bar.value = f.fraction || 0;
      actions.append(el("a", { class: "btn", href: "train", id: "jobstrip-details" }, "Details"));
      return;
    }
    bar.hidden = true;
    text.textContent = ending(job);
    const dismiss = el("button", { type: "button", class: "btn", id: "jobstrip-dismiss", onclick: () => { markSeen(job); render(last); } }, "Dismiss");
    if (job.state === "finished" && canSwitch) {
      const sw = el("button", { type: "button", class: "btn primary", id: "jobstrip-switch" }, "Switch to it");
      sw.addEventListener("click", () => switchTo(job, sw));
      actions.append(sw);
    } else if (job.state === "finished") {
      actions.append(el("a", { class: "btn primary", href: "train", id: "jobstrip-train" }, "Open it from the Train page"));
    } else {
      actions.append(el("a", { class: "btn", href: "train", id: "jobstrip-log" }, "See the log"));
    }
    actions.append(dismiss);
  }

  function publish(data) {
    last = data;
    render(data);
    document.dispatchEvent(new CustomEvent("imgclf-job", { detail: data }));
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(refresh, document.hidden ? Math.max(ms, HIDDEN_MS) : ms);
  }

  async function refresh() {
    clearTimeout(timer);
    let data;
    try {
      data = await api("api/train/job");
    } catch (e) {
      if (e.status === 404 || e.status === 401) { stopped = true; return null; }  // no dataset to train, or no access
      schedule(IDLE_MS);
      return null;
    }
    publish(data);
    schedule(data.job && data.job.state === "running" ? RUNNING_MS : IDLE_MS);
    return data;
  }

  document.addEventListener("visibilitychange", () => { if (!document.hidden && !stopped) refresh(); });
  refresh();
  return { refresh, figures, duration, ending, switchTo, canSwitch: () => canSwitch };
})();
