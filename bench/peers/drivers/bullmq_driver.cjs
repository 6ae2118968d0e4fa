// BullMQ driver: the same scenarios and Redis keys as drivers/_common.py.
// Run with NODE_PATH=<.envs/bullmq/node_modules>, BENCH_REDIS_DB=<db>:
//   node bullmq_driver.cjs worker                  (the worker process)
//   node bullmq_driver.cjs SCENARIO --jobs N --timeout S [--listeners L]
// and prints one JSON object on the last line of stdout.
'use strict';
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const { Queue, Worker, FlowProducer, QueueEvents } = require('bullmq');
const IORedis = require('ioredis');

const DB = Number(process.env.BENCH_REDIS_DB);
const CONNECTION = { host: '127.0.0.1', port: Number(process.env.BENCH_REDIS_PORT || 6379), db: DB };
const QUEUE = 'bench';
const CONCURRENCY = 50;
const CHAIN_LENGTH = 5;
const DONE = 'bench:done';
const T_FIRST = 'bench:t_first';
const T_LAST = 'bench:t_last';
const LAT = 'bench:lat';

const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function args() {
  const out = { scenario: process.argv[2], jobs: 0, timeout: 60, listeners: 100 };
  for (let i = 3; i < process.argv.length; i += 2) {
    out[process.argv[i].replace(/^--/, '')] = Number(process.argv[i + 1]);
  }
  return out;
}

async function recordDone(redis, total) {
  const value = await redis.incr(DONE);
  if (value === 1) await redis.set(T_FIRST, String(now()));
  if (value === total) await redis.set(T_LAST, String(now()));
}

async function runWorker() {
  const redis = new IORedis(CONNECTION);
  const worker = new Worker(
    QUEUE,
    async (job) => {
      if (job.name === 'noop') return recordDone(redis, job.data.total);
      if (job.name === 'probe') return redis.rpush(LAT, String(now()));
      if (job.name === 'progress') {
        for (let i = 0; i < job.data.count; i += 1) {
          await job.updateProgress({ i, t: now() });
        }
        return null;
      }
      throw new Error(`unknown job ${job.name}`);
    },
    { connection: { ...CONNECTION, maxRetriesPerRequest: null }, concurrency: CONCURRENCY },
  );
  const stop = async () => {
    await worker.close();
    await redis.quit();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function startWorker() {
  // Own process group, so that its CPU time is read like the other drivers'.
  return spawn(process.execPath, [__filename, 'worker'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  });
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

// User + system CPU seconds of a process group, reaped children included
// (see drivers/_cpu.py).
function groupCpuS(pgid) {
  let ticks = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text;
    try {
      text = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = text.slice(text.lastIndexOf(')') + 1).trim().split(/\s+/);
    if (Number(fields[2]) !== pgid) continue;
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return ticks / TICK;
}

async function stopWorker(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// The Redis server's CPU seconds and its reads from client sockets (round
// trips, this harness's polls included): see _common.redis_counters.
async function redisCounters(redis) {
  const info = (await redis.info('cpu')) + (await redis.info('stats'));
  const field = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)[1]);
  return [field('used_cpu_user') + field('used_cpu_sys'), field('total_reads_processed')];
}

async function waitCount(redis, total, deadline, pid) {
  const progress = {
    count: 0, firstCount: 0, firstCpu: NaN, endCpu: NaN,
    firstRedis: NaN, endRedis: NaN, firstReads: NaN, endReads: NaN,
  };
  while (Date.now() < deadline) {
    progress.count = Number((await redis.get(DONE)) || 0);
    if (progress.count && Number.isNaN(progress.firstCpu)) {
      progress.firstCpu = groupCpuS(pid);
      [progress.firstRedis, progress.firstReads] = await redisCounters(redis);
      progress.firstCount = progress.count;
    }
    if (progress.count >= total) break;
    await sleep(5);
  }
  progress.endCpu = groupCpuS(pid);
  [progress.endRedis, progress.endReads] = await redisCounters(redis);
  return progress;
}

async function batch(total, enqueue, timeout) {
  const redis = new IORedis(CONNECTION);
  const t0 = now();
  await enqueue(total);
  const enqueueS = now() - t0;
  const tSpawn = now();
  const child = startWorker();
  let count;
  let progress;
  try {
    progress = await waitCount(redis, total, Date.now() + timeout * 1000, child.pid);
    count = progress.count;
  } finally {
    await stopWorker(child);
  }
  const tEnd = now();
  const tFirst = Number((await redis.get(T_FIRST)) || NaN);
  const tLast = Number((await redis.get(T_LAST)) || tEnd);
  await redis.quit();
  const completed = Math.min(count, total);
  const span = tLast - tFirst;
  const jobs = progress.count - progress.firstCount;
  const perJob = (start, end) => (jobs > 0 ? ((end - start) * 1e6) / jobs : null);
  return {
    jobs: total, completed, finished: count >= total, enqueue_s: enqueueS,
    span_s: span, wall_s: tLast - tSpawn,
    rate: span > 0 ? (completed - 1) / span : 0, rate_wall: completed / (tLast - tSpawn),
    cpu_us_per_job: perJob(progress.firstCpu, progress.endCpu),
    redis_cpu_us_per_job: perJob(progress.firstRedis, progress.endRedis),
    redis_round_trips_per_job: jobs > 0 ? (progress.endReads - progress.firstReads) / jobs : null,
  };
}

async function enqueueNoops(total) {
  const queue = new Queue(QUEUE, { connection: CONNECTION });
  for (let start = 0; start < total; start += 1000) {
    const n = Math.min(1000, total - start);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: 'noop', data: { total } })));
  }
  await queue.close();
}

