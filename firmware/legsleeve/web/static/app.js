// The web page's script: polls /api/status twice a second and draws it; sends each action as one JSON request with
// the session's CSRF token. It decides nothing about the sleeve: the service judges every request.
"use strict";

const POLL_MS = 500;
let csrf = "";
let hello = null;
let polling = false;
let stopAnswerTimer = 0;

const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, init);
  let data = {};
  try { data = await res.json(); } catch (e) { data = { ok: false, text: `HTTP ${res.status}` }; }
  if (res.status === 401 && data.error === "login") showLogin();
  return { status: res.status, data };
}

function say(el, data) {
  el.textContent = data.text || (data.ok ? "done" : "failed");
  el.dataset.ok = data.ok ? "true" : "false";
}

// -- session and login -------------------------------------------------------------------------------------------
async function boot() {
  const { data } = await api("GET", "/api/session");
  csrf = data.csrf || "";
  $("logout").hidden = !(data.password_needed && data.logged_in);
  if (data.password_needed && !data.logged_in) { showLogin(); return; }
  showApp();
}

function showLogin() {
  $("login-card").hidden = false;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("password").focus();
}

async function showApp() {
  $("login-card").hidden = true;
  $("app").hidden = false;
  if (!polling) { polling = true; poll(); }
  await loadHello();
  loadHistory();
  loadProfileList();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const { data } = await api("POST", "/api/login", { password: $("password").value });
  if (data.ok) {
    csrf = data.csrf;
    $("password").value = "";
    $("login-error").textContent = "";
    $("logout").hidden = false;
    showApp();
  } else {
    $("login-error").textContent = data.text || "wrong password";
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  location.reload();
});

// -- stop: the form works without the script; with it, no page load ------------------------------------------------
// A stop the service did not confirm (no answer, the page unreachable, the service down) says so plainly and stays
// on the screen: the sleeve's own button or E-stop is the safety stop.
const NOT_CONFIRMED = "STOP NOT CONFIRMED \u2013 use the sleeve's button or E-stop";
$("stop-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let data;
  try {
    const res = await fetch("/api/stop", { method: "POST", headers: { Accept: "application/json" } });
    try { data = await res.json(); } catch (e) { data = { ok: false, text: `HTTP ${res.status}, no answer` }; }
    if (!res.ok) data.ok = false;
  } catch (e) {
    data = { ok: false, text: `the page is unreachable (${e.message || e})` };
  }
  clearTimeout(stopAnswerTimer);
  if (data.ok) {
    say($("stop-answer"), data);
    stopAnswerTimer = setTimeout(() => { $("stop-answer").textContent = ""; }, 8000);
  } else {
    say($("stop-answer"), { ok: false, text: `${NOT_CONFIRMED}. ${data.text || ""}` });
  }
});

// -- live status ---------------------------------------------------------------------------------------------------
async function poll() {
  try {
    const { status, data } = await api("GET", "/api/status");
    if (status === 200) draw(data);
  } catch (e) {
    drawLink("down", "page unreachable");
  }
  setTimeout(poll, POLL_MS);
}

function drawLink(state, text) {
  const l = $("link");
  l.dataset.state = state;
  l.textContent = text;
}

function fmtTime(s) {
  if (s === null || s === undefined) return "";
  const m = Math.floor(s / 60), r = Math.floor(s % 60);
  return `${m}:${String(r).padStart(2, "0")}`;
}

function draw(d) {
  drawLink(d.service, { ok: "live", silent: "service silent", down: "no service" }[d.service] || d.service);
  $("service-error").textContent = d.service === "ok" ? "" : d.error;
  const s = d.status;
  if (!s) return;
  const st = $("state");
  st.textContent = s.state;
  st.dataset.state = s.state;
  const parts = [];
  if (s.profile) parts.push(s.profile + (s.intensity_pct && s.intensity_pct !== 100 ? ` at ${s.intensity_pct} %` : ""));
  if (s.cycle) parts.push(`cycle ${s.cycle}${s.cycles ? " of " + s.cycles : ""}`);
  if (s.step) parts.push(s.step);
  $("step").textContent = parts.join(" · ") || `idle, the button starts ${s.selected}`;
  const t = [];
  if (s.elapsed_s !== null && s.elapsed_s !== undefined) t.push(fmtTime(s.elapsed_s));
  if (s.remaining_s !== null && s.remaining_s !== undefined) t.push(`${fmtTime(s.remaining_s)} left`);
  $("time").textContent = t.join(" · ");
  $("last").textContent = s.last ? `last: ${s.last}` : "";
  drawZones(s.zones || []);
  drawAlarm(s.alarm);
}

