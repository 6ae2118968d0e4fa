// Live view: one WebSocket to the gateway (protocol in docs/events.md).
"use strict";

const $ = (id) => document.getElementById(id);
const STATUS_OF_EVENT = {
  EXECUTION_QUEUED: "queued", EXECUTION_STARTED: "running", EXECUTION_RETRYING: "retrying",
  EXECUTION_COMPLETED: "completed", EXECUTION_FAILED: "failed",
  EXECUTION_CANCELLED: "cancelled", EXECUTION_TIMED_OUT: "timed_out",
};
const NODE_STATUS = {
  NODE_STARTED: "running", NODE_COMPLETED: "completed", NODE_FAILED: "failed", NODE_SKIPPED: "skipped",
};

const state = {
  key: sessionStorage.getItem("nodedrop.key") || "",
  ws: null,
  retry: 0,
  renewTimer: null,
  example: null,          // {nodes, edges} of the example workflow
  exampleIds: new Set(),  // executions started from the example button
  selected: null,         // execution id
  views: new Map(),       // execution id -> {status, last, nodes: Map, start, end}
  recent: [],             // last list_executions answer
};

function view(id) {
  if (!state.views.has(id)) state.views.set(id, { status: "queued", last: 0, nodes: new Map(), start: null, end: null });
  return state.views.get(id);
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function setConn(s) { const el = $("conn"); el.dataset.state = s; el.textContent = s; $("run").disabled = s !== "online"; }

// A ticket only watches, and expires (docs/events.md): the socket opens with
// one, is renewed with a fresh one before it runs out, and commands that act
// carry the key itself.
class Refused extends Error {}

async function fetchTicket() {
  const r = await fetch("/api/ticket", { headers: { Authorization: `Bearer ${state.key}` } });
  const body = await r.json();
  if (!r.ok) {
    const message = body.error ? body.error.message : r.statusText;
    if (r.status === 401 || r.status === 403) throw new Refused(message);
    throw new Error(message);
  }
  return body;
}

function scheduleRenewal(ws, expiresInS) {
  // Two thirds of the lifetime: time to retry once if the first try fails.
  const delay = Math.max(1000, (expiresInS || 60) * 1000 * 2 / 3);
  clearTimeout(state.renewTimer);
  state.renewTimer = setTimeout(() => renew(ws), delay);
}

async function renew(ws) {
  if (state.ws !== ws) return;
  try {
    const body = await fetchTicket();
    if (state.ws !== ws) return;
    send({ type: "renew", ticket: body.ticket });
    scheduleRenewal(ws, body.expires_in_s);
  } catch (e) {
    if (e instanceof Refused) { ws.close(); return showLogin(e.message); }
    clearTimeout(state.renewTimer);
    state.renewTimer = setTimeout(() => renew(ws), 2000);
  }
}

async function connect() {
  setConn("connecting");
  let ticket;
  try {
    ticket = await fetchTicket();
  } catch (e) {
    if (e instanceof Refused) return showLogin(e.message);
    return scheduleReconnect();
  }
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?ticket=${encodeURIComponent(ticket.ticket)}`);
  state.ws = ws;
  scheduleRenewal(ws, ticket.expires_in_s);
  ws.onopen = () => {
    state.retry = 0;
    setConn("online");
    send({ type: "list_executions", limit: 20 });
    // Resume: each watched execution continues after the last sequence seen.
    if (state.selected) {
      const v = view(state.selected);
      if (!isTerminal(v.status)) send({ type: "subscribe", execution_id: state.selected, after_sequence: v.last });
    }
  };
  ws.onmessage = (m) => onMessage(JSON.parse(m.data));
  ws.onclose = () => {
    if (state.ws === ws) { state.ws = null; clearTimeout(state.renewTimer); setConn("offline"); scheduleReconnect(); }
  };
}

function scheduleReconnect() {
  const delay = Math.min(10000, 250 * 2 ** state.retry++);
  setTimeout(connect, delay);
}

function isTerminal(s) { return ["completed", "failed", "cancelled", "timed_out"].includes(s); }

function onMessage(msg) {
  switch (msg.type) {
    case "event": return onEvent(msg);
    case "complete": return render();
    case "executions": return renderExecutions(msg.items);
    case "started":
      state.exampleIds.add(msg.execution_id);
      select(msg.execution_id);
      send({ type: "list_executions", limit: 20 });
      return;
    case "cancelled": return send({ type: "list_executions", limit: 20 });
    case "renewed": return undefined;
    case "error": return notice(`${msg.code}: ${msg.message}`);
    default: return undefined;
  }
}

function onEvent(e) {
  const v = view(e.execution_id);
  if (e.sequence <= v.last) return;   // already applied (resume overlap)
  v.last = e.sequence;
  const t = e.time ? Date.parse(e.time) : Date.now();
  if (STATUS_OF_EVENT[e.event_type]) {
    v.status = STATUS_OF_EVENT[e.event_type];
    if (e.event_type === "EXECUTION_STARTED" && v.start === null) v.start = t;
    if (isTerminal(v.status)) v.end = t;
    if (e.error) v.error = e.error.message;
  }
  if (e.node_id && NODE_STATUS[e.event_type]) {
    const n = v.nodes.get(e.node_id) || { id: e.node_id, status: "pending", start: null, end: null };
    n.status = NODE_STATUS[e.event_type];
    if (n.status === "running") { n.start = t; n.end = null; n.error = null; }
    else n.end = t;
    if (e.data !== null && e.data !== undefined) n.output = e.data;
    if (e.error) n.error = e.error.message;
    n.attempt = e.attempt;
    v.nodes.set(e.node_id, n);
    if (v.start === null) v.start = t;
  }
  if (e.execution_id === state.selected) render();
}

function select(id) {
  if (state.selected && state.selected !== id) send({ type: "unsubscribe", execution_id: state.selected });
  state.selected = id;
  const v = view(id);
  if (state.exampleIds.has(id) && state.example && v.nodes.size === 0) {
    for (const n of state.example.nodes) v.nodes.set(n.id, { id: n.id, type: n.type, status: "pending" });
  }
  send({ type: "subscribe", execution_id: id, after_sequence: v.last });
  $("notice").hidden = true;
  render();
  document.querySelectorAll("#executions li").forEach((li) => li.classList.toggle("selected", li.dataset.id === id));
}

function renderExecutions(items) {
  state.recent = items;
  const ul = $("executions");
  ul.replaceChildren();
  for (const x of items) {
    const li = document.createElement("li");
    li.dataset.id = x.id;
    li.classList.toggle("selected", x.id === state.selected);
    const code = document.createElement("code");
    code.textContent = x.id;
    code.title = x.id;
    const badge = document.createElement("span");
    badge.className = "badge";
    const live = state.views.get(x.id);
    const status = (live && live.last ? live.status : x.status || "").toLowerCase();
    badge.dataset.status = status;
    badge.textContent = status.replace("_", " ");
    li.append(code, badge);
    li.onclick = () => select(x.id);
    ul.append(li);
  }
}

function ms(a, b) { return a !== null && a !== undefined && b !== null && b !== undefined ? `${Math.max(0, b - a)} ms` : ""; }

function outputPreview(output) {
  if (output === null || typeof output !== "object" || Array.isArray(output)) return JSON.stringify(output);
  return Object.entries(output).map(([port, items]) => `${port}: ${JSON.stringify(items)}`).join("\n");
}

function render() {
  renderExecutions(state.recent);
  const id = state.selected;
  $("empty").hidden = Boolean(id);
  if (!id) return;
  const v = view(id);
  $("title").textContent = id;
  $("meta").textContent = [v.start ? `started ${new Date(v.start).toLocaleTimeString()}` : "", v.end ? `took ${ms(v.start, v.end)}` : "", v.error || ""].filter(Boolean).join(" · ");
  const st = $("status");
  st.dataset.status = v.status;
  st.textContent = v.status.replace("_", " ");
  $("cancel").disabled = isTerminal(v.status);
  const list = $("nodes");
  list.replaceChildren();
  const span0 = v.start;
  const spanEnd = v.end || Date.now();
  for (const n of v.nodes.values()) {
    const li = document.createElement("li");
    li.className = "node";
    li.dataset.node = n.id;
    li.dataset.status = n.status;
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = n.id;
    if (n.type) { const t = document.createElement("span"); t.className = "type"; t.textContent = n.type; name.append(t); }
    const right = document.createElement("div");
    right.className = "timing";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.status = n.status;
    badge.textContent = n.status;
    right.append(badge, document.createTextNode(n.end ? `  ${ms(n.start, n.end)}` : ""));
    li.append(name, right);
    if (span0 && n.start) {
      const bar = document.createElement("div");
      bar.className = "bar";
      const seg = document.createElement("span");
      const total = Math.max(1, spanEnd - span0);
      seg.style.left = `${(100 * (n.start - span0)) / total}%`;
      seg.style.width = `${Math.max(1, (100 * ((n.end || spanEnd) - n.start)) / total)}%`;
      bar.append(seg);
      li.append(bar);
    }
    if (n.error) { const e = document.createElement("div"); e.className = "err"; e.textContent = n.error; li.append(e); }
    if (n.output !== undefined) {
      const pre = document.createElement("pre");
      pre.textContent = outputPreview(n.output);
      li.append(pre);
    }
    list.append(li);
  }
}

function notice(text) { const el = $("notice"); el.textContent = text; el.hidden = false; }

function showLogin(message) {
  setConn("offline");
  $("app").hidden = true;
  $("login").hidden = false;
  const err = $("login-error");
  err.hidden = !message;
  err.textContent = message || "";
}

$("login").onsubmit = (ev) => {
  ev.preventDefault();
  state.key = $("key").value.trim();
  sessionStorage.setItem("nodedrop.key", state.key);
  start();
};
$("run").onclick = () => send({ type: "run_example", api_key: state.key });
$("cancel").onclick = () => state.selected && send({ type: "cancel", execution_id: state.selected, api_key: state.key });
setInterval(() => send({ type: "list_executions", limit: 20 }), 5000);

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  try { state.example = await (await fetch("/api/example")).json(); } catch (e) { state.example = null; }
  connect();
}

// A key in the fragment (#key=...) never reaches server logs; keep it for this tab only.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  state.key = fragment.get("key");
  sessionStorage.setItem("nodedrop.key", state.key);
  history.replaceState(null, "", location.pathname);
}
if (state.key) start(); else showLogin("");
