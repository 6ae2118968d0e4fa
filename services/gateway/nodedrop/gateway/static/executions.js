// The executions list: filters, search by id, cursor pagination, and live
// updates from the gateway's feed of the tenant's execution status events: a
// shown row changes status in place, a new execution (or one that now
// matches the filter) reads the page again. The list is polled, slowly, only
// while that feed is down (offline, reconnecting).
import { executions, isTerminal, lower, workflowNames } from "./api.js";
import { badge, duration, el, since } from "./dom.js";
import { onLive, watchExecutions } from "./live.js";

const PAGE_SIZE = 25;
const FALLBACK_POLL_MS = 10000;
const REWATCH_MS = 3000;
const $ = (id) => document.getElementById(id);
const STATUS_OF_EVENT = {
  EXECUTION_QUEUED: "queued", EXECUTION_STARTED: "running", EXECUTION_RETRYING: "retry_scheduled",
  EXECUTION_COMPLETED: "completed", EXECUTION_FAILED: "failed",
  EXECUTION_CANCELLED: "cancelled", EXECUTION_TIMED_OUT: "timed_out",
};
// Order of the statuses within an attempt: the store (written behind the
// events) can answer an older status than the feed already told.
const RANK = { queued: 0, running: 1, retry_scheduled: 2 };
const rank = (status) => (isTerminal(status) ? 3 : RANK[status] || 0);
const FORGET_AFTER = 2000;  // ids whose last event is remembered
// tokens[i] is the page token of page i (the first page has none).
const list = {
  tokens: [""], page: 0, timer: null, filters: {}, shown: false, live: false, notice: () => {},
  rows: new Map(), names: new Map(), latest: new Map(), reload: null, loading: null, again: false, rewatch: null,
};

function request() {
  const f = list.filters;
  const req = { pageSize: PAGE_SIZE, pageToken: list.tokens[list.page] };
  if (f.status) req.statuses = [`EXECUTION_STATUS_${f.status.toUpperCase()}`];
  if (f.workflow) req.workflowId = f.workflow;
  if (f.trigger) req.triggerKinds = [`TRIGGER_KIND_${f.trigger.toUpperCase()}`];
  if (f.after) req.createdAfter = new Date(f.after).toISOString();
  if (f.before) req.createdBefore = new Date(f.before).toISOString();
  return req;
}

function readFilters() {
  return {
    status: $("f-status").value, workflow: $("f-workflow").value, trigger: $("f-trigger").value,
    after: $("f-after").value, before: $("f-before").value,
  };
}

// What the feed told last, over the store's answer when that is behind it.
function overlay(x, always = false) {
  const told = list.latest.get(x.id);
  if (!told || (!always && rank(told.status) <= rank(lower(x.status)))) return x;
  return {
    ...x, status: told.status, attempt: Math.max(x.attempt || 0, told.attempt),
    startTime: told.startTime || x.startTime, endTime: isTerminal(told.status) ? told.endTime || x.endTime : undefined,
  };
}

async function fetchPage() {
  const asked = JSON.stringify(request());
  const [page, names] = await Promise.all([executions("ListExecutions", JSON.parse(asked)), workflowNames().catch(() => new Map())]);
  if (JSON.stringify(request()) !== asked) {
    // Another page or filter was chosen while this read ran: its rows must not
    // show under the new page's label (nor its next token land at the new
    // page's place); the read queued meanwhile shows that page.
    list.again = true;
    return;
  }
  const rows = (page.executions || []).map(overlay);
  list.tokens.length = list.page + 1;
  if (page.nextPageToken) list.tokens.push(page.nextPageToken);
  list.names = names;
  list.rows = new Map(rows.map((x) => [x.id, x]));
  $("x-rows").replaceChildren(...rows.map((x) => row(x, names)));
  $("x-empty").hidden = rows.length > 0;
  $("x-page").textContent = `page ${list.page + 1}`;
  $("x-newer").disabled = list.page === 0;
  $("x-older").disabled = !page.nextPageToken;
}

// One read at a time; a read asked for meanwhile runs once after it.
async function load() {
  if (list.loading) { list.again = true; return list.loading; }
  list.loading = fetchPage();
  try { await list.loading; } finally {
    list.loading = null;
    if (list.again) { list.again = false; scheduleReload(); }
  }
}

function scheduleReload() {
  if (list.reload || !list.shown) return;
  // Coalesces a burst of new executions into one read.
  list.reload = setTimeout(() => { list.reload = null; load().catch((e) => list.notice(`${e.code}: ${e.message}`)); }, 150);
}

function setLive(on, why = "") {
  list.live = on;
  const pill = $("x-live");
  pill.dataset.state = on ? "live" : "polling";
  pill.textContent = on ? "live" : "polling";
  pill.title = on ? "rows follow the execution events as they happen"
    : `every ${FALLBACK_POLL_MS / 1000} s until the live channel is back${why ? ` (${why})` : ""}`;
  clearInterval(list.timer);
  if (!on && list.shown) list.timer = setInterval(() => load().catch(() => {}), FALLBACK_POLL_MS);
}