function drawZones(zones) {
  const ul = $("zones");
  const max = (hello && hello.max_mmhg) || 100;
  if (ul.children.length !== zones.length) {
    ul.replaceChildren(...zones.map(() => {
      const li = document.createElement("li");
      li.innerHTML = '<span class="name"></span><span class="bar"><span class="level"></span>' +
        '<span class="target" hidden></span></span><span class="figures"><span class="mmhg"></span>' +
        '<span class="valve"></span></span>';
      return li;
    }));
  }
  zones.forEach((z, i) => {
    const li = ul.children[i];
    li.dataset.zone = z.name;
    li.dataset.valve = z.valve;
    li.dataset.mmhg = z.mmhg === null ? "" : z.mmhg.toFixed(1);
    li.querySelector(".name").textContent = z.name;
    const p = z.mmhg === null ? 0 : Math.max(0, z.mmhg);
    li.querySelector(".level").style.width = `${Math.min(100, (100 * p) / max)}%`;
    const tgt = li.querySelector(".target");
    tgt.hidden = z.target_mmhg === null;
    if (z.target_mmhg !== null) tgt.style.left = `${Math.min(100, (100 * z.target_mmhg) / max)}%`;
    const figures = z.mmhg === null ? "—" : z.mmhg.toFixed(1) + (z.target_mmhg !== null ? ` / ${z.target_mmhg.toFixed(0)}` : "");
    li.querySelector(".mmhg").textContent = figures + " mmHg";
    li.querySelector(".valve").textContent = z.mmhg === null && z.valve === "vent" ? "vented" : z.valve;
  });
}

function drawAlarm(a) {
  const box = $("alarm");
  box.hidden = !a;
  if (!a) return;
  $("alarm-title").textContent = `Alarm (${a.priority})` + (a.rule ? ` ${a.rule}` : "") + (a.zone ? `, ${a.zone}` : "") +
    (a.silenced ? ", silenced" : "");
  $("alarm-message").textContent = a.message;
  $("alarm-hint").textContent = a.hint ? `Check: ${a.hint}` : "";
}

$("reset").addEventListener("click", async () => say($("start-answer"), (await api("POST", "/api/reset")).data));
$("silence").addEventListener("click", async () => say($("start-answer"), (await api("POST", "/api/silence")).data));

// -- start ---------------------------------------------------------------------------------------------------------
async function loadHello() {
  // refresh=1: the service scans its profiles directory afresh, so a profile saved or removed since shows at once
  const { status, data } = await api("GET", "/api/hello?refresh=1");
  if (status !== 200) { setTimeout(loadHello, 2000); return; }
  hello = data;
  const sel = $("profile");
  const keep = sel.value || data.selected;
  sel.replaceChildren(...data.profiles.map((p) => new Option(p.name, p.name)));
  sel.value = data.profiles.some((p) => p.name === keep) ? keep : data.selected;
  onProfile();
}

function onProfile() {
  if (!hello) return;
  const p = hello.profiles.find((x) => x.name === $("profile").value);
  if (!p) return;
  const len = p.minutes ? `${p.minutes} min` : `${p.cycles} cycles`;
  $("profile-description").textContent = `${p.description} (${len})`;
  const r = $("intensity");
  r.min = hello.intensity_pct.min;
  r.max = Math.min(hello.intensity_pct.max, p.intensity_max_pct);  // the service refuses beyond this anyway
  if (Number(r.value) > Number(r.max)) r.value = r.max;
  onIntensity();
}

function onIntensity() { $("intensity-out").textContent = `${$("intensity").value} %`; }

$("profile").addEventListener("change", onProfile);
$("intensity").addEventListener("input", onIntensity);

$("start").addEventListener("click", async () => {
  const body = { profile: $("profile").value, intensity_pct: Number($("intensity").value) };
  const minutes = $("minutes").value.trim();
  if (minutes) body.minutes = Number(minutes);
  $("start").disabled = true;
  try { say($("start-answer"), (await api("POST", "/api/start", body)).data); } finally { $("start").disabled = false; }
});

