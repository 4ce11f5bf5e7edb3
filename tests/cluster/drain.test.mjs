// drain.test.mjs - a node taken out of service (issue 19, docs/cluster.md),
// against two real telemed-servers on loopback, each on its own SQLite file
// and the same token secret:
// - /healthz names the node and says it takes visits; /metrics labels every
//   sample with it;
// - the admin call refuses a patient, a doctor and a scoped supervisor
//   (403), starts the drain for an admin and is idempotent the second time;
// - while draining: /healthz 503, a check-in is refused with node_draining,
//   the waiting patient and a newcomer are told server.draining with the
//   other node's URL and closed (4503), the wait staying on record past its
//   grace period, and the live visit goes on (chat, note) until it ends;
//   then the process exits 0 by itself;
// - SIGTERM drains the same way, a second SIGTERM stops at once; SIGINT
//   stops at once as it always did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, setupHospital, Client, waitUntil } from '../integration/lib/server.mjs';

async function activeVisit(srv, patientId) {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  return { doctor, patient, visitId: ci.visit_id };
}

async function endVisit({ doctor, patient, visitId }) {
  await doctor.request('visit.note', { visit_id: visitId, text: 'n', diagnosis_code: 'I10', sign: true });
  await doctor.request('visit.end', { visit_id: visitId, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
}

// The exit of a server stopped by itself (or by a signal we sent): code and signal.
async function exitOf(srv, capMs = 60000) {
  let timer;
  const cap = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no exit:\n${srv.logs.slice(-3000)}`)), capMs); });
  try { return await Promise.race([srv.exited, cap]); } finally { clearTimeout(timer); }
}

test('a drained node finishes its live visit, sends everyone else to the other node, then exits 0', { timeout: 240000 }, async (t) => {
  const secret = randomBytes(16).toString('hex');
  const b = await startServer({ secret, args: ['--node-id', 'node-b'] });
  const a = await startServer({ secret, args: ['--node-id', 'node-a', '--cluster-urls', b.base(), '--grace-s', '2'] });
  t.after(async () => { await a.stop().catch(() => {}); await b.stop(); });
  const admin = await setupHospital(a);

  await t.test('healthz and metrics name the node', async () => {
    const h = await a.api('GET', '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json.node, 'node-a');
    assert.equal(h.json.accepting, true);
    assert.equal(h.json.status, 'ok');
    // The pages may connect to the other node, and only to it.
    assert.match(h.headers['content-security-policy'], new RegExp(`connect-src 'self' wss://127\\.0\\.0\\.1:${b.port}/ws;`));
    const m = await a.api('GET', '/metrics');
    const samples = m.text.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.ok(samples.length > 10);
    for (const l of samples) assert.match(l, /^[a-z_:]+\{node="node-a"[,}]/, l);
    assert.ok(samples.includes('telemed_draining{node="node-a"} 0'));
    assert.match(a.logs, /ev=server\.listening port=\d+ .*node=node-a public_url=https:\/\/127\.0\.0\.1:\d+/);
  });

  const live = await activeVisit(a, 'p-live');
  const waiting = await a.client('p-wait', 'patient');
  const wci = await waiting.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  assert.equal(wci.position, 1);
  assert.deepEqual(waiting.hello.nodes, [`wss://127.0.0.1:${b.port}/ws`]);
  assert.equal(waiting.hello.node, 'node-a');

  await t.test('only an admin or an alliance supervisor may drain', async () => {
    for (const [sub, role, extra] of [['p-x', 'patient', {}], ['d1', 'doctor', {}],
      ['s-scoped', 'supervisor', { inst: 'demo-hospital' }]]) {
      const r = await a.api('POST', '/api/v1/admin/drain', {}, a.token(sub, role, extra));
      assert.equal(r.status, 403, `${role}: ${r.text}`);
    }
    assert.equal((await a.api('POST', '/api/v1/admin/drain', {})).status, 401);
    assert.equal((await a.api('GET', '/api/v1/admin/drain', undefined, a.token('p-x', 'patient'))).status, 403);
    const before = await a.api('GET', '/api/v1/admin/drain', undefined, admin);
    assert.equal(before.status, 200);
    assert.equal(before.json.draining, false);
    assert.equal(before.json.live_visits, 1);
    assert.equal((await a.api('GET', '/healthz')).status, 200, 'a refused call drains nothing');
    const audit = a.sql("SELECT outcome FROM audit_log WHERE action = 'node.drain'");
    assert.equal(audit.length, 3);
    assert.ok(audit.every((r) => r.outcome === 'denied'));
  });

  await t.test('the drain starts once; a second call changes nothing', async () => {
    const first = await a.api('POST', '/api/v1/admin/drain', {}, admin);
    assert.equal(first.status, 202, first.text);
    assert.equal(first.json.started, true);
    assert.equal(first.json.draining, true);
    assert.equal(first.json.node, 'node-a');
    const again = await a.api('POST', '/api/v1/admin/drain', {}, admin);
    assert.equal(again.status, 202);
    assert.equal(again.json.started, false);
    assert.equal(again.json.since, first.json.since);
    assert.equal(again.json.deadline, first.json.deadline);
    const status = await a.api('GET', '/api/v1/admin/drain', undefined, admin);
    assert.equal(status.json.live_visits, 1);
    const h = await a.api('GET', '/healthz');
    assert.equal(h.status, 503);
    assert.equal(h.json.accepting, false);
    assert.equal(h.json.draining, true);
    const m = await a.api('GET', '/metrics');
    assert.ok(m.text.includes('telemed_draining{node="node-a"} 1'));
  });

  await t.test('the waiting patient is sent to the other node and closed', async () => {
    const told = await waiting.waitFor('server.draining');
    assert.equal(told.node, 'node-a');
    assert.deepEqual(told.nodes, [`wss://127.0.0.1:${b.port}/ws`]);
    assert.equal(await waiting.closed, 4503);
    const there = new Client(told.nodes[0]);
    await there.open();
    const hello = await there.request('hello', { token: b.token('p-wait', 'patient'), ua: 'node-test/1' });
    assert.equal(hello.node, 'node-b');
    await there.close();
    // Its grace period passes on A: the wait stays on record, not cancelled.
    await waitUntil('p-wait grace expired', () => /ev=user\.grace_expired user=patient:p-wait/.test(a.logs));
    assert.equal(a.sql(`SELECT state FROM visits WHERE id = '${wci.visit_id}'`)[0].state, 'waiting');
  });

  await t.test('a newcomer is turned away after hello; a check-in is refused', async () => {
    const late = await a.client('p-late', 'patient');
    assert.equal(late.hello.node, 'node-a');
    await late.waitFor('server.draining');
    assert.equal(await late.closed, 4503);
    await assert.rejects(live.patient.request('checkin', { dept: 'cardio', kind: 'follow_up' }),
      (e) => e.code === 'node_draining');
  });

  await t.test('the live visit goes on to its end, then the node exits 0', async () => {
    await live.patient.request('chat.send', { visit_id: live.visitId, text: 'still here' });
    assert.equal((await live.doctor.waitFor('chat.message')).text, 'still here');
    assert.equal(a.proc.exitCode, null, 'the node waits for its live visit');
    await endVisit(live);
    const { code, sig } = await exitOf(a);
    assert.equal(code, 0, `exit ${code} ${sig}`);
    assert.match(a.logs, /ev=node\.drained node=node-a/);
    assert.match(a.logs, /ev=server\.stopping reason=drained node=node-a timed_out=no/);
    const rows = a.sql("SELECT state FROM visits WHERE patient_id = 'p-live'");
    assert.equal(rows[0].state, 'ended');
  });
});

