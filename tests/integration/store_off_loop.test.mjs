// store_off_loop.test.mjs - on PostgreSQL the visit steps run on the store
// thread (server/store_queue.c), so the control loop answers everyone else
// while a step waits for the database (issue 19). PostgreSQL sits behind a
// relay (lib/hold_relay.mjs) that holds a step's statement until the test
// lets it go: while check-in, accept and rating are each held, another
// client's ping is answered, and only then the step, released, answers.
// On a server that runs the steps on the loop, the ping waits behind the
// held step and is never answered while it is held.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, waitUntil } from './lib/server.mjs';
import { startPg } from './lib/pg.mjs';
import { startHoldRelay } from './lib/hold_relay.mjs';

let pg;
let relay;
let srv;
before(async () => {
  pg = startPg();
  const url = new URL(pg.url);
  relay = await startHoldRelay(Number(url.port));
  url.port = String(relay.port);
  srv = await startServer({ db: url.toString() });
  // The test's own queries go straight to PostgreSQL: psql runs synchronously,
  // and the relay lives in this process.
  srv.db = pg.url;
  await setupHospital(srv);
});
after(async () => {
  if (srv) await srv.stop();
  if (relay) relay.stop();
  if (pg) pg.stop();
});

// Sends the step, waits until its statement is held at the relay, then
// checks that other's ping is answered while the step is not; releases it
// and returns the step's answer.
async function pingAnsweredDuring(marker, step, other) {
  let stepDone = false;
  const held = relay.hold(marker);
  const answer = step().finally(() => { stepDone = true; });
  answer.catch(() => {});
  await held;
  try {
    const pong = await other.request('ping', {}, 60000);
    assert.equal(typeof pong.server_time, 'string');
    assert.equal(stepDone, false, 'the step answered while its statement was held');
  } finally {
    relay.release();
  }
  return answer;
}

test('check-in, accept and rating held at the database leave the loop answering', { timeout: 240000 }, async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-held', 'patient');
  const bystander = await srv.client('p-other', 'patient');

  // The check-in's insert carries the patient's id.
  const ci = await pingAnsweredDuring('p-held',
    () => patient.request('checkin', { dept: 'cardio', kind: 'follow_up' }, 120000), bystander);
  assert.match(ci.visit_id, /^v-/);
  assert.equal(ci.position, 1);

  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  const acc = await pingAnsweredDuring(ci.visit_id,
    () => doctor.request('visit.accept', { visit_id: ci.visit_id }, 120000), bystander);
  assert.equal(acc.visit_id, ci.visit_id);
  await patient.waitFor('visit.state', (m) => m.state === 'active');

  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  const rated = await pingAnsweredDuring(ci.visit_id,
    () => patient.request('visit.rate', { visit_id: ci.visit_id, score: 5 }, 120000), bystander);
  assert.equal(rated.visit_id, ci.visit_id);

  // Each step written once, its event with it.
  const types = srv.sql(`SELECT type FROM outbox WHERE visit_id='${ci.visit_id}' ORDER BY seq`).map((r) => r.type);
  assert.deepEqual(types, ['visit.checked_in', 'visit.started', 'visit.ended', 'visit.rated']);
  await Promise.all([doctor.close(), patient.close(), bystander.close()]);
});

test('a second check-in while the first is with the store is refused; a patient who left meanwhile keeps the visit for the grace period', { timeout: 240000 }, async () => {
  const patient = await srv.client('p-twice', 'patient');
  const held = relay.hold('p-twice');
  const first = patient.request('checkin', { dept: 'cardio', kind: 'follow_up' }, 120000);
  await held;
  await assert.rejects(patient.request('checkin', { dept: 'cardio', kind: 'follow_up' }, 60000),
    (e) => e.code === 'conflict');
  relay.release();
  const ci = await first;
  assert.equal(srv.sql("SELECT count(*) n FROM visits WHERE patient_id = 'p-twice'")[0].n, 1);
  await patient.request('queue.leave', { visit_id: ci.visit_id });

  const leaver = await srv.client('p-leaver', 'patient');
  const held2 = relay.hold('p-leaver');
  // Its answer can never come (the leaver closes): a short cap, so no timer
  // keeps the test process alive after the tests.
  leaver.request('checkin', { dept: 'cardio', kind: 'follow_up' }, 1000).catch(() => {});
  await held2;
  await leaver.close();
  relay.release();
  // The visit is made and kept for the patient, who comes back within the
  // grace period and finds it theirs.
  let rows = [];
  await waitUntil('the held check-in committed', () =>
    (rows = srv.sql("SELECT id, state FROM visits WHERE patient_id = 'p-leaver'")).length === 1, 60000);
  assert.equal(rows[0].state, 'waiting');
  const back = await srv.client('p-leaver', 'patient');
  await back.request('queue.leave', { visit_id: rows[0].id });
  await back.close();
});
