// The executions list: filters, search by id, cursor pagination, live refresh.
import { executions, lower, workflowNames } from "./api.js";
import { badge, duration, el, since } from "./dom.js";

const PAGE_SIZE = 25;
const $ = (id) => document.getElementById(id);
// tokens[i] is the page token of page i (the first page has none).
const list = { tokens: [""], page: 0, timer: null, filters: {} };

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

async function load() {
  const [page, names] = await Promise.all([executions("ListExecutions", request()), workflowNames().catch(() => new Map())]);
  const rows = page.executions || [];
  list.tokens.length = list.page + 1;
  if (page.nextPageToken) list.tokens.push(page.nextPageToken);
  $("x-rows").replaceChildren(...rows.map((x) => row(x, names)));
  $("x-empty").hidden = rows.length > 0;
  $("x-page").textContent = `page ${list.page + 1}`;
  $("x-newer").disabled = list.page === 0;
  $("x-older").disabled = !page.nextPageToken;
}

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
  const refresh = () => load().catch((e) => notice(`${e.code}: ${e.message}`));
  clearInterval(list.timer);
  list.timer = setInterval(refresh, 3000);  // live: the shown page follows the store
  fillWorkflowFilter().catch(() => {});
  refresh();
  return () => clearInterval(list.timer);
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
