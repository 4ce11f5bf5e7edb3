// haproxy.test.mjs - Debian's haproxy in front of two telemed nodes on
// loopback (issue 19), with the configuration docs/cluster.md gives (its
// haproxy block, loopback addresses and free ports put in): TLS passes
// through to the nodes, which HAProxy checks on /healthz over TLS.
// - a signaling connection and an HTTPS API call through the balancer
//   reach a node, and a visit runs over it;
// - that node is drained through the balancer (the admin call): HAProxy
//   marks it DOWN from its 503, new connections and calls go to the other
//   node, while the visit's WebSockets on the drained node carry on until
//   the visit ends; then the drained node exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, setupHospital, request, Client, waitUntil } from '../integration/lib/server.mjs';
import { SRC_DIR, freePort } from '../web/lib.mjs';

const HAPROXY = process.env.HAPROXY_BIN || '/usr/sbin/haproxy';

// The ```haproxy block of docs/cluster.md, made to run here.
function haproxyConfig(dir, port, nodes) {
  const doc = readFileSync(join(SRC_DIR, 'docs', 'cluster.md'), 'utf8');
  const block = /```haproxy\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/cluster.md has a haproxy block');
  const out = [];
  for (const line of block[1].split('\n')) {
    const word = line.trim().split(/\s+/)[0];
    if (word === 'log' || line.includes('option tcplog')) continue; // no syslog here
    if (word === 'maxconn') out.push('    maxconn 1000'); // two files each: within a test's open-file limit
    else if (word === 'stats') out.push(`    stats socket ${join(dir, 'admin.sock')} mode 600 level admin`);
    else if (word === 'bind') out.push(`    bind 127.0.0.1:${port}`);
    else if (word === 'server') {
      if (!out.some((l) => l.includes('server node-'))) {
        for (const [name, p] of nodes) out.push(`    server ${name} 127.0.0.1:${p}`);
      }
    } else out.push(line);
  }
  const text = out.join('\n');
  assert.match(text, /check-ssl verify none/);
  return text;
}

function startHaproxy(cfgPath) {
  const proc = spawn(HAPROXY, ['-db', '-f', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const h = { proc, logs: '' };
  proc.stdout.on('data', (d) => { h.logs += d; });
  proc.stderr.on('data', (d) => { h.logs += d; });
  h.exited = new Promise((res) => proc.on('exit', (code, sig) => res({ code, sig })));
  return h;
}

// HAProxy's own view of the nodes: name -> status (UP, DOWN, ...).
function serverStates(sock) {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let text = '';
    c.on('error', reject);
    c.on('data', (d) => { text += d; });
    c.on('end', () => {
      const lines = text.trim().split('\n');
      const head = lines[0].replace(/^# /, '').split(',');
      const [px, sv, st] = ['pxname', 'svname', 'status'].map((k) => head.indexOf(k));
      const states = {};
      for (const l of lines.slice(1)) {
        const f = l.split(',');
        if (f[px] === 'telemed_nodes' && f[sv].startsWith('node-')) states[f[sv]] = f[st];
      }
      resolve(states);
    });
    c.write('show stat\n');
  });
}

test('HAProxy passes WSS and HTTPS through and takes a draining node out of rotation', { timeout: 240000 }, async (t) => {
  const secret = randomBytes(16).toString('hex');
  const nodes = {
    'node-1': await startServer({ secret, args: ['--node-id', 'node-1'] }),
    'node-2': await startServer({ secret, args: ['--node-id', 'node-2'] }),
  };
  for (const srv of Object.values(nodes)) srv.admin = await setupHospital(srv);
  const dir = mkdtempSync(join(tmpdir(), 'telemed-haproxy-'));
  const lbPort = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(dir, lbPort, Object.entries(nodes).map(([n, s]) => [n, s.port])));
  const lb = startHaproxy(cfg);
  t.after(async () => {
    lb.proc.kill('SIGTERM');
    await lb.exited;
    for (const srv of Object.values(nodes)) await srv.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  const sock = join(dir, 'admin.sock');
  await waitUntil('both nodes UP in HAProxy', async () => {
    const s = await serverStates(sock).catch(() => ({}));
    if (lb.proc.exitCode !== null) throw new Error(`haproxy exited:\n${lb.logs}`);
    return s['node-1'] === 'UP' && s['node-2'] === 'UP';
  }, 60000).catch((e) => { throw new Error(`${e.message}\n${lb.logs}`); });

  const viaLb = (sub, role) => {
    const c = new Client(`wss://127.0.0.1:${lbPort}/ws`);
    return c.open().then(async () => {
      c.hello = await c.request('hello', { token: nodes['node-1'].token(sub, role), ua: 'node-test/1' });
      return c;
    });
  };

  // One source address: balance source sends everything to one node.
  const health = await request(lbPort, 'GET', '/healthz');
  assert.equal(health.status, 200);
  const first = health.json.node;
  const other = first === 'node-1' ? 'node-2' : 'node-1';
  const drained = nodes[first];

  const doctor = await viaLb('d1', 'doctor');
  const patient = await viaLb('p-lb', 'patient');
  assert.equal(doctor.hello.node, first);
  assert.equal(patient.hello.node, first);
  const depts = await request(lbPort, 'GET', '/api/v1/departments', undefined, drained.admin);
  assert.equal(depts.status, 200, 'an HTTPS API call through the balancer');
  assert.deepEqual(depts.json.departments.map((d) => d.id), ['cardio']);

  await doctor.request('doctor.status', { status: 'available' });
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');

  await t.test('the drain call through the balancer takes the node out of rotation', async () => {
    const r = await request(lbPort, 'POST', '/api/v1/admin/drain', {}, drained.admin);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.node, first);
    await waitUntil('HAProxy marks the draining node DOWN', async () =>
      (await serverStates(sock))[first].startsWith('DOWN'), 60000);
    assert.equal((await serverStates(sock))[other], 'UP');
  });

  await t.test('new connections and calls go to the other node', async () => {
    for (let i = 0; i < 5; i++) {
      const h = await request(lbPort, 'GET', '/healthz');
      assert.equal(h.status, 200);
      assert.equal(h.json.node, other);
      const c = await viaLb(`p-new-${i}`, 'patient');
      assert.equal(c.hello.node, other);
      await c.close();
    }
  });

  await t.test('the visit on the drained node carries on until it ends, then the node exits 0', async () => {
    await patient.request('chat.send', { visit_id: ci.visit_id, text: 'through the balancer' });
    assert.equal((await doctor.waitFor('chat.message')).text, 'through the balancer');
    await doctor.request('chat.send', { visit_id: ci.visit_id, text: 'still on node ' + first });
    await patient.waitFor('chat.message', (m) => m.from === 'd1');
    assert.equal(drained.proc.exitCode, null);
    await doctor.request('visit.note', { visit_id: ci.visit_id, text: 'n', diagnosis_code: 'I10', sign: true });
    await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
    await patient.waitFor('visit.state', (m) => m.state === 'ended');
    const { code } = await drained.exited;
    assert.equal(code, 0);
    assert.match(drained.logs, /ev=node\.drained/);
  });
  assert.equal(lb.proc.exitCode, null, `haproxy still runs:\n${lb.logs}`);
});