function remember(e, status) {
  const told = list.latest.get(e.execution_id) || { attempt: 0 };
  list.latest.delete(e.execution_id);
  list.latest.set(e.execution_id, {
    status, attempt: Math.max(told.attempt, e.attempt || 0),
    startTime: status === "running" ? e.time : told.startTime, endTime: isTerminal(status) ? e.time : undefined,
  });
  if (list.latest.size > FORGET_AFTER) list.latest.delete(list.latest.keys().next().value);
}

function onStatusEvent(e) {
  const status = STATUS_OF_EVENT[e.event_type];
  if (!status) return;
  remember(e, status);
  const f = list.filters;
  const x = list.rows.get(e.execution_id);
  if (x) {
    // Events come in order and after what the row shows: the event wins.
    const now = overlay(x, true);
    list.rows.set(x.id, now);
    const tr = document.querySelector(`#x-rows tr[data-id="${CSS.escape(x.id)}"]`);
    if (tr) tr.replaceWith(row(now, list.names));
    // It left the filtered status: the page is read again.
    if (f.status && f.status !== status) scheduleReload();
  } else if (list.page === 0 && (!f.status || f.status === status) && (!f.workflow || f.workflow === e.workflow_id)) {
    scheduleReload();
  }
}

onLive((msg) => {
  if (!list.shown) return;
  if (msg.type === "watching_executions") {
    // The feed has no replay: what changed before it opened is read from the store.
    setLive(true);
    scheduleReload();
  } else if (msg.type === "unwatched_executions" && msg.code) {
    // The gateway lost the feed (events service restarting, a renewal that
    // came late): poll meanwhile and ask for it again.
    setLive(false, `${msg.code}: ${msg.message}`);
    clearTimeout(list.rewatch);
    list.rewatch = setTimeout(() => { if (list.shown) watchExecutions(true, true); }, REWATCH_MS);
  } else if (msg.type === "offline") {
    setLive(false);
  } else if (msg.type === "event") {
    onStatusEvent(msg);
  }
});

function row(x, names) {
  const wf = names.get(x.workflowId);
  const status = lower(x.status);
  const tr = el("tr", { class: "exec-row", "data-id": x.id, "data-status": status });
  tr.append(
    el("td", {}, el("a", { href: `#/executions/${encodeURIComponent(x.id)}`, class: "mono" }, x.id)),
    el("td", {}, wf ? wf.name : x.workflowId || "inline", el("span", { class: "muted" }, x.workflowVersion ? ` v${x.workflowVersion}` : "")),
    el("td", {}, badge(status)),
    el("td", {}, lower(x.triggerKind)),
    el("td", { title: x.startTime || x.createTime || "" }, since(x.startTime || x.createTime)),
    el("td", {}, duration(x.startTime, x.endTime)),
    el("td", {}, `${x.attempt}/${x.maxAttempts}`),
  );
  tr.onclick = (ev) => { if (ev.target.tagName !== "A") location.hash = `#/executions/${encodeURIComponent(x.id)}`; };
  return tr;
}

export async function fillWorkflowFilter() {
  const names = await workflowNames(true);
  const select = $("f-workflow");
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "all workflows"),
    ...[...names.values()].map((w) => el("option", { value: w.id }, w.name)));
  select.value = current;
}

export function showExecutions(notice) {
  list.notice = notice;
  list.shown = true;
  setLive(false);
  watchExecutions(true);
  fillWorkflowFilter().catch(() => {});
  load().catch((e) => notice(`${e.code}: ${e.message}`));
  return () => {
    list.shown = false;
    clearInterval(list.timer);
    clearTimeout(list.reload);
    clearTimeout(list.rewatch);
    list.reload = null;
    watchExecutions(false);
  };
}

export function bindExecutions(notice) {
  const reload = () => load().catch((e) => notice(`${e.code}: ${e.message}`));
  $("x-filters").onsubmit = (ev) => {
    ev.preventDefault();
    list.filters = readFilters();
    list.tokens = [""];
    list.page = 0;
    reload();
  };
  for (const id of ["f-status", "f-workflow", "f-trigger", "f-after", "f-before"]) $(id).onchange = () => $("x-filters").requestSubmit();
  $("x-newer").onclick = () => { if (list.page > 0) { list.page -= 1; reload(); } };
  $("x-older").onclick = () => { if (list.tokens[list.page + 1] !== undefined) { list.page += 1; reload(); } };
  $("x-search").onsubmit = (ev) => {
    ev.preventDefault();
    const id = $("x-id").value.trim();
    if (id) location.hash = `#/executions/${encodeURIComponent(id)}`;
  };
}