// -- history -------------------------------------------------------------------------------------------------------
async function loadHistory() {
  const { data } = await api("GET", "/api/history");
  const ol = $("history");
  if (!data.ok) { ol.replaceChildren(Object.assign(document.createElement("li"), { textContent: data.text })); return; }
  if (!data.sessions.length) { ol.replaceChildren(Object.assign(document.createElement("li"), { textContent: "no sessions yet" })); return; }
  ol.replaceChildren(...data.sessions.map((e) => {
    const li = document.createElement("li");
    const mins = e.duration_s !== null && e.duration_s !== undefined ? ` · ${(e.duration_s / 60).toFixed(1)} min` : "";
    const pct = e.intensity_pct && e.intensity_pct !== 100 ? ` at ${e.intensity_pct} %` : "";
    li.append(Object.assign(document.createElement("div"), { textContent: `${e.started.replace("T", " ")} · ${e.profile}${pct}${mins}` }));
    const alarm = e.alarm ? ` (${e.alarm.rule || ""} ${e.alarm.zone || ""}: ${e.alarm.message})` : "";
    li.append(Object.assign(document.createElement("div"), { className: "muted small-text", textContent: `${e.outcome}: ${e.text || ""}${alarm}` }));
    if (e.plot) {
      const b = Object.assign(document.createElement("button"), { className: "small", textContent: "plot" });
      b.addEventListener("click", () => showPlot(li, e.plot, b));
      li.append(b);
    }
    return li;
  }));
}

async function showPlot(li, url, button) {
  button.disabled = true;
  button.textContent = "drawing…";
  const res = await fetch(url, { credentials: "same-origin" });
  button.remove();
  if (res.ok) {
    const img = Object.assign(document.createElement("img"), { alt: "session plot" });
    img.src = URL.createObjectURL(await res.blob());
    li.append(img);
  } else {
    let text = `no plot (HTTP ${res.status})`;
    try { text = (await res.json()).text; } catch (e) { /* keep the status */ }
    li.append(Object.assign(document.createElement("p"), { className: "muted small-text", textContent: text }));
  }
}

$("history-refresh").addEventListener("click", loadHistory);

// -- the profile editor --------------------------------------------------------------------------------------------
async function loadProfileList() {
  const { data } = await api("GET", "/api/profiles");
  if (!data.ok) return;
  const sel = $("edit-name");
  sel.replaceChildren(...data.profiles.map((n) => new Option(n, n)));
  if (data.profiles.length) { sel.value = data.profiles[0]; loadProfileText(); }
}

async function loadProfileText() {
  const { data } = await api("GET", `/api/profiles/${encodeURIComponent($("edit-name").value)}`);
  if (data.ok) $("edit-text").value = data.text;
  clearEditor();
}

function clearEditor() {
  $("problems").replaceChildren();
  $("edit-answer").textContent = "";
  $("plan").hidden = true;
}

function editName() { return $("new-name").value.trim() || $("edit-name").value; }

function showProblems(data) {
  say($("edit-answer"), data);
  $("problems").replaceChildren(...(data.problems || []).map((p) => {
    const li = Object.assign(document.createElement("li"), { textContent: p.text });
    li.dataset.line = p.line;
    li.addEventListener("click", () => gotoLine(p.line));
    return li;
  }));
}

function gotoLine(line) {
  if (!line) return;
  const ta = $("edit-text");
  const lines = ta.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  ta.focus();
  ta.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

async function editorAction(path, button) {
  button.disabled = true;
  try {
    const name = editName();
    const { data } = await api("POST", `/api/profiles/${encodeURIComponent(name)}${path}`, { text: $("edit-text").value });
    showProblems(data);
    return data;
  } finally { button.disabled = false; }
}

$("edit-name").addEventListener("change", () => { $("new-name").value = ""; loadProfileText(); });
$("check").addEventListener("click", () => { $("plan").hidden = true; editorAction("/check", $("check")); });
$("save").addEventListener("click", async () => {
  const data = await editorAction("", $("save"));
  if (data.ok) { loadHello(); }
});
$("preview").addEventListener("click", async () => {
  $("edit-answer").textContent = "planning one cycle on the simulated sleeve…";
  const data = await editorAction("/preview", $("preview"));
  const plan = data.plan;
  $("plan").hidden = !plan;
  if (!plan) return;
  $("plan-model").textContent = `on ${plan.model}: ${plan.duration_s} s` + (plan.trip ? ` · TRIPPED: ${plan.trip}` : "");
  const img = $("plan-plot");
  img.hidden = !plan.plot;
  if (plan.plot) img.src = plan.plot;
  $("plan-plot-error").textContent = plan.plot_error || "";
  $("plan-steps").tBodies[0].replaceChildren(...plan.steps.map((s) => {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("td"), { textContent: s.t_s.toFixed(1) }),
      Object.assign(document.createElement("td"), { textContent: s.step }));
    return tr;
  }));
});

boot();
