// The operator console: tasks and their versions, the pool, a try-it box with the gates as a
// heatmap, and rollback. Read-only without a token; every request goes to this origin.

import { ApiError, call, mapLimited, setToken, token } from "./api.js";
import { drawHeatmap } from "./heatmap.js";
import { bytes, drawPool } from "./pool.js";

const PAGE = 50; // task rows per page; details are fetched for the shown page only
const $ = (id) => document.getElementById(id);
const state = { tasks: [], details: new Map(), page: 0, selected: null, pending: null };

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "–";
  if (className) td.className = className;
  return td;
}

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso || "–" : d.toISOString().replace("T", " ").slice(0, 19);
}

function metricsText(metrics) {
  const entries = Object.entries(metrics || {});
  return entries.length ? entries.map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ") : "–";
}

function residency(detail, version) {
  const tiers = [];
  if ((detail.resident_versions || []).includes(version)) tiers.push("bank");
  if ((detail.host_versions || []).includes(version)) tiers.push("host");
  return tiers.join(" + ") || "–";
}

function residentSummary(detail) {
  const bank = (detail.resident_versions || []).map((v) => `v${v}`).join(" ");
  const host = (detail.host_versions || []).map((v) => `v${v}`).join(" ");
  return [bank && `bank ${bank}`, host && `host ${host}`].filter(Boolean).join(", ") || "–";
}

// ---- token -----------------------------------------------------------------------------
function showTokenState() {
  $("token-state").textContent = token() ? "token set (this tab only)" : "read-only";
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token").value.trim());
  $("token").value = "";
  start();
});
$("token-forget").addEventListener("click", () => {
  setToken("");
  start();
});

// ---- tasks -----------------------------------------------------------------------------
function visibleTasks() {
  const needle = $("filter").value.trim().toLowerCase();
  return state.tasks.filter((t) => t.task.includes(needle));
}

async function loadTasks() {
  state.tasks = (await call("/adapters")).sort((a, b) => a.task.localeCompare(b.task));
  state.details.clear();
  await drawTasks();
}

async function drawTasks() {
  const shown = visibleTasks();
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  const rows = shown.slice(state.page * PAGE, (state.page + 1) * PAGE);
  $("task-count").textContent = `${state.tasks.length} tasks${shown.length !== state.tasks.length ? `, ${shown.length} shown` : ""}`;
  drawPager(pages);
  const missing = rows.filter((t) => !state.details.has(t.task));
  await mapLimited(missing, 6, async (t) => {
    state.details.set(t.task, await call(`/adapters/${encodeURIComponent(t.task)}`).catch((e) => e));
  });
  const body = $("tasks").tBodies[0];
  body.replaceChildren(...rows.map((t) => taskRow(t, state.details.get(t.task))));
}

function taskRow(t, detail) {
  const tr = document.createElement("tr");
  tr.dataset.task = t.task;
  tr.className = t.task === state.selected ? "selected" : "";
  const name = cell(t.task, "task-name");
  if (detail instanceof Error || !detail) {
    tr.append(name, cell(t.live_version), cell(detail ? detail.message : "…", "error"));
  } else {
    const live = detail.versions.find((v) => v.version === detail.live_version) || {};
    tr.append(
      name,
      cell(detail.live_version === null ? "none" : `v${detail.live_version}`, "live"),
      cell(String(detail.versions.length)),
      cell(live.method),
      cell(metricsText(live.metrics)),
      cell(bytes(live.size_bytes)),
      cell(when(live.uploaded_at)),
      cell(residentSummary(detail)),
    );
  }
  tr.addEventListener("click", () => selectTask(t.task));
  return tr;
}

function drawPager(pages) {
  const pager = $("pager");
  pager.replaceChildren();
  if (pages < 2) return;
  for (const [label, page] of [["‹", state.page - 1], [`${state.page + 1} / ${pages}`, null], ["›", state.page + 1]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.disabled = page === null || page < 0 || page >= pages;
    b.addEventListener("click", () => {
      state.page = page;
      drawTasks();
    });
    pager.append(b);
  }
}

$("filter").addEventListener("input", () => {
  state.page = 0;
  drawTasks();
});
$("refresh").addEventListener("click", () => refresh());

// ---- one task: versions and rollback ---------------------------------------------------
async function selectTask(task) {
  state.selected = task;
  state.pending = null;
  $("rollback-confirm").hidden = true;
  $("rollback-message").textContent = "";
  $("try-result").hidden = true;
  $("try-error").textContent = "";
  drawHeatmap($("heatmap-input"), {}, "Predict to see them.");
  for (const tr of $("tasks").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.task === task);
  $("task-section").hidden = false;
  $("task-name").textContent = task;
  await drawTask();
  await drawAverages();
}

async function drawTask() {
  const task = state.selected;
  let detail;
  try {
    detail = await call(`/adapters/${encodeURIComponent(task)}`);
  } catch (e) {
    $("versions").tBodies[0].replaceChildren();
    $("rollback-message").textContent = e.message;
    return;
  }
  state.details.set(task, detail);
  $("try-pair").hidden = detail.versions.length > 0 && !pairTask(detail);
  const rows = [...detail.versions].reverse().map((v) => {
    const tr = document.createElement("tr");
    tr.dataset.version = String(v.version);
    const action = document.createElement("td");
    if (v.version !== detail.live_version) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "make-live";
      b.textContent = `Make v${v.version} live`;
      b.addEventListener("click", () => askRollback(task, v.version, detail.live_version));
      action.append(b);
    }
    tr.append(
      cell(`v${v.version}`),
      cell(v.version === detail.live_version ? "live" : "", "live"),
      cell(v.method),
      cell(metricsText(v.metrics)),
      cell(bytes(v.size_bytes)),
      cell(v.sha256.slice(0, 12), "mono"),
      cell(when(v.uploaded_at)),
      cell(residency(detail, v.version)),
      action,
    );
    return tr;
  });
  $("versions").tBodies[0].replaceChildren(...rows);
}

