// regulator.mjs - a stand-in for the regulator's supervision platform, for
// the feed tests and the benchmark. Node built-ins only.
//
// It accepts POSTed batches ({"schema_version":1,"events":[...]}), verifies
// the X-Telemed-Signature HMAC over "<X-Telemed-Timestamp>.<raw body>",
// de-duplicates events by id, and checks that each visit's events arrive in
// seq order. Faults on demand: fail the next N requests with a status (and
// Retry-After), hang them, close the connection mid-response, go down
// (stop listening) and come back on the same port, swap the TLS certificate.
//
// In-process use (tests):
//   const reg = await startRegulator({ secret, tls: { key, cert, ca?, requestCert? } });
//   reg.url; reg.failNext(3, 503); reg.hangNext(1); reg.closeNext(1);
//   await reg.down(); await reg.up(); reg.setCert({ key, cert });
//   reg.reject = (ev) => bool (answer 400); reg.delayMs = 20;
//   reg.events (unique, arrival order), reg.byVisit(), reg.stats(); await reg.close();
// Out of process (bench, by hand): node regulator.mjs [--port N] [--secret S]
//   [--key F --cert F]; prints {"url":...,"admin":...} on one line; control
//   it with the admin API on the same port:
//   GET /__admin/state, POST /__admin/fail {"count","status","retry_after","body"},
//   POST /__admin/hang {"count"}, POST /__admin/close {"count"}, POST /__admin/reset.

import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { pathToFileURL } from 'node:url';
import fs from 'node:fs';

export function sign(secret, ts, body) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(`${ts}.`).update(body).digest('hex');
}