async function enqueueChains(steps) {
  // A flow runs children before parents: five nested jobs form a chain.
  const flows = new FlowProducer({ connection: CONNECTION });
  const chain = () => {
    let node;
    for (let i = 0; i < CHAIN_LENGTH; i += 1) {
      node = { name: 'noop', queueName: QUEUE, data: { total: steps }, ...(node ? { children: [node] } : {}) };
    }
    return node;
  };
  const chains = steps / CHAIN_LENGTH;
  for (let start = 0; start < chains; start += 500) {
    const n = Math.min(500, chains - start);
    await flows.addBulk(Array.from({ length: n }, chain));
  }
  await flows.close();
}

async function latency(total, timeout) {
  const redis = new IORedis(CONNECTION);
  const queue = new Queue(QUEUE, { connection: CONNECTION });
  const child = startWorker();
  const samples = [];
  const deadline = Date.now() + timeout * 1000;
  try {
    for (let i = 0; i < 5; i += 1) {
      await queue.add('probe', {});
      if ((await redis.blpop(LAT, 30)) === null) throw new Error('worker did not start within 30 s');
    }
    for (let i = 0; i < total && Date.now() < deadline; i += 1) {
      const tEnq = now();
      await queue.add('probe', {});
      const got = await redis.blpop(LAT, 10);
      if (got === null) throw new Error('probe job not started within 10 s');
      samples.push((Number(got[1]) - tEnq) * 1000);
    }
  } finally {
    await stopWorker(child);
    await queue.close();
    await redis.quit();
  }
  return { jobs: total, completed: samples.length, finished: samples.length === total, latencies_ms: samples };
}

async function events(count, listeners, timeout) {
  // One job emits `count` progress events; every QueueEvents listener (its own
  // Redis connection, as in an app with one per socket) must see them all.
  const received = new Array(listeners).fill(0);
  const latencies = [];
  let tFirstEmit = Infinity;
  let tLastDelivery = 0;
  const subs = [];
  for (let l = 0; l < listeners; l += 1) {
    const qe = new QueueEvents(QUEUE, { connection: CONNECTION });
    qe.on('progress', ({ data }) => {
      const t = now();
      received[l] += 1;
      latencies.push((t - data.t) * 1000);
      if (data.t < tFirstEmit) tFirstEmit = data.t;
      tLastDelivery = t;
    });
    subs.push(qe);
  }
  await Promise.all(subs.map((qe) => qe.waitUntilReady()));
  const child = startWorker();
  const queue = new Queue(QUEUE, { connection: CONNECTION });
  const expected = count * listeners;
  const deadline = Date.now() + timeout * 1000;
  try {
    await sleep(300); // listeners' first XREAD is in place before the job runs
    await queue.add('progress', { count });
    while (latencies.length < expected && Date.now() < deadline) await sleep(5);
  } finally {
    await stopWorker(child);
    await queue.close();
    await Promise.all(subs.map((qe) => qe.close()));
  }
  return {
    jobs: expected, completed: latencies.length, finished: latencies.length === expected,
    listeners, events: count, latencies_ms: latencies,
    deliveries_per_s: latencies.length ? latencies.length / (tLastDelivery - tFirstEmit) : 0,
  };
}

async function main() {
  const a = args();
  let result;
  if (a.scenario === 'worker') return runWorker();
  if (a.scenario === 'throughput') result = await batch(a.jobs, enqueueNoops, a.timeout);
  else if (a.scenario === 'chain') result = await batch(a.jobs * CHAIN_LENGTH, enqueueChains, a.timeout);
  else if (a.scenario === 'latency') result = await latency(a.jobs, a.timeout);
  else if (a.scenario === 'events') result = await events(a.jobs, a.listeners, a.timeout);
  else throw new Error(`unknown scenario ${a.scenario}`);
  // Exit only once the line is flushed: a pipe write is asynchronous in Node.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
