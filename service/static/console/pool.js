// The pool's cards: slots and host tier from /readyz, hits, loads and evictions from /metrics.

import { call } from "./api.js";

// Prometheus text -> {name: [{labels, value}]} (samples only; comments skipped).
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    (out[m[1]] ||= []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

function total(metrics, name, match = {}) {
  return (metrics[name] || [])
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

export function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function card(title, value, note) {
  const box = document.createElement("div");
  box.className = "card";
  const h = document.createElement("div");
  h.className = "card-title";
  h.textContent = title;
  const v = document.createElement("div");
  v.className = "card-value";
  v.textContent = value;
  box.append(h, v);
  if (note) {
    const n = document.createElement("div");
    n.className = "muted";
    n.textContent = note;
    box.append(n);
  }
  return box;
}

export async function drawPool(container, noteEl, serverEl) {
  const [ready, text] = await Promise.all([
    call("/readyz").catch((e) => ({ error: e })),
    call("/metrics", { text: true }).catch(() => ""),
  ]);
  const metrics = parseMetrics(text);
  const pool = ready.pool || {};
  if (ready.error) noteEl.textContent = `not ready: ${ready.error.message}`;
  else noteEl.textContent = "";
  serverEl.textContent = ready.backbone ? `backbone ${ready.backbone}` : "";
  const hits = total(metrics, "unipelt_adapter_cache_hits_total");
  const misses = total(metrics, "unipelt_adapter_cache_misses_total");
  const loads = (source) => total(metrics, "unipelt_adapter_load_source_seconds_count", { source });
  const slots = pool.slots ?? 0;
  const used = pool.resident ?? 0;
  container.replaceChildren(
    card("bank slots used", `${used} / ${slots}`, `${slots - used} free, ${bytes(pool.slot_bytes)} each`),
    card(
      "host tier",
      `${bytes(pool.host_bytes)} / ${bytes(pool.host_budget_bytes)}`,
      `${pool.host_adapters ?? 0} adapters; budget ${pool.host_budget_from || "?"}`,
    ),
    card(
      "bank hit ratio",
      hits + misses ? `${((100 * hits) / (hits + misses)).toFixed(1)} %` : "–",
      `${hits} hits, ${misses} misses`,
    ),
    card("loads", `${loads("host") + loads("store")}`, `${loads("host")} from host, ${loads("store")} from store`),
    card(
      "evictions",
      `${total(metrics, "unipelt_adapter_cache_evictions_total")}`,
      `warm loads: ${total(metrics, "unipelt_warm_loads_total")}`,
    ),
    card(
      "queue",
      `${total(metrics, "unipelt_queue_depth")}`,
      `store ${total(metrics, "unipelt_store_up") ? "up" : "down"}`,
    ),
  );
}
