// The JavaScript every run's fresh context evaluates before the user's code
// (nodedrop.sandbox.child).
//
// It keeps its own references to JSON and Array.isArray taken before any user
// code exists, builds the globals of docs/workflows.md ("Code") from the run's
// data, runs the user's function in the run's mode and leaves one JSON text
// (items and console lines) or the error for the runner to read.
globalThis.__nd = (function () {
  'use strict';
  const parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray;
  const keysOf = Object.keys, freeze = Object.freeze;
  const logs = [];
  let logBytes = 0, dropped = 0, outcome = null;

  function show(v) {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? String(v) : s; }
    catch (e) { return String(v); }
  }
  function makeConsole(maxLines, maxBytes) {
    const out = (level) => function (...args) {
      let line = '';
      for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + show(args[i]);
      if (logs.length >= maxLines || logBytes + line.length > maxBytes) { dropped++; return; }
      logs.push({ level: level, line: line });
      logBytes += line.length;
    };
    return freeze({ log: out('log'), info: out('info'), warn: out('warn'),
                    error: out('error'), debug: out('debug') });
  }
  // Errors of the prelude's own making carry no stack: a position would point
  // into this text, not the user's.
  function fail(message) { const e = new TypeError(message); e.stack = ''; return e; }
  function wrapped(list) { return list.map((j) => ({ json: j })); }
  function view(list, index) {
    const all = wrapped(list);
    return {
      all: () => all,
      first: () => all[0],
      last: () => all[all.length - 1],
      item: index === undefined ? undefined : all[index],
      json: all.length ? all[0].json : undefined,
      isExecuted: true,
    };
  }
  function toItem(v, where) {
    if (v === null || typeof v !== 'object' || isArray(v))
      throw fail(where + ' is not an object (an item is {...} or {json: {...}})');
    if ('json' in v && keysOf(v).every((k) => k === 'json' || k === 'binary' || k === 'pairedItem')) {
      const j = v.json;
      if (j === null || typeof j !== 'object' || isArray(j))
        throw fail(where + '.json is not an object');
      return j;
    }
    return v;
  }
  async function run(fn, dataText, mode, maxLines, maxBytes) {
    if (typeof fn !== 'function') throw fail('the code must not close the function it runs in');
    const data = parse(dataText);
    const console = makeConsole(maxLines, maxBytes);
    const list = data.items;
    const items = wrapped(list);
    const nodes = data.nodes;
    const $ = (id) => {
      if (!Object.prototype.hasOwnProperty.call(nodes, id))
        throw fail('no output of node "' + id + '": it has not run, or the code does not spell its id out');
      return view(nodes[id], current);
    };
    const $node = {};
    for (const id of keysOf(nodes)) $node[id] = view(nodes[id]);
    let current;
    const out = [];
    if (mode === 'runOnceForEachItem') {
      for (let i = 0; i < list.length; i++) {
        current = i;
        const $input = { all: () => items, first: () => items[0], last: () => items[items.length - 1], item: items[i] };
        const r = await fn($input, list[i], items, $, $node, data.trigger, data.execution, i, console);
        if (r === undefined || r === null) continue;
        if (isArray(r)) throw fail('in runOnceForEachItem the code returns one item or nothing, not an array (item ' + i + ')');
        out.push(toItem(r, 'the item returned for item ' + i));
      }
    } else {
      const $input = { all: () => items, first: () => items[0], last: () => items[items.length - 1], item: undefined };
      const r = await fn($input, undefined, items, $, $node, data.trigger, data.execution, undefined, console);
      if (r === undefined || r === null) throw fail('the code returned nothing: return an array of items (or [])');
      const rs = isArray(r) ? r : [r];
      for (let i = 0; i < rs.length; i++) out.push(toItem(rs[i], 'item ' + i));
    }
    return out;
  }
  return freeze({
    start(fn, dataText, mode, maxLines, maxBytes) {
      run(fn, dataText, mode, maxLines, maxBytes).then(
        (out) => { outcome = { ok: true, out: out }; },
        (e) => { outcome = { ok: false, error: e }; });
    },
    settled() { return outcome !== null; },
    // The result as JSON text; '' while the run's promise has not settled.
    finish() {
      if (outcome === null) return '';
      if (outcome.ok) return stringify({ items: outcome.out, logs: logs, dropped: dropped });
      const e = outcome.error;
      // QuickJS rejects with null when it cannot even allocate the error of
      // an out-of-memory inside an async function.
      if (e === null) return stringify({ error: { name: 'null', message: '', stack: '' }, logs: logs, dropped: dropped });
      const name = (e && typeof e === 'object' && typeof e.name === 'string') ? e.name : 'Error';
      const message = (e && typeof e === 'object' && 'message' in e) ? String(e.message) : show(e);
      const stack = (e && typeof e === 'object' && typeof e.stack === 'string') ? e.stack : '';
      return stringify({ error: { name: name, message: message, stack: stack }, logs: logs, dropped: dropped });
    },
  });
})();
