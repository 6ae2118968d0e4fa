// The console's shell: the key of this tab, the live channel, and the pages
// (#/executions, #/executions/<id>, #/failed, #/schedules, #/workflows, #/stats).
import { auth } from "./api.js";
import { bindDetail, example, showDetail } from "./detail.js";
import { bindExecutions, showExecutions } from "./executions.js";
import { bindFailed, showFailed } from "./failed.js";
import { bindSchedules, showSchedules } from "./schedules.js";
import { bindStats, showStats } from "./stats.js";
import { bindWorkflows, showWorkflows } from "./workflows.js";
import { connect, onLive, send } from "./live.js";

const $ = (id) => document.getElementById(id);
const SHOW = {
  executions: showExecutions, failed: showFailed, schedules: showSchedules, workflows: showWorkflows, stats: showStats,
};
const PAGES = [...Object.keys(SHOW), "detail"];
let leave = () => {};

function notice(text) {
  const n = $("notice");
  n.textContent = text;
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, 8000);
}

function route() {
  leave();
  $("notice").hidden = true;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let page = SHOW[parts[0]] ? parts[0] : "executions";
  if (parts[0] === "executions" && parts[1]) page = "detail";
  for (const p of PAGES) $(`page-${p}`).hidden = p !== page;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("current", a.dataset.page === (page === "detail" ? "executions" : page)));
  leave = page === "detail" ? showDetail(parts[1], notice) : SHOW[page](notice);
}

function setConn(s) {
  const c = $("conn");
  c.dataset.state = s;
  c.textContent = s;
  $("run").disabled = s !== "online";
}

function showLogin(message) {
  setConn("offline");
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

onLive((msg) => {
  if (msg.type === "started") {
    example.ids.add(msg.execution_id);
    location.hash = `#/executions/${encodeURIComponent(msg.execution_id)}`;
  } else if (msg.type === "error") notice(`${msg.code}: ${msg.message}`);
});

let started = false;
async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  if (started) return;
  started = true;
  try { example.graph = await (await fetch("/api/example")).json(); } catch (e) { example.graph = null; }
  connect(setConn, (message) => { started = false; showLogin(message); });
  window.addEventListener("hashchange", route);
  route();
}

$("login").onsubmit = (ev) => {
  ev.preventDefault();
  auth.key = $("key").value.trim();
  $("key").value = "";
  start();
};
$("logout").onclick = () => { auth.key = ""; location.reload(); };
$("run").onclick = () => send({ type: "run_example", api_key: auth.key });
bindExecutions(notice);
bindDetail(notice);
bindFailed();
bindSchedules();
bindWorkflows();
bindStats();

// A key in the fragment (#key=...) never reaches server logs; keep it for this tab only.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  auth.key = fragment.get("key");
  history.replaceState(null, "", `${location.pathname}#/executions`);
}
if (auth.key) start(); else showLogin("");
