// One execution: graph coloured live, node runs timeline, items paged,
// errors with codes, events; cancel and retry.
import { ApiError, auth, executions, isTerminal, lower, workflowNames, workflows } from "./api.js";
import { badge, duration, el, since } from "./dom.js";
import { drawGraph } from "./graph.js";
import { onLive, seen, send, unwatch, watch } from "./live.js";

const $ = (id) => document.getElementById(id);
const OF_EVENT = {
  EXECUTION_QUEUED: "queued", EXECUTION_STARTED: "running", EXECUTION_RETRYING: "retry_scheduled",
  EXECUTION_COMPLETED: "completed", EXECUTION_FAILED: "failed",
  EXECUTION_CANCELLED: "cancelled", EXECUTION_TIMED_OUT: "timed_out",
};
const NODE_OF_EVENT = { NODE_STARTED: "running", NODE_COMPLETED: "completed", NODE_FAILED: "failed", NODE_SKIPPED: "skipped" };
const PAGE = 20;

// The example graph of the Run button, and the executions it started.
export const example = { graph: null, ids: new Set() };

let d = null;  // the shown execution's state

function fresh(id) {
  return { id, execution: null, graph: null, status: "queued", last: 0, live: new Map(), events: [], timer: null };
}

const eventType = (e) => String(e.event_type || e.type || "").replace(/^EVENT_TYPE_/, "");

function onEvent(e) {
  if (!d || e.execution_id !== d.id || e.sequence <= d.last) return;
  d.last = e.sequence;
  seen(d.id, e.sequence);
  const type = eventType(e);
  const t = e.time || new Date().toISOString();
  d.events.push({ sequence: e.sequence, type, nodeId: e.node_id || "", time: t, error: e.error || null });
  if (OF_EVENT[type]) d.status = OF_EVENT[type];
  if (e.node_id && NODE_OF_EVENT[type]) {
    const n = d.live.get(e.node_id) || { start: null, end: null };
    n.status = NODE_OF_EVENT[type];
    if (n.status === "running") { n.start = t; n.end = null; n.error = null; } else n.end = t;
    if (e.error) n.error = e.error;
    d.live.set(e.node_id, n);
  }
  render();
  // The store catches up with the events: re-read it shortly after.
  clearTimeout(d.timer);
  d.timer = setTimeout(() => refresh().catch(() => {}), 300);
}

onLive((msg) => {
  if (msg.type === "event") onEvent(msg);
  else if (msg.type === "complete") render();
});

async function graphOf(x) {
  if (example.ids.has(x.id) && example.graph) return example.graph;
  if (!x.workflowId) return null;
  const w = (await workflows("GetWorkflow", { workflowId: x.workflowId, version: x.workflowVersion })).workflow;
  return {
    name: w.name,
    nodes: (w.nodes || []).map((n) => ({ id: n.id, type: n.type })),
    edges: (w.connections || []).map((c) => ({ source: c.source, sourceOutput: c.sourceOutput, target: c.target })),
  };
}

async function refresh() {
  if (!d) return;
  const id = d.id;
  const x = (await executions("GetExecution", { executionId: id })).execution;
  if (!d || d.id !== id) return;
  d.execution = x;
  d.status = lower(x.status);
  if (!d.graph) d.graph = await graphOf(x).catch(() => null);
  render();
}

function nodeRuns() {
  const runs = new Map();
  for (const r of (d.execution && d.execution.nodeRuns) || []) runs.set(r.nodeId, r);  // the last attempt wins
  return runs;
}

function nodeStatus(nodeId, runs) {
  const live = d.live.get(nodeId);
  const run = runs.get(nodeId);
  let s = live ? live.status : run ? lower(run.status) : "pending";
  // A node the execution ended under never finished: it was cancelled or timed out with it.
  if (s === "running" && isTerminal(d.status)) s = d.status === "timed_out" ? "timed_out" : "cancelled";
  // Never reached in this execution (a branch not taken, or nodes before a retry's restart point).
  if (s === "pending" && isTerminal(d.status)) s = "not_run";
  return s;
}

