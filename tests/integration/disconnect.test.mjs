// Dropped connections: a participant keeps their place or their visit for
// the grace period and resumes with the same identity; after it the visit
// ends with a recorded reason. Also: a server restart keeps the queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, sleep } from './lib/server.mjs';

let srv;
const GRACE_S = 6;
before(async () => {
  // Grace long enough that a resume (a TLS connect and hello) lands inside
  // it on a loaded machine; the tests wait past it, never race it.
  srv = await startServer({ args: ['--grace-s', String(GRACE_S)] });
  await setupHospital(srv, { depts: ['cardio', 'endo'], doctors: [['d1', 'cardio'], ['d2', 'endo']] });
});
after(async () => { await srv.stop(); });

async function activeVisit(patientSub, doctorSub, dept) {
  const doctor = await srv.client(doctorSub, 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientSub, 'patient');
  const ci = await patient.request('checkin', { dept });
  await doctor.waitFor('visit.offer');
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  return { doctor, patient, visit: ci.visit_id };
}

test('patient drops mid-visit and resumes inside the grace period', async () => {
  const { doctor, patient, visit } = await activeVisit('p1', 'd1', 'cardio');
  await patient.drop();
  const gone = await doctor.waitFor('visit.participant', (m) => !m.connected);
  assert.equal(gone.role, 'patient');
  assert.equal(gone.grace_s, GRACE_S);
  const back = await srv.client('p1', 'patient');
  assert.equal(back.hello.resumed, true);
  assert.equal(back.hello.state.visit.visit_id, visit);
  assert.equal(back.hello.state.visit.state, 'active');
  await doctor.waitFor('visit.participant', (m) => m.connected);
  await sleep(GRACE_S * 1000); // past the original grace: the visit must still be active
  await back.request('chat.send', { visit_id: visit, text: 'still here' });
  assert.equal(srv.sql(`SELECT state FROM visits WHERE id='${visit}'`)[0].state, 'active');
  const rows = srv.sql(`SELECT leave_reason FROM participants WHERE visit_id='${visit}' AND user_id='p1' ORDER BY id`);
  assert.deepEqual(rows.map((r) => r.leave_reason), ['disconnected', null]);
  await doctor.request('visit.end', { visit_id: visit, reason: 'completed' });
  await back.close();
  await doctor.close();
});

test('grace expiry ends an active visit with a recorded reason', async () => {
  const { doctor, patient, visit } = await activeVisit('p2', 'd2', 'endo');
  await patient.drop();
  const ended = await doctor.waitFor('visit.state', (m) => m.state === 'ended');
  assert.equal(ended.end_reason, 'grace_expired');
  const [v] = srv.sql(`SELECT state, end_reason, ended_by FROM visits WHERE id='${visit}'`);
  assert.deepEqual(v, { state: 'ended', end_reason: 'grace_expired', ended_by: 'system' });
  await doctor.close();
});

test('a waiting patient keeps their place through a drop, and leaves the queue after grace', async () => {
  const a = await srv.client('pa', 'patient');
  const b = await srv.client('pb', 'patient');
  const ca = await a.request('checkin', { dept: 'cardio' });
  const cb = await b.request('checkin', { dept: 'cardio' });
  assert.equal(cb.position, 2);
  await a.drop();
  await sleep(500);
  const a2 = await srv.client('pa', 'patient');
  assert.equal(a2.hello.resumed, true);
  assert.equal(a2.hello.state.position, 1);
  assert.equal(a2.hello.state.visit.visit_id, ca.visit_id);
  await a2.drop();
  await b.waitFor('queue.position', (m) => m.position === 1);
  const [v] = srv.sql(`SELECT state, end_reason FROM visits WHERE id='${ca.visit_id}'`);
  assert.deepEqual(v, { state: 'cancelled', end_reason: 'grace_expired' });
  await b.request('queue.leave', { visit_id: cb.visit_id });
  await b.close();
});

test('a new connection with the same identity replaces the old one', async () => {
  const first = await srv.client('px', 'patient');
  const second = await srv.client('px', 'patient');
  await first.waitFor('session.replaced');
  await first.closed;
  const r = await second.request('ping');
  assert.ok(r.server_time);
  await second.close();
});

test('the waiting room survives a server restart', async () => {
  const p = await srv.client('pr', 'patient');
  const ci = await p.request('checkin', { dept: 'endo' });
  await srv.restart();
  const again = await srv.client('pr', 'patient');
  assert.equal(again.hello.resumed, true);
  assert.equal(again.hello.state.visit.visit_id, ci.visit_id);
  assert.equal(again.hello.state.position, 1);
  await again.request('queue.leave', { visit_id: ci.visit_id });
  await again.close();
});
