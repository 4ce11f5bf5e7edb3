#!/usr/bin/env node
// signaling_load.mjs - the telemed.v1 signaling load benchmark (run by hand,
// never by ctest). It starts the real telemed-server on 127.0.0.1, opens
// thousands of WSS patient connections from several client processes and
// prints a table of figures: server RSS per waiting patient, queue.position
// fan-out latency with N waiting, check-in -> offer latency under that load,
// messages per second and server CPU per message, plus a baseline measured
// in the same run (a plain Node TLS WebSocket echo server's RSS per
// connection) so the figures can be read on a noisy shared machine.
//
// One file, three roles (argv[2]):
//   (none)       the orchestrator: server, hospital, doctors, probes, figures;
//   --patients   a Node client worker process holding a shard of the patients;
//   --echo       the baseline echo server.
// The waiting patients are held by client processes: by default the C
// program wss_patients (tests/bench/wss_patients.c, built next to the
// server), which reads all its TLS WebSockets on one epoll thread for a few
// us of CPU per push; or, with --client node, by Node workers (--patients
// role), which cost ~30 us per push: on 2 cores one 5,000-push fan-out then
// costs the clients ~150 ms of CPU and the benchmark measures itself. Both
// speak the same commands (open, mark, collect, exit; Node over IPC, C as
// JSON lines on stdin/stdout). The baseline's raw connections (openRaw,
// closeRaw) always use Node workers.
// With --cluster N (or --nodes N --db pg) it runs N nodes on one PostgreSQL
// it starts, spreads the patients round-robin over them and prints each
// node's figures beside the whole (issue 19).
// Usage: --help; the meaning of every figure: tests/bench/README.md.
import { fork, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readFileSync, readdirSync, existsSync, createWriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const now = () => Number(process.hrtime.bigint()) / 1e6; // CLOCK_MONOTONIC ms, same in every process
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- options ---------------------------------------------------------

const USAGE = `usage: node tests/bench/signaling_load.mjs [options]

  --bin PATH              telemed-server (default $TELEMED_BIN, build-bench/, build/)
  --client auto|c|node    who holds the waiting patients (default auto: c when
                          wss_patients is found next to the server binary, else node)
  --client-bin PATH       the C client (default: wss_patients next to --bin)
  --client-sched batch|other  the C client's scheduling policy (default batch:
                          it does not preempt the server on each push it is
                          woken for; see tests/bench/wss_patients.c)
  --workers N             client processes (default 2 for c, 4 for node)
  --concurrency 24        connections each client process opens at once
  --steps 1000,2000,5000  waiting patients at which RSS is read
  --baseline-n 1000       connections to the Node echo baseline (0: skip)
  --idle-s 25             quiet seconds with all patients waiting
  --b-visits 30 --b-seconds 60 --b-hold-ms 400    phase B (1 doctor, N waiting)
  --probes 20 --probe-every-ms 200                phase B endo probes
  --c-visits 2000 --c-seconds 120 --c-probes 2    phase C (4 doctors, 2 depts)
  --settle-ms 2500        pause before each RSS reading
  --nodes N               run N telemed-server nodes (default 1); patients,
                          doctors and probes are spread round-robin over them
  --db sqlite|pg          the store: SQLite (default with one node) or a
                          PostgreSQL started for the run (tests/support/pg.sh)
  --cluster N             the same as --nodes N --db pg
  --phases B,C            which phases run (B, C, T; default B,C on one node,
                          B,T on several: C needs one node)
  --t-visits 600 --t-seconds 60 --t-probes 4 --t-doctors 2
                          phase T (throughput): each node its own department,
                          its doctors and closed-loop probe patients
  --json FILE             also write every figure as JSON
  --check                 exit 1 unless every node got its share of the
                          patients, their positions are exactly 1..n across
                          the nodes, every node's patients got position
                          pushes, each phase reached its count of visits and
                          every node served some of phase T's (the smoke test)
  --log FILE              also write the server's log lines to FILE

Raise the open-file limit first (ulimit -n 20000 or more). What every figure
means: tests/bench/README.md.`;

function parseArgs(argv) {
  const o = {
    steps: [1000, 2000, 5000], workers: 0, concurrency: 24, client: 'auto', clientBin: '',
    clientSched: 'batch',
    bin: process.env.TELEMED_BIN || '', baselineN: 1000,
    bVisits: 30, bSeconds: 60, bHoldMs: 400, probes: 20, probeEveryMs: 200,
    cVisits: 2000, cSeconds: 120, cProbes: 2, settleMs: 2500, idleS: 25, json: '', log: '',
    nodes: 1, db: '', phases: null, check: false, tVisits: 600, tSeconds: 60, tProbes: 4, tDoctors: 2,
  };
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].split('=', 2);
    const val = () => (inline !== undefined ? inline : argv[++i]);
    switch (k) {
      case '--steps': o.steps = val().split(',').filter((x) => x !== '').map(Number); break;
      case '--nodes': o.nodes = Number(val()); break;
      case '--db': o.db = val(); break;
      case '--cluster': o.nodes = Number(val()); o.db = 'pg'; break;
      case '--phases': o.phases = val().toUpperCase().split(',').filter(Boolean); break;
      case '--t-visits': o.tVisits = Number(val()); break;
      case '--t-seconds': o.tSeconds = Number(val()); break;
      case '--t-probes': o.tProbes = Number(val()); break;
      case '--t-doctors': o.tDoctors = Number(val()); break;
      case '--workers': o.workers = Number(val()); break;
      case '--client': o.client = val(); break;
      case '--client-bin': o.clientBin = val(); break;
      case '--client-sched': o.clientSched = val(); break;
      case '--concurrency': o.concurrency = Number(val()); break;
      case '--bin': o.bin = val(); break;
      case '--baseline-n': o.baselineN = Number(val()); break;
      case '--b-visits': o.bVisits = Number(val()); break;
      case '--b-seconds': o.bSeconds = Number(val()); break;
      case '--b-hold-ms': o.bHoldMs = Number(val()); break;
      case '--probes': o.probes = Number(val()); break;
      case '--probe-every-ms': o.probeEveryMs = Number(val()); break;
      case '--c-visits': o.cVisits = Number(val()); break;
      case '--c-seconds': o.cSeconds = Number(val()); break;
      case '--c-probes': o.cProbes = Number(val()); break;
      case '--settle-ms': o.settleMs = Number(val()); break;
      case '--idle-s': o.idleS = Number(val()); break;
      case '--json': o.json = val(); break;
      case '--check': o.check = true; break;
      case '--log': o.log = val(); break;
      case '-h': case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  if (!['auto', 'c', 'node'].includes(o.client)) throw new Error(`--client ${o.client}: auto, c or node`);
  if (!['batch', 'other'].includes(o.clientSched)) throw new Error(`--client-sched ${o.clientSched}: batch or other`);
  o.steps.sort((a, b) => a - b);
  if (!o.db) o.db = o.nodes > 1 ? 'pg' : 'sqlite';
  if (!o.phases) o.phases = o.nodes > 1 ? ['B', 'T'] : ['B', 'C'];
  if (!['sqlite', 'pg'].includes(o.db)) throw new Error(`--db ${o.db}: sqlite or pg`);
  if (!(o.nodes >= 1)) throw new Error('--nodes: 1 or more');
  if (o.nodes > 1 && o.db !== 'pg') throw new Error('several nodes share one store: --db pg');
  if (o.phases.some((x) => !['B', 'C', 'T'].includes(x))) throw new Error(`--phases ${o.phases}: B, C, T`);
  // Phase C's doctors of one department on two nodes would move pages
  // (session.move), which the bench's doctors do not follow.
  if (o.nodes > 1 && o.phases.includes('C')) throw new Error('phase C runs on one node: --phases B,T');
  return o;
}

// ---- statistics ------------------------------------------------------

// Latencies kept as counts per 0.1 ms bin: millions of pushes, small IPC.
class Hist {
  constructor() { this.bins = new Map(); this.n = 0; this.max = -Infinity; this.min = Infinity; }
  add(ms) {
    const b = Math.round(ms * 10);
    this.bins.set(b, (this.bins.get(b) || 0) + 1);
    this.n++;
    if (ms > this.max) this.max = ms;
    if (ms < this.min) this.min = ms;
  }
  merge(o) {
    for (const [b, c] of Object.entries(o.bins)) this.bins.set(Number(b), (this.bins.get(Number(b)) || 0) + c);
    this.n += o.n;
    this.max = Math.max(this.max, o.max);
    this.min = Math.min(this.min, o.min);
  }
  toJSON() { return { bins: Object.fromEntries(this.bins), n: this.n, max: this.max, min: this.min }; }
  pct(p) {
    if (!this.n) return NaN;
    const want = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (const b of [...this.bins.keys()].sort((x, y) => x - y)) {
      seen += this.bins.get(b);
      if (seen >= want) return b / 10;
    }
    return this.max;
  }
}

const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

// ---- /proc -----------------------------------------------------------

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

// Main thread's time runnable but waiting for a CPU, ms: on a shared
// machine this is how much other processes delayed the control loop.
function runqMs(pid) {
  const f = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ');
  return Number(f[1]) / 1e6;
}

function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" of comm: state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

// =====================================================================
// role: patient worker
// =====================================================================

async function patientWorker() {
  const { Client, mintToken } = await import('../integration/lib/server.mjs');
  const WebSocket = (await import('ws')).default;
  const patients = [];
  const raws = [];
  // Records of queue.position pushes while marked: dept index, removals k, arrival time.
  let rec = null;
  let estimateOnly = 0;
  let otherPushes = 0;
  let elu0 = null;
  let cpu0 = null;
  const DEPTS = ['cardio', 'endo'];

  class Patient extends Client {
    constructor(url, dept) {
      super(url);
      this.dept = dept;
      this.di = DEPTS.indexOf(dept);
      this.pos = 0;
      this.p0 = 0;
      this.pushed = false;
    }
    onMessage(m) {
      if (m.type === 'queue.position') {
        const t = now();
        this.pushed = true;
        if (m.position !== this.pos) {
          this.pos = m.position;
          if (rec && this.p0) {
            rec.di.push(this.di);
            rec.k.push(this.p0 - m.position);
            rec.t.push(t);
          }
        } else {
          estimateOnly++;
        }
        return;
      }
      if (m.re === undefined || m.re === null) {
        otherPushes++; // visit.state of the patients being served; not kept
        return;
      }
      super.onMessage(m);
    }
  }

  async function openOne(url, secret, sub, dept) {
    const c = new Patient(url, dept);
    await c.open();
    c.ws.on('error', () => {});
    await c.request('hello', { token: mintToken(secret, { sub, role: 'patient', name: `n-${sub}` }), ua: 'bench/1' }, 60000);
    const ci = await c.request('checkin', { dept }, 60000);
    // A push read in the same chunk as the answer ran before this line: the
    // answer's position is older, not the last one told.
    if (!c.pushed) c.pos = ci.position;
    patients.push(c);
  }

  async function pool(items, concurrency, fn) {
    let next = 0;
    let failed = 0;
    let firstError = '';
    const run = async () => {
      while (next < items.length) {
        const it = items[next++];
        try { await fn(it); } catch (e) { failed++; if (!firstError) firstError = String(e.message || e); }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, run));
    return { failed, firstError };
  }

  process.on('message', async (msg) => {
    const reply = (x) => process.send({ re: msg.seq, ...x });
    try {
      switch (msg.cmd) {
        case 'open': {
          const t0 = now();
          const r = await pool(msg.subs, msg.concurrency, (sub) => openOne(msg.url, msg.secret, sub, msg.dept));
          reply({ ...r, ms: now() - t0, held: patients.length });
          break;
        }
        case 'openRaw': {
          // Baseline: bare TLS WebSockets to the echo server, one echo each.
          const t0 = now();
          const r = await pool(Array.from({ length: msg.n }, (_, i) => i), msg.concurrency, () => new Promise((res, rej) => {
            const ws = new WebSocket(msg.url, { rejectUnauthorized: false });
            ws.on('error', rej);
            ws.on('open', () => ws.send('{"type":"ping","id":"1"}'));
            ws.once('message', () => { raws.push(ws); res(); });
          }));
          reply({ ...r, ms: now() - t0 });
          break;
        }
        case 'closeRaw':
          for (const ws of raws.splice(0)) ws.terminate();
          reply({});
          break;
        case 'mark':
          for (const p of patients) p.p0 = p.pos;
          rec = { di: [], k: [], t: [] };
          estimateOnly = 0;
          otherPushes = 0;
          elu0 = performance.eventLoopUtilization();
          cpu0 = process.cpuUsage();
          reply({});
          break;
        case 'collect': {
          // events[d] = sorted answer times (and send times) of the accepts that
          // removed a patient from department d; removal k is events[d][k-1].
          const hAns = new Hist();
          const hSent = new Hist();
          let unmatched = 0;
          const n = rec ? rec.t.length : 0;
          for (let i = 0; i < n; i++) {
            const ev = msg.events[rec.di[i]];
            const k = rec.k[i];
            if (!ev || k < 1 || k > ev.ans.length) { unmatched++; continue; }
            hAns.add(rec.t[i] - ev.ans[k - 1]);
            hSent.add(rec.t[i] - ev.sent[k - 1]);
          }
          const elu = performance.eventLoopUtilization(elu0);
          const cpu = process.cpuUsage(cpu0);
          reply({ hAns: hAns.toJSON(), hSent: hSent.toJSON(), positional: n, unmatched, estimateOnly,
            otherPushes, elu: elu.utilization, cpuMs: (cpu.user + cpu.system) / 1000 });
          rec = null;
          break;
        }
        case 'positions':
          reply({ positions: patients.map((p) => p.pos) });
          break;
        case 'exit':
          reply({});
          setTimeout(() => process.exit(0), 50);
          break;
        default:
          reply({ error: `unknown ${msg.cmd}` });
      }
    } catch (e) {
      reply({ error: String(e.stack || e) });
    }
  });
  process.send({ ready: true });
}

// =====================================================================
// role: baseline echo server (plain Node, TLS, ws)
// =====================================================================

async function echoServer(certPath, keyPath) {
  const https = await import('node:https');
  const { WebSocketServer } = await import('ws');
  const server = https.createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (d) => ws.send(d.toString())));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