function render() {
  if (!d) return;
  const x = d.execution || {};
  const runs = nodeRuns();
  $("d-title").textContent = d.id;
  const names = d.graph && d.graph.name ? d.graph.name : x.workflowId || "";
  $("d-meta").textContent = [
    names ? `${names}${x.workflowVersion ? ` v${x.workflowVersion}` : ""}` : "",
    x.triggerKind ? `trigger ${lower(x.triggerKind)}` : "",
    x.attempt ? `attempt ${x.attempt}/${x.maxAttempts}` : "",
    x.startTime ? `started ${since(x.startTime)}` : "",
    x.endTime ? `took ${duration(x.startTime, x.endTime)}` : "",
    x.retryOf ? `retry of ${x.retryOf}` : "",
  ].filter(Boolean).join(" · ");
  const st = $("status");
  st.dataset.status = d.status;
  st.textContent = d.status.replace("_", " ");
  $("cancel").disabled = isTerminal(d.status);
  const failed = ["failed", "timed_out", "cancelled"].includes(d.status) && Boolean(d.execution);
  $("retry-failed").disabled = !failed;
  $("retry-start").disabled = !isTerminal(d.status) || !d.execution;
  const err = x.error;
  $("d-error").hidden = !err;
  if (err) $("d-error").replaceChildren(el("code", { class: "code" }, err.code || "error"), ` ${err.message}`, err.nodeId ? el("span", { class: "muted" }, ` (node ${err.nodeId})`) : "");

  // The graph: the workflow's nodes, else the nodes seen so far.
  const ids = [...new Set([...runs.keys(), ...d.live.keys()])];
  const graph = d.graph || { nodes: ids.map((id) => ({ id, type: "" })), edges: [] };
  drawGraph($("d-graph"), graph.nodes, graph.edges, (id) => nodeStatus(id, runs));
  const typeOf = new Map(graph.nodes.map((n) => [n.id, n.type]));

  // Timeline: node runs in the order they started.
  const order = [...new Set([...graph.nodes.map((n) => n.id), ...ids])].filter((id) => runs.has(id) || d.live.has(id));
  const startOf = (id) => (d.live.get(id) || {}).start || (runs.get(id) || {}).startTime || "9";
  order.sort((a, b) => Date.parse(startOf(a)) - Date.parse(startOf(b)));
  const t0 = Math.min(...order.map((id) => Date.parse(startOf(id))));
  const t1 = Math.max(t0 + 1, ...order.map((id) => Date.parse((d.live.get(id) || {}).end || (runs.get(id) || {}).endTime || new Date().toISOString())));
  const open = new Set([...document.querySelectorAll("#nodes .node .items:not([hidden])")].map((p) => p.closest(".node").dataset.node));
  $("nodes").replaceChildren(...order.map((id) => nodeItem(id, typeOf.get(id), runs.get(id), t0, t1, open.has(id))));
  $("empty").hidden = order.length > 0;
  renderEvents();
}

