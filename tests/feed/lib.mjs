// lib.mjs - helpers of the feed tests: a throwaway PKI made with the openssl
// command, and the feed harness (tests/feed/feed_harness.c: the real store and
// feed on a main loop) as a child process.
//
// The harness stands in for telemed-server until the server wires the feed;
// the tests only need "a process that owns the store and runs the feed",
// which is what it is.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export function tmpDir(prefix = 'tm-feed-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function harnessPath() {
  if (process.env.FEED_HARNESS) return process.env.FEED_HARNESS;
  const build = process.env.TELEMED_BUILD_DIR;
  if (!build) throw new Error('set TELEMED_BUILD_DIR (ctest does) or FEED_HARNESS');
  return path.join(build, 'feed_harness');
}

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function issue(dir, name, caName, ext) {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
    '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`,
    '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

function makeCa(dir, name) {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout',
    `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir);
}

// Two CAs: "ca" (the one the feed trusts) and "rogue" (one it does not),
// a server certificate for 127.0.0.1 from each, and a client certificate
// from a third CA for mutual TLS. Returns file paths and contents.
export function makePki(dir) {
  makeCa(dir, 'ca');
  makeCa(dir, 'rogue');
  makeCa(dir, 'clientca');
  const srvExt = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
  issue(dir, 'server', 'ca', srvExt);
  issue(dir, 'rogueserver', 'rogue', srvExt);
  issue(dir, 'client', 'clientca', 'extendedKeyUsage=clientAuth\n');
  const p = (f) => path.join(dir, f);
  const r = (f) => fs.readFileSync(p(f));
  return {
    caFile: p('ca.crt'),
    server: { key: r('server.key'), cert: r('server.crt') },
    rogue: { key: r('rogueserver.key'), cert: r('rogueserver.crt') },
    clientCa: r('clientca.crt'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
  };
}

// Starts the harness: `args` are telemed config flags, `steps` the harness
// steps (see feed_harness.c). Returns { proc, lines, visits, status, dead,
// exited (promise of the exit code), waitLine(re) }.
// `bin` is another harness built the same way (default: feed_harness).
export function startHarness(args, steps, bin = harnessPath()) {
  const proc = spawn(bin, [...args, '--', ...steps], { stdio: ['ignore', 'pipe', 'pipe'] });
  const h = { proc, lines: [], visits: [], status: null, dead: null, stderr: '' };
  const waiters = [];
  proc.stderr.on('data', (d) => {
    h.stderr += d;
    if (process.env.FEED_TEST_VERBOSE) process.stderr.write(d);
  });
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    h.lines.push(line);
    if (line.startsWith('visit ')) h.visits.push(line.slice(6));
    else if (line.startsWith('status ')) h.status = JSON.parse(line.slice(7));
    else if (line.startsWith('dead ')) h.dead = JSON.parse(line.slice(5));
    for (const w of [...waiters]) if (w.re.test(line)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  h.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal)));
  // Resolves once the harness has reported `n` visits; rejects when it exits
  // first or `capMs` passes (a cap for a wedged harness, far above the need).
  h.waitVisits = (n, capMs = 60000) =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        if (h.visits.length >= n) done(resolve);
        else if (h.proc.exitCode !== null || h.proc.signalCode !== null)
          done(() => reject(new Error(`harness exited after ${h.visits.length} of ${n} visits: ${h.stderr}`)));
        else if (Date.now() - t0 > capMs)
          done(() => reject(new Error(`${h.visits.length} of ${n} visits after ${capMs} ms`)));
      }, 10);
      const done = (f) => {
        clearInterval(poll);
        f();
      };
    });
  h.waitLine = (re) =>
    new Promise((resolve, reject) => {
      const found = h.lines.find((l) => re.test(l));
      if (found) return resolve(found);
      waiters.push({ re, resolve });
      h.exited.then(() => reject(new Error(`harness exited before ${re}: ${h.stderr}`)));
    });
  return h;
}

// Runs the harness to completion; rejects on a non-zero exit.
export async function runHarness(args, steps, bin = harnessPath()) {
  const h = startHarness(args, steps, bin);
  const code = await h.exited;
  if (code !== 0) throw new Error(`feed_harness ${steps.join(' ')} exited ${code}: ${h.stderr}`);
  return h;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves once pred() holds, polled every 20 ms; rejects after capMs (a cap
// for a wedged process, far above what a loaded machine needs).
export async function until(pred, what, capMs = 30000) {
  for (const end = Date.now() + capMs; !pred(); await sleep(20))
    if (Date.now() > end) throw new Error(`not within ${capMs} ms: ${what}`);
}

export const VISIT_TYPES = ['visit.checked_in', 'visit.started', 'visit.ended', 'visit.note_signed', 'visit.rated'];

// Every visit has its five events, once each, in seq order.
export function checkVisits(assert, byVisit, visitIds) {
  for (const id of visitIds) {
    const evs = byVisit.get(id) ?? [];
    assert.deepEqual(evs.map((e) => e.type), VISIT_TYPES, `events of ${id}`);
    for (let i = 1; i < evs.length; i++) assert.ok(evs[i].seq > evs[i - 1].seq, `seq order of ${id}`);
  }
}
