// Train page: start `imgclf run` on this dataset (preset, time limit, advanced settings checked by the server),
// follow the job (step, done/total, speed, ETA; from jobs.js's polling), read its log, cancel it, and switch
// the UI to the iteration it made.
"use strict";

(() => {
  const { api, toast } = UI;
  const $ = (id) => document.getElementById(id);
  let defaultsShown = false, job = null, logTimer = null;

  function settingsLines() {
    return $("settings").value.split("\n").map((s) => s.trim()).filter((s) => s && !s.startsWith("#"));
  }

  async function start(ev) {
    ev.preventDefault();
    const minutes = $("time-limit").value.trim();
    const body = {
      preset: document.querySelector("input[name=preset]:checked").value,
      time_limit_s: minutes === "" ? 0 : Number(minutes) * 60,
      settings: settingsLines(),
    };
    if (!isFinite(body.time_limit_s)) { showError(`The time limit must be a number of minutes; got "${minutes}"`); return; }
    $("start").disabled = true;
    try {
      await api("api/train/start", { json: body });
      showError("");
      await JOBS.refresh();
      $("cancel").focus();
    } catch (e) {
      showError(`Not started: ${e.message}`);  // a 409 names the job that runs
    } finally {
      $("start").disabled = false;
    }
  }

  // An argument as a POSIX shell reads it back.
  const quoted = (arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`);

  function showError(message) {
    $("train-error").textContent = message;
  }

  async function cancel() {
    if (!job) return;
    $("cancel").disabled = true;
    try {
      await api("api/train/cancel", { json: { id: job.id } });
      toast("Training cancelled");
    } catch (e) {
      toast(`Not cancelled: ${e.message}`, { error: true });
    } finally {
      $("cancel").disabled = false;
      await JOBS.refresh();
      $("start").focus();
    }
  }

  function showDefaults(d) {
    if (defaultsShown || !d) return;
    defaultsShown = true;
    const radio = document.querySelector(`input[name=preset][value="${d.preset}"]`);
    if (radio) radio.checked = true;
    if (d.time_limit_s) $("time-limit").value = String(Math.round((d.time_limit_s / 60) * 10) / 10);
  }

  function render(data) {
    showDefaults(data.defaults);
    job = data.job;
    const panel = $("job");
    if (!job) { panel.hidden = true; return; }
    panel.hidden = false;
    panel.dataset.state = job.state;
    const running = job.state === "running";
    const f = JOBS.figures(running ? data.progress : null);
    $("job-state").textContent = running
      ? `Running since ${job.started_at.slice(11, 19)}: run ${job.id}` +
        (data.progress && data.progress.age_s > 10 ? ` (no news for ${Math.round(data.progress.age_s)} s)` : "")
      : JOBS.ending(job);
    $("job-progress").hidden = !running;
    $("job-stage").textContent = f.stage;
    $("job-done").textContent = f.done;
    $("job-rate").textContent = f.rate;
    $("job-eta").textContent = f.eta;
    $("job-elapsed").textContent = JOBS.duration(job.elapsed_s);
    $("job-bar").value = f.fraction || 0;
    if (f.fraction === null) $("job-bar").removeAttribute("value");  // indeterminate: a step without a count
    $("job-run").textContent = `Run directory ${job.run_dir} · preset ${job.preset}` +
      (job.time_limit_s ? ` · time limit ${JOBS.duration(job.time_limit_s)}` : "") +
      (job.settings.length ? ` · ${job.settings.join(", ")}` : "");
    $("job-command").textContent = ["imgclf", ...job.command.slice(3)].map(quoted).join(" ");
    $("cancel").hidden = !running;
    $("job-switch").hidden = job.state !== "finished" || !JOBS.canSwitch();
    $("switch-note").hidden = job.state !== "finished" || JOBS.canSwitch();
    $("switch-note").textContent = `This UI cannot switch iterations: open the new one with imgclf ui --run ${job.run_dir}`;
    if ($("log").open) loadLog();
  }

  async function loadLog() {
    clearTimeout(logTimer);
    const pre = $("log-text");
    try {
      const log = await api("api/train/log?max_bytes=65536");
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.textContent = (log.truncated ? "…\n" : "") + (log.text || "(nothing written yet)");
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      pre.textContent = `Cannot read the log: ${e.message}`;
    }
  }

  $("train-form").addEventListener("submit", start);
  $("cancel").addEventListener("click", cancel);
  $("job-switch").addEventListener("click", () => { if (job) JOBS.switchTo(job, $("job-switch")); });
  $("log").addEventListener("toggle", () => { if ($("log").open) loadLog(); });
  document.addEventListener("imgclf-job", (ev) => render(ev.detail));
  UI.showContext();
  UI.onReturn(() => JOBS.refresh());
})();