function nodeItem(id, type, run, t0, t1, keepOpen) {
  const live = d.live.get(id) || {};
  const status = nodeStatus(id, nodeRuns());
  const start = live.start || (run && run.startTime);
  const end = live.end || (run && run.endTime);
  const li = el("li", { class: "node", "data-node": id, "data-status": status });
  const name = el("div", { class: "name" }, id, type ? el("span", { class: "type" }, type) : null);
  const ports = run && run.portItemCounts ? Object.entries(run.portItemCounts).sort() : [];
  const counts = ports.map(([p, n]) => `${p}: ${n}`).join(", ");
  li.append(name, el("div", { class: "timing" }, badge(status), ` ${end ? duration(start, end) : ""}`));
  if (start) {
    const seg = el("span", {});
    seg.style.left = `${(100 * (Date.parse(start) - t0)) / (t1 - t0)}%`;
    seg.style.width = `${Math.max(1, (100 * (Date.parse(end || new Date().toISOString()) - Date.parse(start))) / (t1 - t0))}%`;
    li.append(el("div", { class: "bar" }, seg));
  }
  const error = live.error || (run && run.error);
  if (error && error.message) li.append(el("div", { class: "err" }, el("code", { class: "code" }, error.code || "error"), ` ${error.message}`));
  if (ports.length) {
    const row = el("div", { class: "ports" }, el("span", { class: "muted" }, `items ${counts}`));
    const pre = el("pre", { class: "items" });
    pre.hidden = true;
    for (const [port, n] of ports) {
      if (!n) continue;
      const b = el("button", { type: "button", class: "link", "data-port": port }, `show ${port}`);
      b.onclick = () => showItems(id, port, "", row, pre);
      row.append(b);
    }
    li.append(row, pre);
    if (keepOpen && ports.some(([, n]) => n)) showItems(id, ports.find(([, n]) => n)[0], "", row, pre);
  }
  return li;
}

async function showItems(nodeId, port, token, row, pre) {
  try {
    const page = await executions("GetExecutionOutput", { executionId: d.id, nodeId, port, pageSize: PAGE, pageToken: token });
    const items = JSON.parse(page.itemsJson || "[]");
    pre.hidden = false;
    pre.textContent = items.map((i) => JSON.stringify(i)).join("\n");
    row.querySelectorAll(".more, .page-info").forEach((n) => n.remove());
    row.append(el("span", { class: "page-info muted" }, ` ${port}: ${items.length} of ${page.totalItems}`));
    if (page.nextPageToken) {
      const more = el("button", { type: "button", class: "link more" }, "next items");
      more.onclick = () => showItems(nodeId, port, page.nextPageToken, row, pre);
      row.append(more);
    }
  } catch (e) {
    pre.hidden = false;
    pre.textContent = `${e.code}: ${e.message}`;
  }
}

function renderEvents() {
  $("d-events").replaceChildren(...d.events.map((e) => el("tr", { "data-type": e.type },
    el("td", {}, String(e.sequence)), el("td", {}, e.type.toLowerCase()), el("td", {}, e.nodeId),
    el("td", {}, since(e.time)), el("td", {}, e.error ? `${e.error.code}: ${e.error.message}` : ""))));
}

export function showDetail(id, notice) {
  if (d && d.id !== id) unwatch(d.id);
  d = fresh(id);
  $("d-error").hidden = true;
  $("nodes").replaceChildren();
  $("d-graph").replaceChildren();
  render();
  watch(id, 0);
  refresh().catch((e) => {
    if (!(e instanceof ApiError) || e.status !== 501) notice(`${e.code}: ${e.message}`);
  });
  workflowNames().catch(() => {});
  return () => { if (d) { unwatch(d.id); d = null; } };
}

async function retry(from, notice) {
  try {
    const r = await executions("RetryExecution", { executionId: d.id, retryFrom: from });
    location.hash = `#/executions/${encodeURIComponent(r.executionId)}`;
  } catch (e) { notice(`${e.code}: ${e.message}`); }
}

export function bindDetail(notice) {
  $("cancel").onclick = async () => {
    if (!d) return;
    if (example.ids.has(d.id)) { send({ type: "cancel", execution_id: d.id, api_key: auth.key }); return; }
    try {
      const r = await executions("CancelExecution", { executionId: d.id, reason: "cancelled from the console" });
      d.status = lower(r.status);
      render();
    } catch (e) { notice(`${e.code}: ${e.message}`); }
  };
  $("retry-failed").onclick = () => retry("RETRY_FROM_FAILED_NODE", notice);
  $("retry-start").onclick = () => retry("RETRY_FROM_START", notice);
}
