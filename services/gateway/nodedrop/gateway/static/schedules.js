// Schedules: list, pause, resume, trigger now (QueueAdminService).
import { admin, workflowNames } from "./api.js";
import { el, since } from "./dom.js";

const $ = (id) => document.getElementById(id);
let notice = () => {};

async function load() {
  const [page, names] = await Promise.all([admin("ListSchedules", {}), workflowNames().catch(() => new Map())]);
  const list = page.schedules || [];
  $("s-rows").replaceChildren(...list.map((s) => row(s, names)));
  $("s-empty").hidden = list.length > 0;
}

function button(label, run, cls = "ghost") {
  const b = el("button", { type: "button", class: `${cls} small`, "data-action": label.toLowerCase().replace(" ", "-") }, label);
  b.onclick = run;
  return b;
}

function row(s, names) {
  const wf = names.get(s.workflowId);
  const last = s.lastRun && s.lastRun.executionId;
  return el("tr", { class: "schedule-row", "data-id": s.id, "data-paused": String(Boolean(s.paused)) },
    el("td", { class: "mono" }, s.id),
    el("td", {}, wf ? wf.name : (s.workflow && s.workflow.name) || s.workflowId || "inline"),
    el("td", { class: "mono" }, `${s.cron} ${s.timezone || "UTC"}`),
    el("td", {}, el("span", { class: "badge", "data-status": s.paused ? "cancelled" : "running" }, s.paused ? "paused" : "active")),
    el("td", {}, s.paused ? "" : since(s.nextFireTime)),
    el("td", {}, last ? el("a", { class: "mono", href: `#/executions/${encodeURIComponent(last)}` }, last) : ""),
    el("td", { class: "row-actions" },
      s.paused ? button("Resume", () => act("ResumeSchedule", s.id)) : button("Pause", () => act("PauseSchedule", s.id)),
      button("Trigger now", () => act("TriggerSchedule", s.id), "")));
}

async function act(method, scheduleId) {
  try {
    const r = await admin(method, { scheduleId });
    if (r.executionId) {
      $("s-result").replaceChildren("started ", el("a", { class: "mono", href: `#/executions/${encodeURIComponent(r.executionId)}` }, r.executionId));
    }
    await load();
  } catch (e) { notice(`${e.code}: ${e.message}`); }
}

export function showSchedules(tell) {
  notice = tell;
  $("s-result").replaceChildren();
  load().catch((e) => tell(`${e.code}: ${e.message}`));
  return () => {};
}

export function bindSchedules() {
  $("s-refresh").onclick = () => load().catch((e) => notice(`${e.code}: ${e.message}`));
}