function pairTask(detail) {
  return Boolean(detail.text_pair);
}

function askRollback(task, version, live) {
  state.pending = { task, version };
  $("rollback-question").textContent = `Make version ${version} of ${task} live (now v${live})?`;
  $("rollback-message").textContent = "";
  $("rollback-confirm").hidden = false;
}

$("rollback-no").addEventListener("click", () => {
  state.pending = null;
  $("rollback-confirm").hidden = true;
});

$("rollback-yes").addEventListener("click", async () => {
  const pending = state.pending;
  $("rollback-confirm").hidden = true;
  if (!pending) return;
  const message = $("rollback-message");
  try {
    const answer = await call(`/adapters/${encodeURIComponent(pending.task)}/rollback`, {
      method: "POST",
      body: { version: pending.version },
    });
    message.className = "ok";
    message.textContent = `${answer.task}: version ${answer.version} is live`;
  } catch (e) {
    message.className = "error";
    message.textContent = e instanceof ApiError ? `HTTP ${e.status}: ${e.message}` : String(e);
  }
  state.details.delete(pending.task);
  await Promise.all([drawTask(), drawTasks(), drawAverages()]);
});

// ---- try it ----------------------------------------------------------------------------
$("try-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const task = state.selected;
  const text = $("try-text").value;
  const pair = $("try-pair").value;
  const inputs = pair.trim() && !$("try-pair").hidden ? { text, text_pair: pair } : text;
  $("try-error").textContent = "";
  try {
    const answer = await call(`/v1/${encodeURIComponent(task)}/predict`, {
      method: "POST",
      body: { inputs, return_gates: true },
    });
    const p = answer.predictions[0];
    $("try-result").hidden = false;
    $("try-label").textContent = p.label ?? (p.value === null ? "–" : p.value.toFixed(4));
    $("try-version").textContent = `(${answer.task} v${answer.version})`;
    drawScores(p.scores || {});
    drawHeatmap($("heatmap-input"), p.gates || {}, "This task has no gates (an ungated method).");
  } catch (e) {
    $("try-result").hidden = true;
    $("try-error").textContent = e instanceof ApiError ? `HTTP ${e.status}: ${e.message}` : String(e);
  }
  await Promise.all([drawAverages(), drawTask(), drawPool($("pool"), $("pool-note"), $("server"))]);
});

function drawScores(scores) {
  const box = $("try-scores");
  box.replaceChildren();
  for (const [label, score] of Object.entries(scores).sort((a, b) => b[1] - a[1])) {
    const row = document.createElement("div");
    row.className = "score";
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(score * 200)}px`;
    const value = document.createElement("span");
    value.className = "muted";
    value.textContent = score.toFixed(4);
    row.append(name, bar, value);
    box.append(row);
  }
}

async function drawAverages() {
  const task = state.selected;
  try {
    const avg = await call(`/adapters/${encodeURIComponent(task)}/gates`);
    $("avg-note").textContent = avg.inputs
      ? `(v${avg.version}, ${avg.inputs} inputs, last ~${avg.window})`
      : `(v${avg.version})`;
    drawHeatmap($("heatmap-average"), avg.gates, "No requests recorded for the live version yet.");
  } catch (e) {
    $("avg-note").textContent = "";
    drawHeatmap($("heatmap-average"), {}, e.message);
  }
}

// ---- start -----------------------------------------------------------------------------
async function refresh() {
  $("tasks-error").textContent = "";
  await Promise.all([
    drawPool($("pool"), $("pool-note"), $("server")),
    loadTasks().catch((e) => {
      $("tasks-error").textContent = e.message;
    }),
  ]);
  if (state.selected) await drawTask();
}

async function start() {
  showTokenState();
  try {
    await call("/adapters"); // with protected reads, a 401 here: ask for the token first
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      $("main").hidden = true;
      $("locked").hidden = false;
      $("locked-detail").textContent = token() ? `HTTP 401: ${e.message}` : "";
      return;
    }
  }
  $("locked").hidden = true;
  $("main").hidden = false;
  await refresh();
}

document.body.dataset.console = "loading";
start().finally(() => {
  document.body.dataset.console = "ready";
});