// =====================================================================
// role: orchestrator
// =====================================================================

// Client processes holding patients: Node workers (kind 'node', IPC) or
// the C program (kind 'c', one JSON object a line on stdin and stdout).
class Workers {
  constructor(n, kind = 'node', bin = '', sched = 'batch') {
    this.procs = [];
    this.seq = 0;
    this.waiting = new Map();
    this.n = n;
    this.kind = kind;
    this.bin = bin;
    this.sched = sched;
  }
  async start() {
    const self = fileURLToPath(import.meta.url);
    for (let i = 0; i < this.n; i++) {
      const p = this.kind === 'c'
        ? spawn(this.bin, ['--sched', this.sched], { stdio: ['pipe', 'pipe', 'inherit'] })
        : fork(self, ['--patients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const onMessage = (m) => {
        const w = this.waiting.get(m.re);
        if (w) { this.waiting.delete(m.re); m.error ? w.rej(new Error(m.error)) : w.res(m); }
      };
      if (this.kind === 'c') {
        // Lines become 'message' events, so start() and call() read alike.
        createInterface({ input: p.stdout, crlfDelay: Infinity }).on('line', (l) => p.emit('message', JSON.parse(l)));
        p.stdin.on('error', () => {});
      }
      await new Promise((res, rej) => {
        p.once('message', (m) => (m.ready ? res() : rej(new Error('worker did not start'))));
        p.once('error', rej);
        p.once('exit', (code) => rej(new Error(`worker exited ${code}`)));
      });
      p.on('message', onMessage);
      p.on('exit', (code, sig) => {
        // A client that dies mid-command must fail the run, not hang it.
        for (const [seq, w] of this.waiting) { this.waiting.delete(seq); w.rej(new Error(`${this.kind} client exited ${code} ${sig}`)); }
      });
      this.procs.push(p);
    }
  }
  call(i, cmd, args = {}) {
    const seq = ++this.seq;
    return new Promise((res, rej) => {
      this.waiting.set(seq, { res, rej });
      if (this.kind === 'c') this.procs[i].stdin.write(`${JSON.stringify({ seq, cmd, ...args })}\n`);
      else this.procs[i].send({ seq, cmd, ...args });
    });
  }
  all(cmd, argsFor = () => ({})) {
    return Promise.all(this.procs.map((_, i) => this.call(i, cmd, argsFor(i))));
  }
  kill() { for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL'); }
}

async function metrics(srv) {
  const r = await srv.api('GET', '/metrics');
  const get = (name) => {
    const m = new RegExp(`^${name}\\{node="[^"]*"\\} (\\d+)`, 'm').exec(r.text);
    return m ? Number(m[1]) : NaN;
  };
  // Cumulative buckets of the server's own push-latency histogram: [le, count].
  const pushBuckets = [...r.text.matchAll(/^telemed_queue_push_seconds_bucket\{node="[^"]*",le="([^"]+)"\} (\d+)/gm)]
    .map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  return { conns: get('telemed_ws_connections'), msgsIn: get('telemed_ws_messages_in_total'),
    msgsOut: get('telemed_ws_messages_out_total'), errors: get('telemed_ws_errors_total'),
    rateLimited: get('telemed_ws_rate_limited_total'), pushBuckets };
}

// The server's histogram between two /metrics readings: count, share within
// 50 ms, and p50/p99 interpolated inside their bucket (so approximate).
function serverPushLatency(m0, m1) {
  const b = m1.pushBuckets.map(([le, c], i) => [le, c - (m0.pushBuckets[i] ? m0.pushBuckets[i][1] : 0)]);
  const n = b.length ? b[b.length - 1][1] : 0;
  const q = (p) => {
    const want = (p / 100) * n;
    let lo = 0;
    let below = 0;
    for (const [le, c] of b) {
      if (c >= want) {
        if (le === Infinity) return lo * 1000;
        return (lo + ((le - lo) * (want - below)) / Math.max(1, c - below)) * 1000;
      }
      lo = le; below = c;
    }
    return NaN;
  };
  const at50 = b.find(([le]) => le === 0.05);
  return { n, p50: q(50), p99: q(99), within50: n ? (100 * (at50 ? at50[1] : 0)) / n : NaN };
}

function snapshot(srv, m) {
  return { t: now(), cpu: cpuMs(srv.proc.pid), runq: runqMs(srv.proc.pid), msgs: m.msgsIn + m.msgsOut, msgsIn: m.msgsIn, msgsOut: m.msgsOut, m };
}

// PostgreSQL's CPU, ms: the postmaster, its live backends, and the backends
// it has reaped (cutime, cstime).
function pgCpuMs(postmaster) {
  const fields = (pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  };
  const f = fields(postmaster);
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === postmaster) continue;
    try {
      const c = fields(d);
      if (Number(c[1]) === postmaster) ticks += Number(c[11]) + Number(c[12]);
    } catch { /* gone meanwhile */ }
  }
  return (ticks * 1000) / CLK_TCK;
}

// Every node's counters at one instant, summed for the whole, each node's
// kept (nodes[]), and PostgreSQL's CPU (0 on SQLite).
async function snapshotAll(srvs, pgPid) {
  const nodes = [];
  for (const s of srvs) nodes.push(snapshot(s, await metrics(s)));
  const sum = (k) => nodes.reduce((a, x) => a + x[k], 0);
  const msum = (k) => nodes.reduce((a, x) => a + x.m[k], 0);
  const pushBuckets = nodes[0].m.pushBuckets.map(([le], i) =>
    [le, nodes.reduce((a, x) => a + (x.m.pushBuckets[i] ? x.m.pushBuckets[i][1] : 0), 0)]);
  return { t: now(), nodes, pgCpu: pgPid ? pgCpuMs(pgPid) : 0, cpu: sum('cpu'), runq: sum('runq'),
    msgs: sum('msgs'), msgsIn: sum('msgsIn'), msgsOut: sum('msgsOut'),
    m: { conns: msum('conns'), rateLimited: msum('rateLimited'), errors: msum('errors'), pushBuckets } };
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// A doctor (or a probe patient) whose pushes are handled as they arrive.
function makeActor(Client) {
  return class Actor extends Client {
    onMessage(m) {
      if ((m.re === undefined || m.re === null) && this.onPush) {
        this.onPush(m, now());
        return;
      }
      super.onMessage(m);
    }
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!o.bin) {
    for (const b of ['build-bench', 'build']) {
      if (existsSync(join(ROOT, b, 'telemed-server'))) { o.bin = join(ROOT, b, 'telemed-server'); break; }
    }
  }
  if (!o.bin || !existsSync(o.bin)) throw new Error('no telemed-server: pass --bin PATH or set TELEMED_BIN');
  process.env.TELEMED_BIN = o.bin;
  // The C client is looked for only beside the server, so that both come
  // from the same build.
  const cBin = o.clientBin || join(dirname(resolve(o.bin)), 'wss_patients');
  if (o.client === 'auto') o.client = existsSync(cBin) ? 'c' : 'node';
  if (o.client === 'c' && !existsSync(cBin)) throw new Error(`no C client at ${cBin}: build the wss_patients target or pass --client-bin or --client node`);
  o.clientBin = o.client === 'c' ? cBin : '';
  // Two C processes, not one: at 5,000 waiting one process reading 10,000
  // pushes back to back (phase C: two departments' fan-outs) lags ~30 ms at
  // p99; two read in parallel for ~15% more client CPU (measured 17:55 UTC).
  if (!o.workers) o.workers = o.client === 'c' ? 2 : 4;
  const { startServer, setupHospital, Client } = await import('../integration/lib/server.mjs');
  const { startPg } = await import('../integration/lib/pg.mjs');
  const Actor = makeActor(Client);
  const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
  const figures = { options: o, bin: o.bin, load0: loadavg() };
  const N = o.nodes;
  // Each node's patients are held by their own client processes, so the
  // clients' figures come per node too.
  if (N > 1) o.workers = Math.ceil(Math.max(o.workers, N) / N) * N;

  const logStats = { lines: 0, warn: 0, error: 0, lastProblems: [], takeovers: 0, released: 0 };
  const logFile = o.log ? createWriteStream(o.log) : null;
  // The harness keeps every log line and re-scans them all per chunk; at
  // thousands of lines that would load this process, so count instead.
  const countLog = (s) => {
    s.proc.stderr.removeAllListeners('data');
    s.proc.stdout.removeAllListeners('data');
    let partial = '';
    s.proc.stderr.on('data', (d) => {
      if (logFile) logFile.write(d);
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop();
      for (const l of lines) {
        logStats.lines++;
        // A node judged dead by the others (its heartbeat late): its
        // waiting visits are released and placed again.
        const t = /ev=cluster\.takeover .*visits=(\d+)/.exec(l);
        if (t) { logStats.takeovers++; logStats.released += Number(t[1]); }
        if (/level=(warn|error)/.test(l)) {
          logStats[/level=warn/.test(l) ? 'warn' : 'error']++;
          logStats.lastProblems.push(l);
          if (logStats.lastProblems.length > 5) logStats.lastProblems.shift();
        }
      }
    });
    s.proc.stdout.on('data', () => {});
  };

  const pg = o.db === 'pg' ? startPg() : null;
  const secret = randomBytes(16).toString('hex');
  // Every simulated patient comes from 127.0.0.1, so the per-address cap on
  // connections not yet signed in is raised to the whole load.
  const startNode = async (i) => {
    const s = await startServer({ db: pg ? pg.url : undefined, secret,
      args: ['--max-connections', '20000', '--max-unauth-per-addr', '20000',
        '--rate-msgs-per-s', '10000', '--rate-burst', '100000', '--no-recording', '--offer-timeout-s', '60',
        ...(pg ? ['--node-id', `node-${i + 1}`] : [])] });
    countLog(s);
    s.node = i;
    log(`node-${i + 1} pid=${s.proc.pid} port=${s.port} db=${o.db} bin=${o.bin}`);
    return s;
  };
  const srvs = [];
  const workers = new Workers(o.workers, o.client, o.clientBin, o.clientSched);
  let echo = null;
  let rawWorkers = null;
  try {
    srvs.push(await startNode(0));
    const srv = srvs[0];
    // Phase T's departments: one per node, served by that node's doctors.
    const tDepts = Array.from({ length: N }, (_, k) => `t${k}`);
    const tDoctors = tDepts.flatMap((d, k) => Array.from({ length: o.tDoctors }, (_, j) => [`td${k}_${j}`, d]));
    await setupHospital(srv, { depts: ['cardio', 'endo', ...tDepts],
      doctors: [['d1', 'cardio'], ['d2', 'cardio'], ['d3', 'endo'], ['d4', 'endo'], ...tDoctors] });
    // After the roster: a node loads the shifts when it starts.
    for (let i = 1; i < N; i++) srvs.push(await startNode(i));
    const pgPid = pg ? Number(readFileSync(join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]) : 0;
    log(`patients held by ${o.workers} ${o.client} client process(es)${o.clientBin ? ` (${o.clientBin}, sched ${o.clientSched})` : ''}`);
    await workers.start();

    // ---- baseline: a plain Node TLS WebSocket echo server ----------------
    if (o.baselineN > 0) {
      echo = fork(fileURLToPath(import.meta.url), ['--echo', join(srv.dataDir, 'tls', 'server.crt'),
        join(srv.dataDir, 'tls', 'server.key')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const port = await new Promise((res) => echo.once('message', (m) => res(m.port)));
      await sleep(1000);
      const idle = rssKiB(echo.pid);
      // The C client does not speak to the echo server: Node workers do.
      rawWorkers = o.client === 'node' ? workers : new Workers(4, 'node');
      if (rawWorkers !== workers) await rawWorkers.start();
      const per = Math.ceil(o.baselineN / rawWorkers.n);
      const r = await rawWorkers.all('openRaw', () => ({ url: `wss://127.0.0.1:${port}/`, n: per, concurrency: o.concurrency }));
      await sleep(o.settleMs);
      const held = per * rawWorkers.n - r.reduce((a, x) => a + x.failed, 0);
      const full = rssKiB(echo.pid);
      figures.baseline = { n: held, idleKiB: idle, rssKiB: full, perConnKiB: (full - idle) / held };
      log(`baseline echo: idle ${idle} KiB, ${held} conns ${full} KiB, ${fmt((full - idle) / held)} KiB/conn`);
      await rawWorkers.all('closeRaw');
      if (rawWorkers !== workers) {
        await rawWorkers.all('exit').catch(() => {});
        rawWorkers.kill();
      }
      rawWorkers = null;
      echo.kill('SIGKILL');
      echo = null;
    }

    // Doctors, endo probe patients and a monitor connect first: they are
    // part of the idle figure, and nothing of theirs waits behind N patients.
    // On several nodes cardio's doctor is on the first and endo (doctors
    // and probes) on the last: the cardio visit's node then never carries
    // two visits more than its patient's, so it stays with the doctor
    // (docs/cluster.md "Where a visit runs") and nobody is moved.
    const endoNode = srvs[N - 1];
    const docs = {};
    for (const id of ['d1', 'd2', 'd3', 'd4']) {
      const d = new Actor((id === 'd3' || id === 'd4' ? endoNode : srv).url());
      await d.open();
      await d.request('hello', { token: srv.token(id, 'doctor'), ua: 'bench-doctor/1' }, 60000);
      d.id = id;
      d.node = id === 'd3' || id === 'd4' ? N - 1 : 0;
      docs[id] = d;
    }
    const probes = [];
    for (let i = 0; i < Math.max(o.probes, o.cProbes); i++) {
      const p = new Actor(endoNode.url());
      await p.open();
      await p.request('hello', { token: srv.token(`probe${i}`, 'patient'), ua: 'bench-probe/1' }, 60000);
      p.sub = `probe${i}`;
      p.busy = false;
      p.onPush = () => {};
      probes.push(p);
    }
    // Phase T's doctors and patients, on their department's node.
    const tProbes = [];
    if (o.phases.includes('T')) {
      for (const [id, dept] of tDoctors) {
        const k = Number(dept.slice(1));
        const d = new Actor(srvs[k].url());
        await d.open();
        await d.request('hello', { token: srv.token(id, 'doctor'), ua: 'bench-doctor/1' }, 60000);
        Object.assign(d, { id, node: k });
        docs[id] = d;
      }
      for (let k = 0; k < N; k++) {
        for (let i = 0; i < o.tProbes; i++) {
          const p = new Actor(srvs[k].url());
          await p.open();
          await p.request('hello', { token: srv.token(`tprobe${k}_${i}`, 'patient'), ua: 'bench-probe/1' }, 60000);
          Object.assign(p, { sub: `tprobe${k}_${i}`, dept: `t${k}`, busy: false, onPush: () => {} });
          tProbes.push(p);
        }
      }
    }
    const monitor = new Actor(srv.url());
    await monitor.open();
    await monitor.request('hello', { token: srv.token('monitor', 'patient'), ua: 'bench-monitor/1' }, 60000);
    monitor.onPush = () => {};
    // Round trips of 'ping' every 100 ms while fn runs: how long the control
    // loop takes to get to a request.
    const pingWhile = async (fn) => {
      const rtts = [];
      let done = false;
      const loop = (async () => {
        while (!done) {
          const t0 = now();
          try { await monitor.request('ping', {}, 60000); rtts.push(now() - t0); } catch { rtts.push(Infinity); }
          await sleep(100);
        }
      })();
      await fn();
      done = true;
      await loop;
      rtts.sort((a, b) => a - b);
      return { n: rtts.length, p50: pct(rtts, 50), p99: pct(rtts, 99), max: rtts[rtts.length - 1] };
    };

    // ---- connections held and RSS per waiting patient --------------------
    await sleep(o.settleMs);
    const idles = srvs.map((s) => rssKiB(s.proc.pid));
    const idle = idles.reduce((a, x) => a + x, 0);
    figures.idleKiB = idle;
    figures.nodeIdleKiB = idles;
    log(`telemed idle RSS ${idles.join(' + ')} KiB`);
    // What the nodes and PostgreSQL cost with nothing to do (heartbeats,
    // the registry, ticks): the floor under every figure per visit below.
    {
      const q0 = await snapshotAll(srvs, pgPid);
      await sleep(5000);
      const q1 = await snapshotAll(srvs, pgPid);
      figures.quiet = { nodeCpuPct: (100 * (q1.cpu - q0.cpu)) / (q1.t - q0.t), pgCpuPct: (100 * (q1.pgCpu - q0.pgCpu)) / (q1.t - q0.t) };
    }
    figures.steps = [];
    let opened = 0;
    let nextSub = 0;
    // Patient i goes to node i % N, and to one of that node's client
    // processes (worker w holds node w % N's patients).
    const heldOn = new Array(N).fill(0);
    for (const target of o.steps) {
      const add = target - opened;
      const shards = Array.from({ length: o.workers }, () => []);
      const perNode = Array.from({ length: N }, () => 0);
      for (let i = 0; i < add; i++) {
        const k = (opened + i) % N;
        const w = k + N * (perNode[k]++ % (o.workers / N));
        shards[N > 1 ? w : i % o.workers].push(`p${nextSub++}`);
      }
      const nodeOf = (w) => (N > 1 ? w % N : 0);
      const t0 = now();
      const r = await workers.all('open', (w) => ({ url: srvs[nodeOf(w)].url(), secret, subs: shards[w], dept: 'cardio', concurrency: o.concurrency }));
      const ms = now() - t0;
      const failed = r.reduce((a, x) => a + x.failed, 0);
      if (failed) log(`open: ${failed} failed, first: ${r.find((x) => x.firstError).firstError}`);
      r.forEach((x, w) => { heldOn[nodeOf(w)] += shards[w].length - x.failed; });
      opened = r.reduce((a, x) => a + x.held, 0);
      await sleep(o.settleMs);
      const snap = await snapshotAll(srvs, 0);
      const rsss = srvs.map((s) => rssKiB(s.proc.pid));
      const rss = rsss.reduce((a, x) => a + x, 0);
      const step = { target, held: opened, serverConns: snap.m.conns, rssKiB: rss,
        perConnKiB: (rss - idle) / opened, openPerS: (add - failed) / (ms / 1000),
        nodes: srvs.map((s, k) => ({ held: heldOn[k], conns: snap.nodes[k].m.conns, rssKiB: rsss[k],
          perConnKiB: (rsss[k] - idles[k]) / heldOn[k] })) };
      figures.steps.push(step);
      log(`${opened} waiting: RSS ${rss} KiB, ${fmt(step.perConnKiB)} KiB/patient${N > 1 ? ` (per node ${step.nodes.map((x) => fmt(x.perConnKiB)).join(', ')})` : ''}, opened ${fmt(step.openPerS, 0)}/s`);
    }
    const waiting = opened;
    const checks = [];
    figures.checks = checks;
    const check = (what, ok) => { checks.push({ what, ok: Boolean(ok) }); if (!ok) log(`check failed: ${what}`); };
    if (o.check && o.steps.length) {
      const total = o.steps[o.steps.length - 1];
      srvs.forEach((_, k) => {
        const share = Math.floor(total / N) + (k < total % N ? 1 : 0);
        check(`node-${k + 1} holds its ${share} patients (holds ${heldOn[k]})`, heldOn[k] === share);
      });
      // One queue across the nodes: each position once, none missing.
      const positionsAre1toN = async () => {
        const all = (await workers.all('positions')).flatMap((r) => r.positions).sort((a, b) => a - b);
        return all.length === total && all.every((x, i) => x === i + 1);
      };
      const tCap = now() + 60000;
      let ok = await positionsAre1toN();
      while (!ok && now() < tCap) { await sleep(500); ok = await positionsAre1toN(); }
      check(`the ${total} waiting patients' positions are 1..${total} across the nodes`, ok);
    }
    // Nothing happens now but lws keepalive pings (every 20 s per quiet
    // connection) and the 1 s tick: what N idle waiting patients cost.
    const cpuAll = () => srvs.reduce((a, s) => a + cpuMs(s.proc.pid), 0);
    if (o.idleS > 0 && o.steps.length) {
      const c0 = cpuAll();
      const t0 = now();
      figures.idlePing = await pingWhile(() => sleep(o.idleS * 1000));
      figures.idleCpuPct = (100 * (cpuAll() - c0)) / (now() - t0);
      figures.idleS = o.idleS;
      log(`${waiting} waiting, idle for ${o.idleS} s: server CPU ${fmt(figures.idleCpuPct)}% of a core, ping p50/p99/max ${fmt(figures.idlePing.p50)}/${fmt(figures.idlePing.p99)}/${fmt(figures.idlePing.max)} ms`);
    }

    // ---- phase B: one cardio doctor serves, N wait; endo probes -----------
    // cardio, endo, then phase T's departments t0..t(N-1)
    const events = Array.from({ length: 2 + N }, () => ({ sent: [], ans: [] }));
    const checkinAt = new Map(); // probe sub -> checkin sent time
    let ciToOffer = [];
    let acceptRtt = [];
    let visitsDone = 0;
    let visitsOn = new Array(N).fill(0); // by the node of the doctor who ended them
    let stopping = false;
    const errors = [];

    // A doctor who accepts every offer and ends the visit after holdMs.
    const serve = (d, di, holdMs) => {
      d.onPush = (m, t) => {
        if (m.type !== 'visit.offer' || stopping) return;
        const t0 = checkinAt.get(m.patient.id);
        if (t0 !== undefined) { ciToOffer.push(t - t0); checkinAt.delete(m.patient.id); }
        (async () => {
          const sent = now();
          await d.request('visit.accept', { visit_id: m.visit_id }, 30000);
          const ans = now();
          acceptRtt.push(ans - sent);
          events[di].sent.push(sent);
          events[di].ans.push(ans);
          if (holdMs) await sleep(holdMs);
          await d.request('visit.end', { visit_id: m.visit_id, reason: 'completed' }, 30000);
          visitsDone++;
          visitsOn[d.node]++;
          const probe = probes.find((p) => p.sub === m.patient.id) || tProbes.find((p) => p.sub === m.patient.id);
          if (probe) probe.busy = false;
        })().catch((e) => errors.push(`${d.id}: ${e.message}`));
      };
    };
    const probeCheckin = async (p) => {
      p.busy = true;
      checkinAt.set(p.sub, now());
      try {
        p.visitId = (await p.request('checkin', { dept: p.dept || 'endo' }, 30000)).visit_id;
      } catch (e) {
        // Still queued from the last phase (its offer was withdrawn): it will be served.
        if (e.code !== 'conflict') throw e;
      }
    };

    const runPhase = async (name, { doctors, visits, seconds, probeLoop }) => {
      stopping = false;
      ciToOffer = [];
      acceptRtt = [];
      visitsDone = 0;
      visitsOn = new Array(N).fill(0);
      for (const e of events) { e.sent.length = 0; e.ans.length = 0; }
      await workers.all('mark');
      const s0 = await snapshotAll(srvs, pgPid);
      const self0 = process.cpuUsage();
      const tEnd = now() + seconds * 1000;
      for (const [id, di, hold] of doctors) {
        serve(docs[id], di, hold);
        await docs[id].request('doctor.status', { status: 'available' }, 60000);
      }
      const probeTask = probeLoop();
      const ping = await pingWhile(async () => {
        while (!stopping) {
          await sleep(50);
          if (visitsDone >= visits || now() > tEnd) stopping = true;
        }
        await probeTask;
      });
      const s1busy = await snapshotAll(srvs, pgPid);
      const self1 = process.cpuUsage(self0);
      const visitsOnBusy = [...visitsOn];
      // Let the last fan-out arrive before collecting.
      await sleep(3000);
      for (const [id] of doctors) await docs[id].request('doctor.status', { status: 'away' }, 60000);
      await sleep(1000);
      const s1 = await snapshotAll(srvs, pgPid);
      const col = await workers.all('collect', () => ({ events }));
      // Each node's patients' view (worker w holds node w % N's).
      const nodeAns = srvs.map(() => new Hist());
      col.forEach((c, w) => nodeAns[N > 1 ? w % N : 0].merge(c.hAns));
      const hAns = new Hist();
      const hSent = new Hist();
      let positional = 0;
      let unmatched = 0;
      let estimateOnly = 0;
      let workerCpu = 0;
      let otherPushes = 0;
      const elus = [];
      // Only the C client reports these: patients the server hung up on
      // (since the start), and messages it could not parse.
      let closed = 0;
      let badMessages = 0;
      let pings = 0;
      let firstClose = '';
      for (const c of col) {
        hAns.merge(c.hAns); hSent.merge(c.hSent);
        positional += c.positional; unmatched += c.unmatched; estimateOnly += c.estimateOnly;
        otherPushes += c.otherPushes;
        workerCpu += c.cpuMs; elus.push(c.elu);
        closed += c.closed || 0; badMessages += c.badMessages || 0; pings += c.pings || 0;
        if (!firstClose && c.firstClose) firstClose = c.firstClose;
      }
      if (closed || badMessages) log(`${name}: client says ${closed} patients closed by the server (first: ${firstClose}), ${badMessages} unparsable messages`);
      const wall = (s1busy.t - s0.t) / 1000;
      const ci = ciToOffer.sort((a, b) => a - b);
      const rtt = acceptRtt.sort((a, b) => a - b);
      const f = {
        name, wallS: wall, visits: visitsDone, visitsPerS: visitsDone / wall,
        accepts: events.map((e) => e.ans.length),
        pushLatAns: { n: hAns.n, p50: hAns.pct(50), p99: hAns.pct(99), max: hAns.max },
        pushLatSent: { n: hSent.n, p50: hSent.pct(50), p99: hSent.pct(99), max: hSent.max },
        pushLatServer: serverPushLatency(s0.m, s1.m),
        positional, unmatched, estimateOnly, otherPushes,
        clientClosed: closed, clientBadMessages: badMessages, clientFirstClose: firstClose, clientPings: pings,
        ciToOffer: { n: ci.length, p50: pct(ci, 50), p99: pct(ci, 99), max: ci[ci.length - 1] },
        acceptRtt: { n: rtt.length, p50: pct(rtt, 50), p99: pct(rtt, 99) },
        ping,
        // Server-side counts until the drain ended: every frame in and out.
        msgs: s1.msgs - s0.msgs, msgsIn: s1.msgsIn - s0.msgsIn, msgsOut: s1.msgsOut - s0.msgsOut,
        msgsPerS: (s1.msgs - s0.msgs) / ((s1.t - s0.t) / 1000),
        serverCpuMs: s1.cpu - s0.cpu,
        serverCpuUsPerMsg: ((s1.cpu - s0.cpu) * 1000) / (s1.msgs - s0.msgs),
        serverCpuPct: (100 * (s1busy.cpu - s0.cpu)) / (s1busy.t - s0.t),
        serverRunqPct: (100 * (s1busy.runq - s0.runq)) / (s1busy.t - s0.t),
        clientCpuMs: workerCpu, clientElu: elus,
        rateLimited: s1.m.rateLimited - s0.m.rateLimited, errors: s1.m.errors - s0.m.errors,
        // Per node over the busy window: CPU, and CPU per visit it ended.
        nodes: srvs.map((_, k) => {
          const a = s0.nodes[k];
          const b = s1busy.nodes[k];
          return { visits: visitsOnBusy[k], cpuMs: b.cpu - a.cpu, cpuPct: (100 * (b.cpu - a.cpu)) / (b.t - a.t),
            runqPct: (100 * (b.runq - a.runq)) / (b.t - a.t), cpuMsPerVisit: (b.cpu - a.cpu) / visitsOnBusy[k],
            msgs: s1.nodes[k].msgs - a.msgs, usPerMsg: ((s1.nodes[k].cpu - a.cpu) * 1000) / (s1.nodes[k].msgs - a.msgs),
            pushLatAns: { n: nodeAns[k].n, p50: nodeAns[k].pct(50), p99: nodeAns[k].pct(99) },
            pushLatServer: serverPushLatency(a.m, s1.nodes[k].m) };
        }),
        visitsBusy: visitsOnBusy.reduce((x, y) => x + y, 0),
        pgCpuMs: s1busy.pgCpu - s0.pgCpu, pgCpuPct: (100 * (s1busy.pgCpu - s0.pgCpu)) / (s1busy.t - s0.t),
        benchCpuMs: (self1.user + self1.system) / 1000,
      };
      f.cpuMsPerVisit = (s1busy.cpu - s0.cpu) / f.visitsBusy;
      f.pgCpuMsPerVisit = f.pgCpuMs / f.visitsBusy;
      f.visitsPerSBusy = f.visitsBusy / wall;
      log(`${name}: ${f.visits} visits in ${fmt(wall)} s; position push p50/p99 ${fmt(f.pushLatAns.p50)}/${fmt(f.pushLatAns.p99)} ms (${f.pushLatAns.n}); check-in->offer p50/p99 ${fmt(f.ciToOffer.p50)}/${fmt(f.ciToOffer.p99)} ms; ${fmt(f.msgsPerS, 0)} msg/s; server ${fmt(f.serverCpuPct, 0)}% CPU, ${fmt(f.serverCpuUsPerMsg)} us/msg; clients ${fmt(workerCpu, 0)} ms CPU, busy ${elus.map((x) => fmt(x, 2)).join(',')}`);
      return f;
    };

    // Phase B: the cardio doctor accepts, holds, ends, accepts the next.
    if (o.phases.includes('B')) figures.phaseB = await runPhase('B: 1 doctor, N waiting', {
      doctors: [['d1', 0, o.bHoldMs], ['d3', 1, 50], ['d4', 1, 50]],
      visits: o.bVisits + 1e9, seconds: o.bSeconds,
      probeLoop: async () => {
        // Probes check in to endo (empty queue, two free doctors) one at a
        // time while cardio fans out: the check-in -> offer path under load.
        // One probe at a time, so a free endo doctor is always there and the
        // figure is the server's latency, not a queue's.
        while (!stopping && events[0].ans.length < o.bVisits) {
          const pool = probes.slice(0, o.probes);
          const p = pool.find((x) => !x.busy);
          if (p && !pool.some((x) => x.busy)) probeCheckin(p).catch((e) => errors.push(`probe: ${e.message}`));
          await sleep(o.probeEveryMs);
        }
        stopping = true;
      },
    });
    if (figures.phaseB) {
      figures.phaseB.waiting = waiting;
      if (o.check) {
        check(`phase B served its ${o.bVisits} cardio visits (${figures.phaseB.accepts[0]})`, figures.phaseB.accepts[0] >= o.bVisits);
        figures.phaseB.nodes.forEach((x, k) => check(`node-${k + 1}'s patients got position pushes (${x.pushLatAns.n})`, x.pushLatAns.n > 0));
      }
    }
    // A probe whose offer was ignored at the stop is still queued: take it out.
    for (const p of probes) {
      if (p.busy && p.visitId) await p.request('queue.leave', { visit_id: p.visitId }, 60000).catch(() => {});
      p.busy = false;
    }
    checkinAt.clear();

    // Phase C: four doctors in two departments, as fast as they can.
    if (o.phases.includes('C')) figures.phaseC = await runPhase('C: 4 doctors, 2 depts', {
      doctors: [['d1', 0, 0], ['d2', 0, 0], ['d3', 1, 0], ['d4', 1, 0]],
      visits: o.cVisits, seconds: o.cSeconds,
      probeLoop: async () => {
        // Closed loop: every probe checks in again as soon as its visit ended.
        while (!stopping) {
          for (const p of probes.slice(0, o.cProbes)) {
            if (!p.busy) probeCheckin(p).catch((e) => errors.push(`probe: ${e.message}`));
          }
          await sleep(20);
        }
      },
    });
    // Phase T: each node its own department, doctors and probe patients, in
    // a closed loop: visits per second through the nodes and each node's
    // CPU per visit, with nobody moved between nodes.
    for (const p of probes) p.busy = false;
    if (o.phases.includes('T')) {
      figures.phaseT = await runPhase(`T: ${o.tDoctors} doctors and ${o.tProbes} patients per node`, {
        doctors: tDoctors.map(([id], i) => [id, 2 + Math.floor(i / o.tDoctors), 0]),
        visits: o.tVisits, seconds: o.tSeconds,
        probeLoop: async () => {
          while (!stopping) {
            for (const p of tProbes) if (!p.busy) probeCheckin(p).catch((e) => errors.push(`probe: ${e.message}`));
            await sleep(20);
          }
        },
      });
      if (o.check) {
        const t = figures.phaseT;
        check(`phase T reached ${o.tVisits} visits (${t.visits})`, t.visits >= o.tVisits);
        t.nodes.forEach((x, k) => check(`node-${k + 1} served phase T visits (${x.visits})`, x.visits > 0));
      }
    }
    if (o.check) check(`no client errors (${errors.length}${errors.length ? `: ${errors[0]}` : ''})`, !errors.length);
    figures.errors = errors.slice(0, 10);
    figures.errorCount = errors.length;
    figures.finalRssKiB = srvs.reduce((a, x) => a + rssKiB(x.proc.pid), 0);
    figures.log = logStats;
    for (const d of Object.values(docs)) d.drop();
    for (const p of [...probes, ...tProbes]) p.drop();
    monitor.drop();
  } finally {
    if (echo) echo.kill('SIGKILL');
    if (rawWorkers && rawWorkers !== workers) rawWorkers.kill();
    const t0 = now();
    const stops = await Promise.allSettled(srvs.map((s) => s.stop()));
    figures.stopMs = now() - t0;
    await workers.all('exit').catch(() => {});
    workers.kill();
    if (pg) pg.stop();
    for (const r of stops) if (r.status === 'rejected') log(`node stop: ${r.reason.message.split('\n')[0]}`);
    if (figures.checks) figures.checks.push({ what: 'every node stopped cleanly', ok: stops.every((r) => r.status === 'fulfilled') });
  }
  report(figures);
  if (o.json) (await import('node:fs')).writeFileSync(o.json, JSON.stringify(figures, null, 2));
  if (o.check) {
    for (const c of figures.checks) console.log(`check ${c.ok ? 'ok' : 'FAILED'}: ${c.what}`);
    if (!figures.checks.length || figures.checks.some((c) => !c.ok)) process.exitCode = 1;
  }
}

function report(f) {
  const out = [];
  const row = (k, v) => out.push(`  ${k.padEnd(44)} ${v}`);
  const N = f.options.nodes;
  out.push('', `telemed signaling load  (${N} node${N > 1 ? 's' : ''} on ${f.options.db === 'pg' ? 'PostgreSQL' : 'SQLite'}, ${new Date().toISOString()}, ${f.options.workers} ${f.options.client} client processes, ${cpus().length} CPUs, load average ${f.load0.map((x) => fmt(x, 1)).join(' ')} at start, ${loadavg().map((x) => fmt(x, 1)).join(' ')} at end)`);
  out.push(' memory');
  if (f.baseline) row(`baseline: Node TLS ws echo, ${f.baseline.n} conns`, `${fmt(f.baseline.perConnKiB)} KiB/conn (idle ${f.baseline.idleKiB} KiB)`);
  row('telemed-server idle RSS', `${f.idleKiB} KiB`);
  if (f.quiet) row('quiet 5 s: CPU of the nodes; of PostgreSQL', `${fmt(f.quiet.nodeCpuPct, 2)}%; ${f.options.db === 'pg' ? `${fmt(f.quiet.pgCpuPct, 2)}%` : '-'} of a core`);
  for (const s of f.steps) {
    row(`${s.held} waiting (server says ${s.serverConns} conns)`, `RSS ${s.rssKiB} KiB = ${fmt(s.perConnKiB)} KiB/patient; opened ${fmt(s.openPerS, 0)}/s`);
    if (N > 1) {
      s.nodes.forEach((x, k) => row(`  node-${k + 1}: ${x.held} waiting (${x.conns} conns)`,
        `RSS ${x.rssKiB} KiB (idle ${f.nodeIdleKiB[k]}) = ${fmt(x.perConnKiB)} KiB/patient`));
    }
  }
  if (f.baseline && f.steps.length) row('ratio telemed/echo per connection', fmt(f.steps[f.steps.length - 1].perConnKiB / f.baseline.perConnKiB, 2));
  if (f.idleCpuPct !== undefined) {
    row(`server CPU, ${f.steps[f.steps.length - 1].held} waiting, idle ${f.idleS} s`, `${fmt(f.idleCpuPct)}% of a core`);
    row('  ping round trip meanwhile', `p50 ${fmt(f.idlePing.p50)} ms  p99 ${fmt(f.idlePing.p99)} ms  max ${fmt(f.idlePing.max)} ms  (n=${f.idlePing.n})`);
  }
  for (const p of [f.phaseB, f.phaseC, f.phaseT]) {
    if (!p) continue;
    out.push(` phase ${p.name}${p.waiting ? ` (${p.waiting} waiting at start)` : ''}`);
    const perDept = p === f.phaseT ? p.accepts.slice(2).map((n, k) => `t${k} ${n}`).join(', ') : `cardio ${p.accepts[0]}, endo ${p.accepts[1]}`;
    row('visits (accept+end) / wall', `${p.visits} in ${fmt(p.wallS)} s = ${fmt(p.visitsPerS, 1)}/s (${perDept})`);
    row('queue.position push after accept answered', `p50 ${fmt(p.pushLatAns.p50)} ms  p99 ${fmt(p.pushLatAns.p99)} ms  max ${fmt(p.pushLatAns.max)} ms  (n=${p.pushLatAns.n})`);
    row('queue.position push after accept sent', `p50 ${fmt(p.pushLatSent.p50)} ms  p99 ${fmt(p.pushLatSent.p99)} ms`);
    const sv = p.pushLatServer;
    row('  server side: frame in -> push written', `p50 ~${fmt(sv.p50)} ms  p99 ~${fmt(sv.p99)} ms  within 50 ms ${fmt(sv.within50)}%  (n=${sv.n})`);
    row('estimate-only pushes; unmatched', `${p.estimateOnly}; ${p.unmatched}`);
    row(`check-in -> visit.offer (${p === f.phaseT ? 'phase T' : 'endo'} probes)`, `p50 ${fmt(p.ciToOffer.p50)} ms  p99 ${fmt(p.ciToOffer.p99)} ms  max ${fmt(p.ciToOffer.max)} ms  (n=${p.ciToOffer.n})`);
    row('visit.accept round trip', `p50 ${fmt(p.acceptRtt.p50)} ms  p99 ${fmt(p.acceptRtt.p99)} ms`);
    row('ping round trip (monitor, every 100 ms)', `p50 ${fmt(p.ping.p50)} ms  p99 ${fmt(p.ping.p99)} ms  max ${fmt(p.ping.max)} ms`);
    row('messages handled (server in+out)', `${p.msgs} (${p.msgsIn} in, ${p.msgsOut} out) = ${fmt(p.msgsPerS, 0)}/s`);
    row('server CPU', `${fmt(p.serverCpuPct, 0)}% of a core while busy, ${fmt(p.serverCpuUsPerMsg, 1)} us/msg`);
    row('server loop waiting for a CPU (run queue)', `${fmt(p.serverRunqPct, 0)}% of wall`);
    // Node: event-loop utilisation; C: CPU time / wall time since mark.
    row(`clients (${f.options.client}): CPU ms, ${f.options.client === 'c' ? 'CPU share of wall' : 'event-loop use'}`, `${fmt(p.clientCpuMs, 0)} ms, ${p.clientElu.map((x) => fmt(x, 2)).join(' ')}`);
    if (p.clientClosed || p.clientBadMessages) row('  patients closed by server; bad messages', `${p.clientClosed} (${p.clientFirstClose}); ${p.clientBadMessages}`);
    row('rate limited / error replies', `${p.rateLimited} / ${p.errors}`);
    row('visits while busy; CPU per visit, all nodes', `${p.visitsBusy} = ${fmt(p.visitsPerSBusy, 1)}/s; ${fmt(p.cpuMsPerVisit, 2)} ms`);
    p.nodes.forEach((x, k) => {
      if (N > 1 || x.pushLatAns.n) {
        row(`  node-${k + 1}: visits, CPU, CPU per visit`, `${x.visits}, ${fmt(x.cpuPct, 0)}% of a core (run queue ${fmt(x.runqPct, 0)}%), ${fmt(x.cpuMsPerVisit, 2)} ms/visit, ${x.msgs} msgs at ${fmt(x.usPerMsg, 1)} us/msg`);
        if (x.pushLatAns.n) row(`  node-${k + 1}: position push after answer; server side`, `p50 ${fmt(x.pushLatAns.p50)} p99 ${fmt(x.pushLatAns.p99)} ms (n=${x.pushLatAns.n}); p99 ~${fmt(x.pushLatServer.p99)} ms`);
      }
    });
    if (f.options.db === 'pg') row('PostgreSQL CPU; per visit', `${fmt(p.pgCpuPct, 0)}% of a core; ${fmt(p.pgCpuMsPerVisit, 2)} ms`);
    row('this bench process (doctors, probes) CPU', `${fmt(p.benchCpuMs, 0)} ms = ${fmt((100 * p.benchCpuMs) / (p.wallS * 1000), 0)}% of a core`);
  }
  out.push(' targets (issue 2)');
  const last = f.steps[f.steps.length - 1];
  if (last) row(`RSS per waiting patient < 50 KiB (${last.held})`, `${fmt(last.perConnKiB)} KiB: ${last.perConnKiB < 50 ? 'met' : 'NOT met'}`);
  if (f.phaseB) {
    const a = f.phaseB.pushLatAns.p99;
    const s = f.phaseB.pushLatSent.p99;
    row(`p99 queue.position update < 50 ms (${f.phaseB.waiting})`, `${fmt(a)} ms after answer, ${fmt(s)} ms after send: ${s < 50 ? 'met' : a < 50 ? 'met only from the answer' : 'NOT met'}`);
    const sv = f.phaseB.pushLatServer.p99;
    row('  the same inside the server (frame in -> written)', `~${fmt(sv)} ms: ${sv < 50 ? 'met' : 'NOT met'}`);
  }
  row('server RSS at end', `${f.finalRssKiB} KiB`);
  row('server log lines (warn, error)', `${f.log.lines} (${f.log.warn}, ${f.log.error})`);
  if (N > 1) row('takeovers (a node judged dead); visits released', `${f.log.takeovers}; ${f.log.released}`);
  row('server stop (SIGINT -> exit)', `${fmt(f.stopMs, 0)} ms`);
  if (f.errorCount) row('client errors', `${f.errorCount}: ${f.errors.join(' | ')}`);
  for (const l of f.log.lastProblems) out.push(`  log: ${l}`);
  console.log(out.join('\n'));
}

// ---- entry -------------------------------------------------------------

const role = process.argv[2];
if (role === '--patients') {
  patientWorker();
} else if (role === '--echo') {
  echoServer(process.argv[3], process.argv[4]);
} else {
  main().catch((e) => { console.error(e); process.exit(1); });
}
