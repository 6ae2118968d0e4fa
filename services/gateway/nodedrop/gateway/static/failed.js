// The failed queue: executions that used every attempt. Inspect, retry one
// or all, purge one or all (QueueAdminService; needs an admin key).
import { admin, workflowNames } from "./api.js";
import { el, since } from "./dom.js";

const $ = (id) => document.getElementById(id);
const state = { tokens: [""], page: 0 };

async function load() {
  const [page, names] = await Promise.all([
    admin("ListFailedJobs", { pageSize: 50, pageToken: state.tokens[state.page] }),
    workflowNames().catch(() => new Map()),
  ]);
  const jobs = page.jobs || [];
  state.tokens.length = state.page + 1;
  if (page.nextPageToken) state.tokens.push(page.nextPageToken);
  $("q-rows").replaceChildren(...jobs.map((j) => row(j, names)));
  $("q-empty").hidden = jobs.length > 0;
  $("q-newer").disabled = state.page === 0;
  $("q-older").disabled = !page.nextPageToken;
  $("q-retry-all").disabled = $("q-purge-all").disabled = jobs.length === 0;
}

function action(label, run, cls = "ghost") {
  const b = el("button", { type: "button", class: `${cls} small` }, label);
  b.onclick = run;
  return b;
}

function row(j, names) {
  const wf = names.get(j.workflowId);
  return el("tr", { class: "job-row", "data-id": j.executionId },
    el("td", {}, el("a", { class: "mono", href: `#/executions/${encodeURIComponent(j.executionId)}` }, j.executionId)),
    el("td", {}, wf ? wf.name : j.workflowId || "inline"),
    el("td", {}, j.nodeId || ""),
    el("td", { class: "reason" }, j.reason || ""),
    el("td", {}, String(j.attempts)),
    el("td", {}, since(j.failTime)),
    el("td", { class: "row-actions" },
      action("Retry", () => act("RetryFailedJobs", { executionIds: [j.executionId] }, "retried")),
      action("Purge", () => act("PurgeFailedJobs", { executionIds: [j.executionId] }, "purged"), "danger")));
}

let notice = () => {};

async function act(method, request, field) {
  try {
    const r = await admin(method, request);
    $("q-result").textContent = `${field} ${r[field]}`;
    await load();
  } catch (e) { notice(`${e.code}: ${e.message}`); }
}

export function showFailed(tell) {
  notice = tell;
  state.tokens = [""];
  state.page = 0;
  $("q-result").textContent = "";
  $("q-purge-all").dataset.armed = "";
  $("q-purge-all").textContent = "Purge all";
  load().catch((e) => tell(`${e.code}: ${e.message}`));
  return () => {};
}

export function bindFailed() {
  const reload = () => load().catch((e) => notice(`${e.code}: ${e.message}`));
  $("q-refresh").onclick = reload;
  $("q-newer").onclick = () => { if (state.page > 0) { state.page -= 1; reload(); } };
  $("q-older").onclick = () => { if (state.tokens[state.page + 1] !== undefined) { state.page += 1; reload(); } };
  $("q-retry-all").onclick = () => act("RetryFailedJobs", { all: true }, "retried");
  // Purging everything cannot be undone: the first click arms, the second purges.
  $("q-purge-all").onclick = () => {
    const b = $("q-purge-all");
    if (!b.dataset.armed) { b.dataset.armed = "1"; b.textContent = "Click again to purge all"; return; }
    b.dataset.armed = "";
    b.textContent = "Purge all";
    act("PurgeFailedJobs", { all: true }, "purged");
  };
}
