// The server on PostgreSQL (issue 19): the store is a test-started
// PostgreSQL (tests/support/pg.sh) given as --db postgresql://...
// The full visit path writes its rows and feed events there; then
// PostgreSQL is killed during a live visit: the steps tried meanwhile are
// refused with a clear error and leave nothing behind, and once it is back
// the same server (not restarted) ends the visit, takes its rating and
// checks the next patient in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, fullVisit } from './lib/server.mjs';
import { startPg } from './lib/pg.mjs';

let pg;
let srv;
before(async () => {
  pg = startPg();
  srv = await startServer({ db: pg.url });
  await setupHospital(srv);
});
after(async () => {
  if (srv) await srv.stop();
  if (pg) pg.stop();
});

test('the full visit path on PostgreSQL', async () => {
  const id = await fullVisit(srv, 'p-full', { score: 5 });
  const [v] = srv.sql(`SELECT state, doctor_id, end_reason, duration_ms FROM visits WHERE id='${id}'`);
  assert.equal(v.state, 'ended');
  assert.equal(v.doctor_id, 'd1');
  assert.equal(v.end_reason, 'completed');
  assert.ok(v.duration_ms >= 0);
  assert.equal(srv.sql(`SELECT score FROM ratings WHERE visit_id='${id}'`)[0].score, 5);
  const types = srv.sql(`SELECT type FROM outbox WHERE visit_id='${id}' ORDER BY seq`).map((r) => r.type);
  assert.deepEqual(types, ['visit.checked_in', 'visit.started', 'visit.note_signed', 'visit.ended', 'visit.rated']);
  const rec = await srv.api('GET', `/api/v1/visits/${id}`, undefined, srv.token('sup', 'supervisor'));
  assert.equal(rec.status, 200);
  assert.equal(rec.json.rating.score, 5);
  assert.equal(rec.json.notes[0].signed, true);
});

test('PostgreSQL killed during a visit: steps refused meanwhile, served again after', async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-live', 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');

  pg.kill();
  await assert.rejects(doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' }),
    (e) => e.code === 'internal');
  const late = await srv.client('p-late', 'patient');
  // Refused as the server's failure, not as "no such department".
  await assert.rejects(late.request('checkin', { dept: 'cardio', kind: 'follow_up' }),
    (e) => e.code === 'internal');

  pg.restart();
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  await patient.request('visit.rate', { visit_id: ci.visit_id, score: 4 });
  const again = await late.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  assert.match(again.visit_id, /^v-/);

  // Nothing of the refused steps, everything of the later ones, once.
  assert.equal(srv.sql("SELECT count(*) n FROM visits WHERE patient_id = 'p-late'")[0].n, 1);
  const types = srv.sql(`SELECT type FROM outbox WHERE visit_id='${ci.visit_id}' ORDER BY seq`).map((r) => r.type);
  assert.deepEqual(types, ['visit.checked_in', 'visit.started', 'visit.ended', 'visit.rated']);
  const health = await srv.api('GET', '/healthz');
  assert.equal(health.status, 200);
  await Promise.all([doctor.close(), patient.close(), late.close()]);
});
