// lib_server.mjs - the real telemed-server for the media tests.
//
// Uses the integration harness (tests/integration/lib/server.mjs) when it
// exists, so both suites start the server the same way; otherwise a minimal
// starter of its own: spawn $TELEMED_BIN on loopback with a temp data dir
// and a random JWT secret, wait for `ev=server.listening port=N`, mint
// tokens with `telemed-server token`. stop() kills the server and removes
// the temp dir.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import https from 'node:https';

const HARNESS = process.env.TELEMED_SRC_DIR
  ? path.join(process.env.TELEMED_SRC_DIR, 'tests/integration/lib/server.mjs')
  : new URL('../integration/lib/server.mjs', import.meta.url).pathname;

function bin() {
  const b = process.env.TELEMED_BIN;
  if (!b || !fs.existsSync(b)) throw new Error(`TELEMED_BIN not set or missing (${b})`);
  return b;
}

async function startOwn({ args = [], timeoutMs = 20000 } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'telemed-webrtc-'));
  const secret = crypto.randomBytes(24).toString('hex');
  const child = spawn(bin(), ['--demo=false', '--port', '0', '--data-dir', dataDir, '--listen', '127.0.0.1',
    '--no-consent-required', ...args],
    { env: { ...process.env, TELEMED_JWT_SECRET: secret }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen within ${timeoutMs} ms\n${log}`)), timeoutMs);
    const onData = (d) => {
      log += d;
      if (log.length > 400000) log = log.slice(-200000);
      const m = /ev=server\.listening\b.*?\bport=(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  const srv = {
    port,
    url: `wss://127.0.0.1:${port}/ws`,
    base: `https://127.0.0.1:${port}`,
    dataDir,
    secret,
    child,
    log: () => log,
    token(sub, role, opts = {}) {
      const a = ['token', '--secret', secret, '--sub', sub, '--role', role];
      if (opts.dept) a.push('--dept', opts.dept);
      if (opts.name) a.push('--name', opts.name);
      if (opts.ttl) a.push('--ttl', String(opts.ttl));
      return execFileSync(bin(), a, { encoding: 'utf8' }).trim();
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT'); // at once; SIGTERM would drain (docs/cluster.md)
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await new Promise((r) => child.once('exit', r));
        clearTimeout(t);
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return srv;
}

// Returns the server handle: {port, url, base, token(sub, role, {dept}),
// log(), stop(), harness}. The integration harness's handle is wrapped so
// that url/base are strings and the starter can be swapped.
export async function startServer(opts = {}) {
  if (fs.existsSync(HARNESS) && !process.env.TM_WEBRTC_OWN_STARTER) {
    const h = await import(HARNESS);
    const s = await h.startServer(opts);
    return {
      get port() { return s.port; },
      get url() { return s.url(); },
      get base() { return s.base(); },
      dataDir: s.dataDir,
      secret: s.secret,
      harness: h,
      raw: s,
      token: (sub, role, o = {}) => s.token(sub, role, o.dept ? { dept: o.dept } : {}),
      log: () => s.logs,
      stop: () => s.stop(),
    };
  }
  return startOwn(opts);
}

// A JSON request to the server's REST API (self-signed TLS accepted).
export function api(srv, method, p, { token, body } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = https.request(`${srv.base}${p}`, {
      method, rejectUnauthorized: false, timeout: 10000,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}),
      },
    }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => {
        let json = null;
        try { json = s ? JSON.parse(s) : null; } catch { /* not json */ }
        resolve({ status: res.statusCode, body: json, json, text: s });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: timeout`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}
