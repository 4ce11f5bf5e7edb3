// server.mjs - start a real telemed-server on a free loopback port with a
// temporary data directory, mint tokens, talk REST and telemed.v1 to it.
// Shared by every Node integration test (signaling, feed, webrtc, web).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import https from 'node:https';
import WebSocket from 'ws';

export const BIN = process.env.TELEMED_BIN ||
  join(process.env.TELEMED_BUILD_DIR || 'build', 'telemed-server');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// An HS256 JWT minted here, independently of the server's own code. Like a
// hospital's login it says the person proved who they are just now
// (auth_time), which a doctor needs to accept a visit.
export function mintToken(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const now = Math.floor(Date.now() / 1000);
  const body = { iat: now, exp: now + 3600, auth_time: now, ...claims };
  const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(body))}`;
  const sig = header.alg === 'none' ? '' :
    createHmac('sha256', secret).update(signing).digest('base64url');
  return `${signing}.${sig}`;
}

export async function startServer(opts = {}) {
  const dataDir = opts.dataDir || mkdtempSync(join(tmpdir(), 'telemed-test-'));
  const secret = opts.secret || randomBytes(16).toString('hex');
  // The secret goes in the environment: the server refuses it as a flag, which
  // ps shows. noSecret: none, as a deployment behind an identity provider runs.
  // consent: check-in needs the informed consent, as it does by default; most
  // tests are about other things and check patients in without it
  // (tests/integration/consent.test.mjs and the pages' tests keep it on).
  const args = ['--data-dir', dataDir, '--port', '0', '--listen', '127.0.0.1',
    '--media-addresses', '127.0.0.1',
    ...(opts.consent ? [] : ['--no-consent-required']), ...(opts.db ? ['--db', opts.db] : []),
    ...(opts.args || [])];
  const secretEnv = { TELEMED_JWT_SECRET: opts.noSecret ? undefined : secret };
  const srv = {
    dataDir, secret, logs: '', proc: null, port: 0, exited: null,
    // opts.db: a postgresql:// URL (tests/integration/lib/pg.mjs) instead of the file.
    db: opts.db || join(dataDir, 'telemed.db'),
  };
  const launch = () => new Promise((resolve, reject) => {
    // nofile: run under that open-file limit (soft and hard), as a small host would.
    const [cmd, argv] = opts.nofile
      ? ['sh', ['-c', `ulimit -n ${Number(opts.nofile)} && exec "$0" "$@"`, BIN, ...args]]
      : [BIN, args];
    const env = { ...process.env, ...secretEnv, ...(opts.env || {}) };
    if (env.TELEMED_JWT_SECRET === undefined) delete env.TELEMED_JWT_SECRET;
    const proc = spawn(cmd, argv, { env,
      stdio: ['ignore', 'pipe', 'pipe'] });
    srv.proc = proc;
    srv.exited = new Promise((res) => proc.on('exit', (code, sig) => res({ code, sig })));
    // Generous: a start takes ~3 s under the sanitizers, but a 2-core machine
    // shared with other suites and builds has taken over 60 s.
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${srv.logs}`)), 150000);
    const onData = (d) => {
      srv.logs += d.toString();
      if (process.env.TELEMED_TEST_VERBOSE) process.stderr.write(d);
      const m = /ev=server\.listening port=(\d+)/.exec(srv.logs);
      if (m && !srv.port) {
        srv.port = Number(m[1]);
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stderr.on('data', onData);
    proc.stdout.on('data', (d) => { srv.logs += d.toString(); });
    // 'close' comes after the output is read, so the reason is in the logs.
    proc.on('close', (code) => {
      if (!srv.port) { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${srv.logs}`)); }
    });
  });
  await launch();
  srv.url = () => `wss://127.0.0.1:${srv.port}/ws`;
  srv.base = () => `https://127.0.0.1:${srv.port}`;
  srv.token = (sub, role, extra = {}) => mintToken(secret, { sub, role, name: `name-of-${sub}`, ...extra });
  srv.api = (method, path, body, token) => request(srv.port, method, path, body, token);
  srv.client = async (sub, role, extra = {}) => {
    const c = new Client(srv.url());
    await c.open();
    c.hello = await c.request('hello', { token: srv.token(sub, role, extra), ua: 'node-test/1' });
    return c;
  };
  srv.sql = (query) => {
    if (srv.db.startsWith('postgresql://')) {
      const psql = join(process.env.TM_PG_BIN || '/usr/lib/postgresql/15/bin', 'psql');
      const out = execFileSync(psql, ['-X', '-At', srv.db, '-c',
        `SELECT coalesce(json_agg(q), '[]') FROM (${query}) q`]).toString().trim();
      return JSON.parse(out);
    }
    // The server writes in the background too: wait for its lock, as it
    // waits for ours, instead of failing at once with "database is locked".
    const out = execFileSync('sqlite3', ['-json', '-cmd', '.timeout 10000', srv.db, query]).toString().trim();
    return out ? JSON.parse(out) : [];
  };
  // Clean stop (SIGINT: at once, as Ctrl-C; SIGTERM would drain, waiting
  // for live visits, docs/cluster.md), or kill -9 with { hard: true }.
  // A clean stop must exit 0 with no sanitizer report: memory errors and
  // leaks in the server fail the test that caused them.
  srv.stop = async ({ hard = false, keep = false } = {}) => {
    let result = null;
    if (srv.proc && srv.proc.exitCode === null && srv.proc.signalCode === null) {
      srv.proc.kill(hard ? 'SIGKILL' : 'SIGINT');
      const t = setTimeout(() => srv.proc.kill('SIGKILL'), 15000);
      result = await srv.exited;
      clearTimeout(t);
    }
    if (!keep && !opts.dataDir && existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
    const report = srv.logs.split('\n').filter((l) => /Sanitizer|runtime error:/.test(l));
    if (report.length) throw new Error(`sanitizer report from telemed-server:\n${srv.logs.slice(-6000)}`);
    if (result && !hard && result.code !== 0)
      throw new Error(`telemed-server exited ${result.code} ${result.sig}:\n${srv.logs.slice(-3000)}`);
  };
  srv.restart = async ({ hard = false } = {}) => {
    await srv.stop({ hard, keep: true });
    srv.port = 0;
    srv.logs = '';
    await launch();
  };
  return srv;
}

// Node keeps HTTPS connections alive between requests: a request sent on
// one the server has just closed for idleness (while a test held the event
// loop, say in spawnSync) fails with ECONNRESET before the server read it,
// and is sent once more on a new connection, as Node's documentation advises.
export function request(port, method, path, body, token, retried = false) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null :
      (typeof body === 'string' ? body : JSON.stringify(body));
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (data !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(data);
    }
    const req = https.request({ host: '127.0.0.1', port, method, path, headers,
      rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', (e) => {
      if (!retried && req.reusedSocket && e.code === 'ECONNRESET')
        resolve(request(port, method, path, body, token, true));
      else
        reject(e);
    });
    req.setTimeout(10000, () => req.destroy(new Error('request timeout')));
    if (data !== null) req.write(data);
    req.end();
  });
}

// A telemed.v1 client: request/answer by id, pushes collected in order.
export class Client {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.pushes = [];
    this.errors = [];
    this.waiters = [];
  }

  open() {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(this.url, 'telemed.v1', { rejectUnauthorized: false,
        maxPayload: 4 << 20 });
      this.ws.on('open', resolve);
      this.ws.on('error', reject);
      this.closed = new Promise((res) => this.ws.on('close', (code, reason) => {
        this.closeReason = reason.toString();
        res(code);
      }));
      this.ws.on('message', (data) => this.onMessage(JSON.parse(data.toString())));
    });
  }

  onMessage(m) {
    if (m.re !== undefined && m.re !== null && this.pending.has(m.re)) {
      const p = this.pending.get(m.re);
      this.pending.delete(m.re);
      if (m.type === 'error') {
        const e = new Error(`${m.code}: ${m.message}`);
        e.code = m.code;
        e.reason = m.reason;
        p.reject(e);
      } else {
        p.resolve(m.data);
      }
      return;
    }
    if (m.type === 'error') this.errors.push(m);
    else this.pushes.push(m);
    for (const w of [...this.waiters]) {
      if (w.match(m)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  }

  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  request(type, fields = {}, timeoutMs = 30000) {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`timeout on ${type}`)); }, timeoutMs);
      this.pending.set(id, {
        resolve: (d) => { clearTimeout(timer); resolve(d); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send({ type, id, ...fields });
    });
  }

  // Resolves with the first push (already received or future) matching.
  // The timeouts here are caps for a wedged server, not latency targets:
  // a loaded machine under ASan takes seconds where an idle one takes ms.
  waitFor(type, pred = () => true, timeoutMs = 30000, { includeSeen = true } = {}) {
    const match = (m) => m.type === type && pred(m);
    if (includeSeen) {
      const seen = this.pushes.find(match);
      if (seen) { this.pushes.splice(this.pushes.indexOf(seen), 1); return Promise.resolve(seen); }
    }
    return new Promise((resolve, reject) => {
      const w = { match: (m) => {
        if (!match(m)) return false;
        this.pushes.splice(this.pushes.indexOf(m), 1);
        return true;
      }, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${type} push within ${timeoutMs} ms; got ${JSON.stringify(this.pushes.map((p) => p.type))}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  waitError(pred = () => true, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const start = Date.now();
      const poll = () => {
        const e = this.errors.find(pred);
        if (e) { this.errors.splice(this.errors.indexOf(e), 1); resolve(e); return; }
        if (Date.now() - start > timeoutMs) { reject(new Error('no matching error')); return; }
        setTimeout(poll, 20);
      };
      poll();
    });
  }

  close() { this.ws.close(); return this.closed; }
  drop() { this.ws.terminate(); return this.closed; }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn (sync or async) until it returns something truthy, which it
// resolves with; fails after capMs. For counts, not for timing.
export async function waitUntil(what, fn, capMs = 30000) {
  const end = Date.now() + capMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// Departments, doctors and shifts through the REST API, as an admin would.
export async function setupHospital(srv, { depts = ['cardio'], doctors = [['d1', 'cardio']], capacity = 1 } = {}) {
  const admin = srv.token('admin-1', 'admin');
  for (const d of depts) {
    const r = await srv.api('POST', '/api/v1/departments', { id: d, name: `Dept ${d}` }, admin);
    if (r.status !== 201) throw new Error(`dept: ${r.status} ${r.text}`);
  }
  const now = Date.now();
  for (const [id, dept] of doctors) {
    let r = await srv.api('POST', '/api/v1/doctors', { id, name: `Dr ${id}`, dept_id: dept, licence_no: `LIC-${id}` }, admin);
    if (r.status !== 201) throw new Error(`doctor: ${r.status} ${r.text}`);
    r = await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: dept,
      start: new Date(now - 3600e3).toISOString(), end: new Date(now + 3600e3).toISOString(), capacity }, admin);
    if (r.status !== 201) throw new Error(`shift: ${r.status} ${r.text}`);
  }
  return admin;
}

// One visit through the protocol with doctor d1 of cardio: check-in, offer,
// accept, signed note, end, and a rating unless `score` is null. Returns the
// visit id.
export async function fullVisit(srv, patientId, { reason = 'completed', note = 'n', score = 4 } = {}) {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  await doctor.request('visit.note', { visit_id: ci.visit_id, text: note, diagnosis_code: 'I10', sign: true });
  const advice = reason === 'terminate_and_refer' ? { advice: 'Cardiology clinic, in person today' } : {};
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason, ...advice });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  if (score !== null) await patient.request('visit.rate', { visit_id: ci.visit_id, score });
  await patient.close();
  await doctor.close();
  return ci.visit_id;
}
