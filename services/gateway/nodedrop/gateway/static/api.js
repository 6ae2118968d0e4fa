// The HTTP/JSON API (docs/api.md): Connect JSON with the key of this tab.
// The key lives in sessionStorage only: never in a URL, never in a log.

const KEY = "nodedrop.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) { if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY); },
};

async function answer(r) {
  const text = await r.text();
  let body = {};
  try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { message: text }; }
  if (!r.ok) {
    const err = body.error || body;
    throw new ApiError(r.status, err.code || String(r.status), err.message || r.statusText);
  }
  return body;
}

// call("execution.v1.ExecutionService", "ListExecutions", {pageSize: 50})
export async function call(service, method, request = {}) {
  const r = await fetch(`/nodedrop.${service}/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${auth.key}` },
    body: JSON.stringify(request),
  });
  return answer(r);
}

export const executions = (method, request) => call("execution.v1.ExecutionService", method, request);
export const workflows = (method, request) => call("workflow.v1.WorkflowService", method, request);
export const admin = (method, request) => call("admin.v1.QueueAdminService", method, request);

// Workflow id -> {name, activeVersion}, fetched once per page load and on demand.
const names = new Map();
export async function workflowNames(refresh = false) {
  if (names.size && !refresh) return names;
  let pageToken = "";
  do {
    const page = await workflows("ListWorkflows", { pageSize: 200, pageToken });
    for (const w of page.workflows || []) names.set(w.id, w);
    pageToken = page.nextPageToken || "";
  } while (pageToken);
  return names;
}

export function lower(status) {
  return String(status || "").replace(/^(EXECUTION_STATUS_|NODE_RUN_STATUS_|TRIGGER_KIND_)/, "").toLowerCase();
}
const TERMINAL = ["completed", "failed", "cancelled", "timed_out"];
export const isTerminal = (s) => TERMINAL.includes(s);
