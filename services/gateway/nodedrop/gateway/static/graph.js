// The workflow as an SVG graph: nodes laid out by layer (longest path from a
// source), edges by port, each node coloured by its status.

const NS = "http://www.w3.org/2000/svg";
const W = 176, H = 44, GX = 60, GY = 22;  // wide enough for "schedule_trigger · completed"

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// nodes: [{id, type}], edges: [{source, sourceOutput, target}]
export function layout(nodes, edges) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  // Longest path by relaxation: at most |nodes| rounds in a DAG.
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      const next = (layer.get(e.source) ?? 0) + 1;
      if (layer.has(e.target) && next > layer.get(e.target)) { layer.set(e.target, next); changed = true; }
    }
    if (!changed) break;
  }
  const rows = new Map();
  const pos = new Map();
  for (const n of nodes) {
    const l = layer.get(n.id);
    const r = rows.get(l) || 0;
    rows.set(l, r + 1);
    pos.set(n.id, { x: 10 + l * (W + GX), y: 10 + r * (H + GY) });
  }
  return pos;
}

export function drawGraph(container, nodes, edges, statusOf) {
  const pos = layout(nodes, edges);
  let maxX = 0, maxY = 0;
  for (const p of pos.values()) { maxX = Math.max(maxX, p.x + W); maxY = Math.max(maxY, p.y + H); }
  const root = svg("svg", { class: "graph", viewBox: `0 0 ${maxX + 10} ${maxY + 10}`, width: maxX + 10, height: maxY + 10 });
  for (const e of edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    const port = e.sourceOutput || "main";
    if (port !== "main") {
      // Beside the target end, where edges of one source no longer overlap.
      const label = svg("text", { class: "port", x: x2 - 6, y: y2 - 5, "text-anchor": "end" });
      label.textContent = port;
      root.append(label);
    }
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const g = svg("g", { class: "gnode", "data-node": n.id, "data-status": statusOf(n.id), transform: `translate(${p.x},${p.y})` });
    g.append(svg("rect", { width: W, height: H, rx: 8 }));
    const name = svg("text", { x: 10, y: 19, class: "gname" });
    name.textContent = n.id.length > 22 ? `${n.id.slice(0, 21)}…` : n.id;
    const type = svg("text", { x: 10, y: 35, class: "gtype" });
    type.textContent = `${n.type || ""} · ${statusOf(n.id)}`;
    g.append(name, type);
    root.append(g);
  }
  container.replaceChildren(root);
}
