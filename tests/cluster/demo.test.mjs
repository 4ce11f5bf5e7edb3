// demo.test.mjs - the three-node try-out command of docs/cluster.md
// (tools/cluster-demo, issue 19) run as a newcomer would, on free loopback
// ports: it starts a PostgreSQL, three nodes and HAProxy, and prints the
// demo links through the balancer; each node and the balancer answer
// /healthz, a demo patient checks in through the balancer with the printed
// link's token, every node's first bus connect is clean in its log, and
// Ctrl-C (SIGINT to its process group) leaves nothing running and no
// directory behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { BIN, request, Client, waitUntil } from '../integration/lib/server.mjs';
import { SRC_DIR, freePort } from '../web/lib.mjs';

const SCRIPT = join(SRC_DIR, 'tools', 'cluster-demo');

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const listening = (port) => new Promise((resolve) => {
  const c = net.createConnection({ host: '127.0.0.1', port });
  c.on('connect', () => { c.destroy(); resolve(true); });
  c.on('error', () => resolve(false));
});

test('tools/cluster-demo starts three nodes behind HAProxy and Ctrl-C stops them all', { timeout: 600000 }, async (t) => {
  const lb = await freePort();
  const nodePorts = [await freePort(), await freePort(), await freePort()];
  // Its own process group, as a terminal's foreground job: Ctrl-C reaches all of it.
  const proc = spawn(SCRIPT, ['--bin', BIN, '--port', String(lb), '--node-ports', nodePorts.join(',')],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((res) => proc.on('exit', (code, sig) => res({ code, sig })));
  t.after(() => { if (proc.exitCode === null) process.kill(-proc.pid, 'SIGINT'); });

  await waitUntil('the try-out says it is ready', () => {
    if (proc.exitCode !== null) throw new Error(`cluster-demo exited ${proc.exitCode}:\n${out}`);
    return /cluster-demo: ready/.test(out);
  }, 480000);
  const [, pgPort, dir] = /PostgreSQL at postgresql:\/\/\S+:(\d+)\/\S+ \((\S+)\/pg\)/.exec(out);
  const pids = [...out.matchAll(/\(pid (\d+),|\(haproxy pid (\d+),/g)].map((m) => Number(m[1] || m[2]));
  assert.equal(pids.length, 4, out);
  const patientLink = /patient p-demo-1\s+(\S+)/.exec(out)[1];
  assert.ok(patientLink.startsWith(`https://127.0.0.1:${lb}/patient.html#token=`), patientLink);

  await t.test('each node and the balancer answer /healthz', async () => {
    for (const [i, port] of nodePorts.entries()) {
      const h = await request(port, 'GET', '/healthz');
      assert.equal(h.status, 200);
      assert.equal(h.json.node, `node-${i + 1}`);
    }
    // HAProxy sends nothing until its checks found a node up.
    const h = await waitUntil('the balancer answers', async () => {
      const r = await request(lb, 'GET', '/healthz').catch(() => null);
      return r && r.status === 200 && r;
    }, 60000);
    assert.match(h.json.node, /^node-[123]$/);
  });

  await t.test('a demo patient checks in through the balancer', async () => {
    const token = patientLink.split('#token=')[1];
    const p = new Client(`wss://127.0.0.1:${lb}/ws`);
    await p.open();
    const hello = await p.request('hello', { token, ua: 'cluster-demo-test/1' });
    assert.match(hello.node, /^node-[123]$/);
    const { version } = await p.request('consent.get', {});
    const ci = await p.request('checkin', { dept: 'cardiology', kind: 'follow_up',
      consent: { version, recording: true } });
    assert.equal(ci.position, 1);
    await p.close();
  });

  await t.test("every node's first bus connect is clean", () => {
    for (const n of [1, 2, 3]) {
      const log = readFileSync(join(dir, `node-${n}.log`), 'utf8');
      assert.match(log, /ev=cluster\.bus_ready node=node-\d reconnect=0/);
      assert.doesNotMatch(log, /ev=cluster\.bus_down/);
    }
  });

  await t.test('Ctrl-C stops everything and removes the directory', async () => {
    process.kill(-proc.pid, 'SIGINT');
    const { code } = await exited;
    assert.equal(code, 0, out);
    assert.match(out, /cluster-demo: stopped/);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still runs`);
    for (const port of [lb, ...nodePorts, Number(pgPort)]) assert.equal(await listening(port), false, `port ${port}`);
    assert.equal(existsSync(dir), false, `${dir} is left`);
  });
});