function safeEqual(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

export async function startRegulator(opts = {}) {
  const secret = opts.secret ?? null;
  const maxSkewS = opts.maxSkewS ?? 300;
  const faults = []; // {kind: 'fail'|'hang'|'close', status, retryAfter, body}
  const hung = new Set();
  const sockets = new Set();
  const state = {
    requests: 0,
    accepted: 0, // requests answered 2xx
    duplicates: 0,
    badSignatures: 0,
    orderViolations: [],
    events: [], // unique by id, arrival order; each {event, receivedAt}
  };
  const seen = new Map(); // id -> entry
  const lastSeq = new Map(); // visit_id -> highest seq seen
  const listeners = [];

  function record(events) {
    const now = Date.now();
    let dup = 0;
    for (const ev of events) {
      if (seen.has(ev.id)) {
        dup++;
        continue;
      }
      const entry = { event: ev, receivedAt: now };
      seen.set(ev.id, entry);
      state.events.push(entry);
      const prev = lastSeq.get(ev.visit_id);
      if (prev !== undefined && ev.seq < prev)
        state.orderViolations.push({ visit_id: ev.visit_id, seq: ev.seq, after: prev });
      if (prev === undefined || ev.seq > prev) lastSeq.set(ev.visit_id, ev.seq);
    }
    state.duplicates += dup;
    for (const fn of listeners) fn();
    return dup;
  }

  function reply(res, status, obj, headers = {}) {
    const body = typeof obj === 'string' ? obj : JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  }

  function admin(req, res, body) {
    const path = req.url.replace(/\?.*$/, '');
    let args = {};
    try {
      args = body.length ? JSON.parse(body) : {};
    } catch {
      return reply(res, 400, { error: 'bad json' });
    }
    if (path === '/__admin/state') return reply(res, 200, api.stats(true));
    if (path === '/__admin/fail') {
      api.failNext(args.count ?? 1, args.status ?? 503, { retryAfter: args.retry_after, body: args.body });
      return reply(res, 200, { ok: true });
    }
    if (path === '/__admin/hang') return api.hangNext(args.count ?? 1), reply(res, 200, { ok: true });
    if (path === '/__admin/close') return api.closeNext(args.count ?? 1), reply(res, 200, { ok: true });
    if (path === '/__admin/reset') return api.reset(), reply(res, 200, { ok: true });
    return reply(res, 404, { error: 'no such admin call' });
  }

  function handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      if (req.url.startsWith('/__admin/')) return admin(req, res, raw.toString());
      state.requests++;
      const fault = faults.length ? faults.shift() : null;
      if (fault?.kind === 'hang') {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      if (fault?.kind === 'close') {
        // Headers and half a body, then the connection goes away.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"accep');
        setTimeout(() => req.socket.destroy(), 5);
        return;
      }
      if (fault?.kind === 'fail') {
        const headers = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
        return reply(res, fault.status, fault.body ?? { error: `injected ${fault.status}` }, headers);
      }
      if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' });
      if (secret !== null) {
        const ts = req.headers['x-telemed-timestamp'];
        const sig = req.headers['x-telemed-signature'];
        const skew = Math.abs(Date.now() / 1000 - Number(ts));
        if (!ts || !sig || !(skew <= maxSkewS) || !safeEqual(sig, sign(secret, ts, raw))) {
          state.badSignatures++;
          return reply(res, 401, { error: 'bad signature' });
        }
      }
      let doc;
      try {
        doc = JSON.parse(raw.toString('utf8'));
      } catch {
        return reply(res, 400, { error: 'body is not JSON' });
      }
      if (doc?.schema_version !== 1 || !Array.isArray(doc.events))
        return reply(res, 400, { error: 'expected schema_version 1 and events[]' });
      for (const ev of doc.events) {
        if (typeof ev?.id !== 'string' || typeof ev.seq !== 'number' || typeof ev.visit_id !== 'string')
          return reply(res, 422, { error: 'event without id, seq or visit_id' });
        if (api.reject && api.reject(ev)) return reply(res, 400, { error: 'rejected', id: ev.id });
      }
      const answer = () => {
        state.accepted++;
        const dup = record(doc.events);
        reply(res, 200, { accepted: doc.events.length - dup, duplicates: dup });
      };
      // A slow regulator: the batch counts as received only when answered.
      if (api.delayMs > 0) setTimeout(answer, api.delayMs);
      else answer();
    });
  }

  let server;
  let tlsOpts = null;
  if (opts.tls) {
    tlsOpts = { key: opts.tls.key, cert: opts.tls.cert };
    if (opts.tls.ca) {
      tlsOpts.ca = opts.tls.ca;
      tlsOpts.requestCert = !!opts.tls.requestCert;
      tlsOpts.rejectUnauthorized = !!opts.tls.requestCert;
    }
    server = https.createServer(tlsOpts, handle);
  } else {
    server = http.createServer(handle);
  }
  server.keepAliveTimeout = 30000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {
    state.tlsErrors = (state.tlsErrors ?? 0) + 1;
  });

  const listen = (port) =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve(server.address().port);
      });
    });
  let port = await listen(opts.port ?? 0);
  let up = true;
  const scheme = opts.tls ? 'https' : 'http';

  function dropConnections() {
    for (const res of hung) res.destroy();
    hung.clear();
    for (const s of sockets) s.destroy();
    sockets.clear();
  }

  const api = {
    // reject(event) -> true answers the whole batch 400 (a data error); delayMs slows answers.
    reject: opts.reject ?? null,
    delayMs: opts.delayMs ?? 0,
    get url() {
      return `${scheme}://127.0.0.1:${port}/events`;
    },
    get port() {
      return port;
    },
    get events() {
      return state.events.map((e) => e.event);
    },
    get entries() {
      return state.events;
    },
    failNext(count, status, { retryAfter, body } = {}) {
      for (let i = 0; i < count; i++) faults.push({ kind: 'fail', status, retryAfter, body });
    },
    hangNext(count = 1) {
      for (let i = 0; i < count; i++) faults.push({ kind: 'hang' });
    },
    closeNext(count = 1) {
      for (let i = 0; i < count; i++) faults.push({ kind: 'close' });
    },
    clearFaults() {
      faults.length = 0;
    },
    setCert({ key, cert }) {
      server.setSecureContext({ ...tlsOpts, key, cert });
      dropConnections(); // kept-alive connections would keep the old certificate
    },
    // Outage: stop accepting and drop every connection; up() listens on the same port.
    async down() {
      if (!up) return;
      up = false;
      const closed = new Promise((r) => server.close(() => r()));
      dropConnections();
      await closed;
    },
    async up() {
      if (up) return;
      port = await listen(port);
      up = true;
    },
    byVisit() {
      const m = new Map();
      for (const { event } of state.events) {
        if (!m.has(event.visit_id)) m.set(event.visit_id, []);
        m.get(event.visit_id).push(event);
      }
      return m;
    },
    stats(withEvents = false) {
      const s = {
        requests: state.requests,
        accepted: state.accepted,
        unique: state.events.length,
        duplicates: state.duplicates,
        badSignatures: state.badSignatures,
        orderViolations: state.orderViolations,
        tlsErrors: state.tlsErrors ?? 0,
        pendingFaults: faults.length,
      };
      if (withEvents) s.events = state.events.map((e) => ({ ...e.event, received_at: e.receivedAt }));
      return s;
    },
    reset() {
      faults.length = 0;
      seen.clear();
      lastSeq.clear();
      state.events.length = 0;
      state.orderViolations.length = 0;
      Object.assign(state, { requests: 0, accepted: 0, duplicates: 0, badSignatures: 0, tlsErrors: 0 });
    },
    // Resolves when pred() holds (checked on each recorded batch), or rejects after ms.
    waitFor(pred, ms = 30000, what = 'condition') {
      return new Promise((resolve, reject) => {
        if (pred()) return resolve();
        const t = setTimeout(() => {
          listeners.splice(listeners.indexOf(check), 1);
          reject(new Error(`regulator: timed out after ${ms} ms waiting for ${what}; ${JSON.stringify(api.stats())}`));
        }, ms);
        const check = () => {
          if (!pred()) return;
          clearTimeout(t);
          listeners.splice(listeners.indexOf(check), 1);
          resolve();
        };
        listeners.push(check);
      });
    },
    async close() {
      faults.length = 0;
      if (up) {
        const closed = new Promise((r) => server.close(() => r()));
        dropConnections();
        await closed;
        up = false;
      }
    },
  };
  return api;
}

// Command line: run until killed.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const key = arg('key');
  const cert = arg('cert');
  const reg = await startRegulator({
    port: Number(arg('port', '0')),
    secret: arg('secret', null),
    tls: key && cert ? { key: fs.readFileSync(key), cert: fs.readFileSync(cert) } : null,
  });
  const admin = reg.url.replace(/\/events$/, '/__admin/state');
  process.stdout.write(JSON.stringify({ url: reg.url, admin }) + '\n');
  process.on('SIGTERM', async () => {
    await reg.close();
    process.exit(0);
  });
}
