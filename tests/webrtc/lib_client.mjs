// lib_client.mjs - runs the reference WebRTC peer (webrtc_client, built
// from webrtc_client.c) as a child process and reads its `event=` progress
// lines and final `result` / `stream` / `fail` lines.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function clientBin() {
  const cands = [
    process.env.TELEMED_WEBRTC_CLIENT,
    process.env.TELEMED_BUILD_DIR && path.join(process.env.TELEMED_BUILD_DIR, 'webrtc_client'),
    process.env.TELEMED_BIN && path.join(path.dirname(process.env.TELEMED_BIN), 'webrtc_client'),
  ].filter(Boolean);
  const bin = cands.find((p) => fs.existsSync(p));
  if (!bin) throw new Error(`webrtc_client not found (looked in ${cands.join(', ')})`);
  return bin;
}

// Parses "k=v k2=\"v v\"" into an object.
export function parseKv(line) {
  const out = {};
  const re = /(\w+)=("([^"]*)"|\S*)/g;
  let m;
  while ((m = re.exec(line))) out[m[1]] = m[3] !== undefined ? m[3] : m[2];
  return out;
}

// Starts webrtc_client with args (array). Returns a handle:
//   events: parsed event lines; waitEvent(name, ms); done: Promise<{code, result, streams, fail, out}>
//   kill()
export function runClient(args, { name = 'client', echo = !!process.env.TM_TEST_VERBOSE } = {}) {
  const child = spawn(clientBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const h = { child, events: [], lines: [], stderr: '', waiters: [] };
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      h.lines.push(line);
      if (echo) console.log(`[${name}] ${line}`);
      if (line.startsWith('event=')) {
        const ev = parseKv(line);
        h.events.push(ev);
        for (const w of [...h.waiters]) {
          if (w.pred(ev)) {
            h.waiters.splice(h.waiters.indexOf(w), 1);
            w.resolve(ev);
          }
        }
      }
    }
  });
  child.stderr.on('data', (d) => {
    h.stderr += d;
    if (h.stderr.length > 200000) h.stderr = h.stderr.slice(-100000);
    if (echo) process.stderr.write(`[${name}!] ${d}`);
  });
  h.done = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      const resLine = h.lines.find((l) => l.startsWith('result '));
      const failLine = h.lines.find((l) => l.startsWith('fail '));
      resolve({
        code: code ?? (signal ? 128 : -1), signal,
        result: resLine ? parseKv(resLine) : null,
        streams: h.lines.filter((l) => l.startsWith('stream ')).map(parseKv),
        fail: failLine ? parseKv(failLine).reason : null,
        out: h.lines.join('\n'), stderr: h.stderr,
      });
      for (const w of h.waiters) w.reject(new Error(`${name} exited (${code}) before event`));
      h.waiters = [];
    });
  });
  h.waitEvent = (evName, timeoutMs = 30000, pred = () => true) => {
    const hit = h.events.find((e) => e.event === evName && pred(e));
    if (hit) return Promise.resolve(hit);
    if (child.exitCode !== null) return Promise.reject(new Error(`${name} already exited`));
    return new Promise((resolve, reject) => {
      const w = { pred: (e) => e.event === evName && pred(e), resolve, reject };
      h.waiters.push(w);
      setTimeout(() => {
        const i = h.waiters.indexOf(w);
        if (i >= 0) {
          h.waiters.splice(i, 1);
          reject(new Error(`${name}: no event=${evName} within ${timeoutMs} ms\n${h.lines.join('\n')}\n${h.stderr.slice(-3000)}`));
        }
      }, timeoutMs);
    });
  };
  h.kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  return h;
}

// A one-line explanation of a finished client for assertion messages.
export function describe(name, r) {
  return `${name} exit=${r.code} fail=${r.fail}\n${r.out}\n--- stderr ---\n${r.stderr.slice(-4000)}`;
}
