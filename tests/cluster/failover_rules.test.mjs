// failover_rules.test.mjs - the rules for a live visit whose node died
// (docs/cluster.md "What happens on failure"), over telemed.v1 alone: two
// real telemed-servers on a test-started PostgreSQL, two active visits on
// node A.
// - while A lives, visit 1's patient saying hello on B is sent to A
//   (session.move, holder_changed; the hello is answered visit_elsewhere
//   and B leaves the close to the client), and follows it: A resumes them;
// Then A is killed with kill -9.
// - visit 1: its patient says hello on B until B takes the visit over (a
//   hello while A still looks alive is sent to A the same way); the
//   patient resumes it there, the doctor resumes it too, and they chat
//   through B;
// - visit 2: nobody comes back; B places the released visit on itself and
//   ends it by the grace rule (grace_expired) once the grace period is over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, setupHospital, Client, waitUntil, sleep } from '../integration/lib/server.mjs';
import { startPg } from '../integration/lib/pg.mjs';

const GRACE_S = 20;

async function node(name, secret, pg) {
  return startServer({ secret, db: pg.url, args: ['--node-id', name, '--grace-s', String(GRACE_S)] });
}

async function activeVisit(srv, doctorId, patientId) {
  const doctor = await srv.client(doctorId, 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  return { doctor, patient, id: ci.visit_id };
}

// hello on srv as sub, for visitId that holder holds: srv sends the
// client to holder before it answers the hello with visit_elsewhere, and
// leaves the connection open for the client to close. The move, or the
// hello's result when srv took the visit.
async function helloElsewhere(srv, sub, role, visitId, holder) {
  const c = new Client(srv.url());
  await c.open();
  try {
    c.hello = await c.request('hello', { token: srv.token(sub, role), ua: 'node-test/1' });
    return { c };
  } catch (e) {
    assert.equal(e.code, 'conflict', e.message);
    assert.equal(e.reason, 'visit_elsewhere');
    const move = await c.waitFor('session.move', () => true, 1000);
    assert.deepEqual(move, { type: 'session.move', url: holder.url(), visit_id: visitId,
      reason: 'holder_changed' });
    assert.equal(c.ws.readyState, c.ws.OPEN, 'the client closes after a move, not the server');
    await c.close();
    return { move };
  }
}

// hello on srv until it takes the visit over instead of sending the client
// to holder (a cap, not a target: A is judged dead 10 s after its last
// heartbeat).
async function helloUntilTaken(srv, sub, role, visitId, holder) {
  let refused = 0;
  for (const end = Date.now() + 90000; Date.now() < end; refused++) {
    const { c } = await helloElsewhere(srv, sub, role, visitId, holder);
    if (c) return { c, refused };
    await sleep(500);
  }
  assert.fail(`${sub} never got back into their visit on ${srv.port}`);
}

test('a live visit whose node died: taken over by the first hello, or ended by the grace rule', { timeout: 300000 }, async (t) => {
  const pg = startPg();
  const secret = randomBytes(16).toString('hex');
  const a = await node('node-a', secret, pg);
  await setupHospital(a, { doctors: [['d1', 'cardio'], ['d2', 'cardio']] });
  const b = await node('node-b', secret, pg);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.ws.terminate();
    await a.stop().catch(() => {});
    await b.stop().catch(() => {});
    pg.stop();
  });
  const one = await activeVisit(a, 'd1', 'p1');
  const two = await activeVisit(a, 'd2', 'p2');
  clients.push(one.doctor, one.patient, two.doctor, two.patient);
  await one.patient.request('chat.send', { visit_id: one.id, text: 'before' });

  await t.test('a hello on B for a visit A holds and lives is sent to A, and resumed there', async () => {
    const { move } = await helloElsewhere(b, 'p1', 'patient', one.id, a);
    assert.ok(move, 'B took a visit its live holder still runs');
    const patient = new Client(move.url);
    await patient.open();
    clients.push(patient);
    patient.hello = await patient.request('hello', { token: a.token('p1', 'patient'), ua: 'node-test/1' });
    assert.equal(patient.hello.resumed, true);
    assert.equal(patient.hello.node, 'node-a');
    assert.equal(patient.hello.state.visit.visit_id, one.id);
    assert.equal(patient.hello.state.visit.state, 'active');
    await one.patient.waitFor('session.replaced');
    await one.doctor.request('chat.send', { visit_id: one.id, text: 'after the move' });
    await patient.waitFor('chat.message', (m) => m.text === 'after the move');
    const [row] = b.sql(`SELECT state, media_node FROM visits WHERE id = '${one.id}'`);
    assert.deepEqual(row, { state: 'active', media_node: 'node-a' });
  });

  await a.stop({ hard: true });

  await t.test('the first hello after the holder died takes the visit over; the other resumes it there', async () => {
    const { c: patient, refused } = await helloUntilTaken(b, 'p1', 'patient', one.id, a);
    clients.push(patient);
    console.log(`# p1 was sent to A ${refused} time(s) while A still looked alive`);
    assert.equal(patient.hello.resumed, true);
    assert.equal(patient.hello.node, 'node-b');
    assert.equal(patient.hello.state.visit.visit_id, one.id);
    assert.equal(patient.hello.state.visit.state, 'active');
    assert.ok(patient.hello.state.chat.some((m) => m.text === 'before'));
    const doctor = await b.client('d1', 'doctor');
    clients.push(doctor);
    assert.equal(doctor.hello.resumed, true);
    assert.deepEqual(doctor.hello.state.visits, [one.id]);
    await doctor.request('chat.send', { visit_id: one.id, text: 'on node b' });
    await patient.waitFor('chat.message', (m) => m.text === 'on node b');
    const [row] = b.sql(`SELECT state, media_node FROM visits WHERE id = '${one.id}'`);
    assert.deepEqual(row, { state: 'active', media_node: 'node-b' });
  });

  await t.test('nobody comes back to the other visit: B ends it by the grace rule', async () => {
    const row = await waitUntil('visit 2 ended', () => {
      const [r] = b.sql(`SELECT state, end_reason, media_node FROM visits WHERE id = '${two.id}'`);
      return r.state === 'ended' ? r : null;
    }, 120000);
    assert.equal(row.end_reason, 'grace_expired');
    assert.equal(row.media_node, 'node-b');
    assert.match(b.logs, new RegExp(`ev=cluster.visit_resumed visit=${two.id} node=node-b from=-`));
  });
});
