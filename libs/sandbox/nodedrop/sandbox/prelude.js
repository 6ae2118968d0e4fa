// The JavaScript every run's fresh context evaluates before the user's code
// (nodedrop.sandbox.child). Its value is the one function the runner calls:
// no global names it, so user code cannot reach or replace it.
//
// It keeps its own references to JSON and Array.isArray taken before any user
// code exists, builds the globals of docs/workflows.md ("Code") from the run's
// data, runs the user's function in the run's mode and leaves one JSON text
// (items and console lines) or the error for the runner to read.
//
// Every context compiles this text again, and QuickJS's compiler costs about
// as much per token as the rest of a small run: keep it short.
(() => {
  'use strict';
  const parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray,
    keysOf = Object.keys, has = Object.prototype.hasOwnProperty;
  const logs = [];
  let logBytes = 0, dropped = 0, outcome = null;
  const show = (v) => {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  };
  // Errors of the prelude's own making carry no stack: a position would point
  // into this text, not the user's.
  const fail = (message) => { const e = new TypeError(message); e.stack = ''; return e; };
  const view = (all, item) => ({
    all: () => all, first: () => all[0], last: () => all[all.length - 1], item: item,
    json: all.length ? all[0].json : undefined, isExecuted: true,
  });
  const run = async (fn, dataText, each, maxLines, maxBytes) => {
    if (typeof fn !== 'function') throw fail('the code must not close the function it runs in');
    const out = (level) => (...args) => {
      let line = '';
      for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + show(args[i]);
      if (logs.length >= maxLines || logBytes + line.length > maxBytes) dropped++;
      else { logs.push({ level: level, line: line }); logBytes += line.length; }
    };
    const console = Object.freeze({ log: out('log'), info: out('info'), warn: out('warn'),
      error: out('error'), debug: out('debug') });
    const data = parse(dataText), list = data.items, nodes = data.nodes;
    const wrapped = (l) => l.map((j) => ({ json: j }));
    const items = wrapped(list), $node = {};
    let current;
    const $ = (id) => {
      if (!has.call(nodes, id))
        throw fail('no output of node "' + id + '": it has not run, or the code does not spell its id out');
      const all = wrapped(nodes[id]);
      return view(all, all[current]);
    };
    for (const id of keysOf(nodes)) $node[id] = view(wrapped(nodes[id]));
    // What the code returned, as returned: the runner's host makes items of
    // them (index: for each returned item, the item it was returned for).
    const result = [], index = [], input = view(items);
    if (!each) {
      const r = await fn(input, undefined, items, $, $node, data.trigger, data.execution, undefined, console);
      if (r === undefined || r === null) throw fail('the code returned nothing: return an array of items (or [])');
      return { items: isArray(r) ? r : [r] };
    }
    for (let i = 0; i < list.length; i++) {
      current = i;
      const r = await fn({ ...input, item: items[i] }, list[i], items, $, $node, data.trigger, data.execution, i, console);
      if (r === undefined || r === null) continue;
      if (isArray(r)) throw fail('in runOnceForEachItem the code returns one item or nothing, not an array (item ' + i + ')');
      result.push(r);
      index.push(i);
    }
    return { items: result, index: index };
  };
  // nd(fn, data, each, maxLines, maxBytes) starts the run; nd() is then the
  // result as JSON text, or '' while the run's promise has not settled.
  return (fn, dataText, each, maxLines, maxBytes) => {
    if (fn !== undefined) {
      run(fn, dataText, each, maxLines, maxBytes).then(
        (out) => { outcome = out; }, (e) => { outcome = { error: e }; });
      return '';
    }
    if (outcome === null) return '';
    if (!('error' in outcome))
      return stringify({ items: outcome.items, index: outcome.index, logs: logs, dropped: dropped });
    const e = outcome.error, obj = e !== null && typeof e === 'object';
    // QuickJS rejects with null when it cannot even allocate the error of an
    // out-of-memory inside an async function.
    return stringify({ error: {
      name: e === null ? 'null' : obj && typeof e.name === 'string' ? e.name : 'Error',
      message: e === null ? '' : obj && 'message' in e ? String(e.message) : show(e),
      stack: obj && typeof e.stack === 'string' ? e.stack : '' } });
  };
})()
