// The gates as a picture: a submodule x layer grid, each cell coloured by its gate (0..1).

export const SUBMODULES = [
  ["prefix", "prefix"],
  ["lora_q", "LoRA-q"],
  ["lora_v", "LoRA-v"],
  ["adapter", "adapter"],
];

// A perceptual ramp (dark blue -> teal -> yellow) sampled at 0, 0.25, ..., 1.
const RAMP = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

export function colour(value) {
  const v = Math.min(1, Math.max(0, value));
  const at = v * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(at));
  const f = at - i;
  const [r, g, b] = RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * f));
  return { background: `rgb(${r}, ${g}, ${b})`, text: v > 0.6 ? "#111" : "#fff" };
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Draw `gates` ({submodule: [value per layer]}) into `container`; submodules the task
// does not have are shown as absent rows.
export function drawHeatmap(container, gates, emptyText) {
  container.replaceChildren();
  const layers = Math.max(0, ...Object.values(gates || {}).map((v) => v.length));
  if (!layers) {
    container.append(el("p", "muted", emptyText || "No gates."));
    return;
  }
  const table = el("table", "grid");
  const head = el("tr");
  head.append(el("th", "", ""));
  for (let l = 0; l < layers; l++) head.append(el("th", "layer", `L${l}`));
  head.append(el("th", "layer", "mean"));
  table.append(head);
  for (const [name, label] of SUBMODULES) {
    const row = el("tr");
    row.append(el("th", "submodule", label));
    const values = gates[name];
    if (!values) {
      const cell = el("td", "absent", "not in this task");
      cell.colSpan = layers + 1;
      row.append(cell);
    } else {
      for (const v of [...values, values.reduce((a, b) => a + b, 0) / values.length]) {
        const cell = el("td", "cell", v.toFixed(2));
        const c = colour(v);
        cell.style.backgroundColor = c.background;
        cell.style.color = c.text;
        cell.title = `${label}: ${v.toFixed(4)}`;
        cell.dataset.value = String(v);
        row.append(cell);
      }
    }
    table.append(row);
  }
  container.append(table, legend());
}

function legend() {
  const box = el("div", "legend");
  box.append(el("span", "muted", "gate 0"));
  for (let i = 0; i <= 10; i++) {
    const swatch = el("span", "swatch");
    swatch.style.backgroundColor = colour(i / 10).background;
    box.append(swatch);
  }
  box.append(el("span", "muted", "1"));
  return box;
}