test('SIGTERM drains; a second SIGTERM, or SIGINT, stops at once', { timeout: 240000 }, async (t) => {
  const srv = await startServer({ args: ['--node-id', 'node-s'] });
  t.after(() => srv.stop().catch(() => {}));
  await setupHospital(srv);
  const live = await activeVisit(srv, 'p-s');

  srv.proc.kill('SIGTERM');
  await waitUntil('draining', async () => (await srv.api('GET', '/healthz')).status === 503);
  await live.patient.request('chat.send', { visit_id: live.visitId, text: 'after sigterm' });
  assert.equal((await live.doctor.waitFor('chat.message')).text, 'after sigterm');
  assert.equal(srv.proc.exitCode, null);
  srv.proc.kill('SIGTERM');
  const { code } = await exitOf(srv);
  assert.equal(code, 0);
  assert.match(srv.logs, /ev=server\.stopping reason=signal signal=TERM node=node-s/);

  await srv.restart(); // the visit is restored as live; SIGINT does not wait for it
  assert.ok(srv.sql("SELECT 1 FROM visits WHERE state = 'active'").length === 1);
  srv.proc.kill('SIGINT');
  assert.equal((await exitOf(srv)).code, 0);
  assert.match(srv.logs, /ev=server\.stopping reason=signal signal=INT/);
});

test('an offer open when the drain starts: declined, the patient is sent on and the node exits', { timeout: 120000 }, async (t) => {
  const srv = await startServer({ args: ['--node-id', 'node-o'] });
  t.after(() => srv.stop().catch(() => {}));
  await setupHospital(srv);
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-o', 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);

  srv.proc.kill('SIGTERM');
  await waitUntil('draining', async () => (await srv.api('GET', '/healthz')).status === 503);
  assert.equal(patient.pushes.some((m) => m.type === 'server.draining'), false, 'an offered patient stays');
  await doctor.request('visit.decline', { visit_id: ci.visit_id });
  await patient.waitFor('server.draining');
  assert.equal(await patient.closed, 4503);
  assert.equal((await exitOf(srv)).code, 0);
  assert.equal(srv.sql(`SELECT state FROM visits WHERE id = '${ci.visit_id}'`)[0].state, 'waiting',
    'the wait stays on record (the shared store keeps the place)');
});
