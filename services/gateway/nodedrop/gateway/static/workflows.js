// Workflows: versions, activate, deactivate, run with input.
import { executions, workflowNames, workflows } from "./api.js";
import { el, since } from "./dom.js";

const $ = (id) => document.getElementById(id);
let notice = () => {};
let openId = "";

async function load() {
  const names = await workflowNames(true);
  const list = [...names.values()];
  $("w-rows").replaceChildren(...list.map(row));
  $("w-empty").hidden = list.length > 0;
  if (openId && names.has(openId)) await open(names.get(openId));
}

function row(w) {
  const tr = el("tr", { class: "workflow-row", "data-id": w.id },
    el("td", {}, el("a", { href: "#/workflows", class: "wf-open" }, w.name)),
    el("td", { class: "mono" }, w.id),
    el("td", {}, `v${w.version}`),
    el("td", {}, w.activeVersion ? el("span", { class: "badge", "data-status": "completed" }, `active v${w.activeVersion}`) : el("span", { class: "muted" }, "inactive")),
    el("td", {}, since(w.updateTime)));
  tr.querySelector("a").onclick = (ev) => { ev.preventDefault(); open(w).catch((e) => notice(`${e.code}: ${e.message}`)); };
  return tr;
}

async function open(w) {
  openId = w.id;
  const versions = (await workflows("ListWorkflowVersions", { workflowId: w.id, pageSize: 50 })).versions || [];
  $("w-detail").hidden = false;
  $("w-name").textContent = `${w.name} · ${w.id}`;
  $("w-versions").replaceChildren(...versions.map((v) => el("tr", { class: "version-row", "data-version": String(v.version) },
    el("td", {}, `v${v.version}`),
    el("td", {}, `${(v.nodes || []).length} nodes`),
    el("td", {}, since(v.createTime)),
    el("td", {}, v.version === w.activeVersion ? el("span", { class: "badge", "data-status": "completed" }, "active") : ""),
    el("td", { class: "row-actions" }, activateButton(w, v.version)))));
  $("w-deactivate").disabled = !w.activeVersion;
  document.querySelectorAll(".workflow-row").forEach((r) => r.classList.toggle("selected", r.dataset.id === w.id));
}

function activateButton(w, version) {
  const b = el("button", { type: "button", class: "ghost small", "data-action": "activate" }, "Activate");
  b.onclick = async () => {
    try {
      await workflows("ActivateWorkflow", { workflowId: w.id, version });
      await load();
    } catch (e) { notice(`${e.code}: ${e.message}`); }
  };
  return b;
}

export function showWorkflows(tell) {
  notice = tell;
  $("w-detail").hidden = !openId;
  load().catch((e) => tell(`${e.code}: ${e.message}`));
  return () => {};
}

export function bindWorkflows() {
  $("w-refresh").onclick = () => load().catch((e) => notice(`${e.code}: ${e.message}`));
  $("w-deactivate").onclick = async () => {
    try {
      await workflows("DeactivateWorkflow", { workflowId: openId });
      await load();
    } catch (e) { notice(`${e.code}: ${e.message}`); }
  };
  $("w-run").onsubmit = async (ev) => {
    ev.preventDefault();
    const text = $("w-input").value.trim();
    let input = {};
    try {
      input = text ? JSON.parse(text) : {};
    } catch (e) {
      notice(`invalid_argument: the input is not JSON (${e.message})`);
      return;
    }
    try {
      const r = await executions("ExecuteWorkflow", { workflowId: openId, triggerDataJson: JSON.stringify(input) });
      location.hash = `#/executions/${encodeURIComponent(r.executionId)}`;
    } catch (e) { notice(`${e.code}: ${e.message}`); }
  };
}

