// Stats from one GetExecutionStats call per refresh: executions per minute
// by outcome (its buckets of a minute), failure rate and p50/p95 durations
// per workflow and per node.
import { executions, lower, workflowNames } from "./api.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const MINUTES = 15;
const OUTCOMES = ["completed", "failed", "cancelled", "timed_out", "other"];
let notice = () => {};

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

const seconds = (d) => (d ? parseFloat(String(d).replace(/s$/, "")) : 0);
const fmt = (s) => (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);

function outcomeCounts(statusCounts) {
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
  for (const c of statusCounts) {
    const s = lower(c.status);
    counts[OUTCOMES.includes(s) ? s : "other"] += Number(c.count);
  }
  return counts;
}

function perMinuteChart(buckets) {
  const W = 720, H = 180, pad = 28, bw = (W - pad) / buckets.length;
  const max = Math.max(1, ...buckets.map((b) => OUTCOMES.reduce((n, o) => n + b.counts[o], 0)));
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H + 20}`, width: W, height: H + 20, "data-chart": "per-minute" });
  root.append(svg("text", { x: 0, y: 10, class: "axis" }, String(max)), svg("line", { x1: pad, x2: W, y1: H, y2: H, class: "axis-line" }));
  buckets.forEach((b, i) => {
    let y = H;
    for (const o of OUTCOMES) {
      const h = ((H - 14) * b.counts[o]) / max;
      if (!h) continue;
      y -= h;
      root.append(svg("rect", { x: pad + i * bw + 2, y, width: bw - 4, height: h, class: `bar-${o}`, "data-minute": b.label, "data-outcome": o, "data-count": String(b.counts[o]) }));
    }
    if (i % 3 === 0) root.append(svg("text", { x: pad + i * bw, y: H + 14, class: "axis" }, b.label));
  });
  return root;
}

function legend() {
  return el("div", { class: "legend" }, ...OUTCOMES.map((o) => el("span", { class: `key bar-${o}` }, o)));
}

function meter(fraction, cls) {
  const m = el("span", { class: `meter ${cls}` });
  const fill = el("span", {});
  // Through the CSSOM: the console's CSP refuses style attributes.
  fill.style.width = `${Math.min(100, Math.max(0, fraction * 100)).toFixed(1)}%`;
  m.append(fill);
  return m;
}

function workflowTable(stats, names) {
  const rows = [];
  const all = stats.workflows || [];
  const longest = Math.max(0.001, ...all.flatMap((w) => [seconds(w.p95Duration), ...(w.nodes || []).map((n) => seconds(n.p95Duration))]));
  for (const w of all) {
    const name = (names.get(w.workflowId) || {}).name || w.workflowId || "inline";
    rows.push(el("tr", { class: "stat-workflow", "data-id": w.workflowId },
      el("td", {}, el("strong", {}, name)), el("td", {}, String(w.total)),
      el("td", {}, meter(w.failureRate, "bad"), ` ${(100 * w.failureRate).toFixed(1)}%`),
      el("td", {}, meter(seconds(w.p50Duration) / longest, "p50"), ` ${fmt(seconds(w.p50Duration))}`),
      el("td", {}, meter(seconds(w.p95Duration) / longest, "p95"), ` ${fmt(seconds(w.p95Duration))}`)));
    for (const n of w.nodes || []) {
      rows.push(el("tr", { class: "stat-node", "data-node": n.nodeId },
        el("td", { class: "indent" }, n.nodeId), el("td", {}, String(n.runs)),
        el("td", {}, meter(n.failureRate, "bad"), ` ${(100 * n.failureRate).toFixed(1)}%`),
        el("td", {}, meter(seconds(n.p50Duration) / longest, "p50"), ` ${fmt(seconds(n.p50Duration))}`),
        el("td", {}, meter(seconds(n.p95Duration) / longest, "p95"), ` ${fmt(seconds(n.p95Duration))}`)));
    }
  }
  return rows;
}

async function load() {
  const end = new Date(Math.ceil(Date.now() / 60000) * 60000);
  const from = new Date(end.getTime() - MINUTES * 60000);
  const [whole, names] = await Promise.all([
    executions("GetExecutionStats", { startTime: from.toISOString(), endTime: end.toISOString(), bucketWidth: "60s" }),
    workflowNames().catch(() => new Map()),
  ]);
  const buckets = (whole.buckets || []).map((b) => ({
    label: new Date(b.startTime).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    counts: outcomeCounts(b.statusCounts || []),
  }));
  const total = outcomeCounts((whole.workflows || []).flatMap((w) => w.statusCounts || []));
  const sum = OUTCOMES.reduce((n, o) => n + total[o], 0);
  const finished = total.completed + total.failed + total.timed_out;
  $("st-summary").replaceChildren(
    el("span", { class: "figure", "data-figure": "total" }, el("strong", {}, String(sum)), " executions"),
    el("span", { class: "figure", "data-figure": "failed" }, el("strong", {}, String(total.failed + total.timed_out)), " failed"),
    el("span", { class: "figure", "data-figure": "failure-rate" }, el("strong", {}, finished ? `${((100 * (total.failed + total.timed_out)) / finished).toFixed(1)}%` : "–"), " failure rate"));
  $("st-chart").replaceChildren(perMinuteChart(buckets), legend());
  $("st-rows").replaceChildren(...workflowTable(whole, names));
}

export function showStats(tell) {
  notice = tell;
  load().catch((e) => tell(`${e.code}: ${e.message}`));
  return () => {};
}

export function bindStats() {
  $("st-refresh").onclick = () => load().catch((e) => notice(`${e.code}: ${e.message}`));
}
