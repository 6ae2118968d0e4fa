// The live channel: one WebSocket to the gateway (protocol in docs/events.md).
// A ticket only watches, and expires: the socket opens with one, renews it
// before it runs out, and commands that act carry the key itself.
import { auth } from "./api.js";

export class Refused extends Error {}

const listeners = new Set();
const state = { ws: null, retry: 0, renewTimer: null, onState: () => {}, onRefused: () => {}, watched: new Map(), feed: false };

export function onLive(fn) { listeners.add(fn); return () => listeners.delete(fn); }
const tell = (msg) => { for (const fn of listeners) fn(msg); };
export function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

// Watch one execution's events after `after`; resumed after a reconnect.
export function watch(id, after) { state.watched.set(id, after); send({ type: "subscribe", execution_id: id, after_sequence: after }); }
export function unwatch(id) { if (state.watched.delete(id)) send({ type: "unsubscribe", execution_id: id }); }
export function seen(id, sequence) { if (state.watched.has(id)) state.watched.set(id, sequence); }
// Every execution's status events of the tenant (the executions list);
// resumed after a reconnect, where the gateway answers watching_executions again.
export function watchExecutions(on, again = false) {
  if (state.feed === on && !again) return;
  state.feed = on;
  send({ type: on ? "watch_executions" : "unwatch_executions" });
}

async function fetchTicket() {
  const r = await fetch("/api/ticket", { headers: { Authorization: `Bearer ${auth.key}` } });
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
  const delay = Math.max(1000, ((expiresInS || 60) * 1000 * 2) / 3);
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
    if (e instanceof Refused) { ws.close(); state.onRefused(e.message); return; }
    clearTimeout(state.renewTimer);
    state.renewTimer = setTimeout(() => renew(ws), 2000);
  }
}

export function connect(onState, onRefused) {
  state.onState = onState;
  state.onRefused = onRefused;
  open();
}

async function open() {
  state.onState("connecting");
  let ticket;
  try {
    ticket = await fetchTicket();
  } catch (e) {
    if (e instanceof Refused) { state.onRefused(e.message); return; }
    reconnectLater();
    return;
  }
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?ticket=${encodeURIComponent(ticket.ticket)}`);
  state.ws = ws;
  scheduleRenewal(ws, ticket.expires_in_s);
  ws.onopen = () => {
    state.retry = 0;
    state.onState("online");
    for (const [id, after] of state.watched) send({ type: "subscribe", execution_id: id, after_sequence: after });
    if (state.feed) send({ type: "watch_executions" });
  };
  ws.onmessage = (m) => tell(JSON.parse(m.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    clearTimeout(state.renewTimer);
    state.onState("offline");
    // Not a gateway message: tells the pages that live messages stopped.
    tell({ type: "offline" });
    reconnectLater();
  };
}

function reconnectLater() {
  setTimeout(open, Math.min(10000, 250 * 2 ** state.retry++));
}
