// Follow-ups, no-shows, the messaging outbox and the patient's timeline
// (issue 18), end to end through the real server: a follow-up booked inside
// a visit and checked in later, an appointment left to become a no-show,
// the hospital's messaging system (a real HTTP server, tests/feed/
// regulator.mjs, standing in for it) getting booked, due, moved and no_show
// signed, through an outage and restarts, and the timeline with its audit rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, setupHospital, waitUntil, sleep } from './lib/server.mjs';
import { startRegulator } from '../feed/regulator.mjs';

const SECRET = 'messaging-secret-for-tests';
let srv, sms, admin;

before(async () => {
  sms = await startRegulator({ secret: SECRET });
  srv = await startServer({
    args: ['--messaging-url', sms.url, '--appointment-sweep-s', '1', '--noshow-after-s', '0',
      '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '400'],
    env: { TELEMED_MESSAGING_SECRET: SECRET },
  });
  admin = await setupHospital(srv, {
    depts: ['cardio', 'endo'],
    doctors: [['d1', 'cardio'], ['d2', 'endo']],
  });
});
after(async () => {
  await srv.stop();
  await sms.close();
});

const messages = (type) => sms.events.filter((e) => e.type === type);

// A visit of patient with d1, left active; returns [visit id, doctor, patient].
async function activeVisit(patientId) {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.visit_id === ci.visit_id && m.state === 'active');
  return [ci.visit_id, doctor, patient];
}

test('a follow-up booked in the visit reaches the patient, is told due, and checks in later', async () => {
  const [visitId, doctor, patient] = await activeVisit('p1');
  const slot = new Date(Date.now() + 3600e3).toISOString();
  await doctor.request('visit.note', { visit_id: visitId, text: 'BP controlled.', diagnosis_code: 'I10', sign: true });
  const booked = await doctor.request('visit.followup', { visit_id: visitId, slot_at: slot, doctor: 'self' });
  const appt = booked.appointment;
  assert.equal(appt.patient_id, 'p1');
  assert.equal(appt.kind, 'follow_up');
  assert.equal(appt.status, 'booked');
  assert.equal(appt.doctor_id, 'd1');
  assert.equal(appt.booked_in_visit, visitId);
  assert.equal(Date.parse(appt.slot_at), Date.parse(slot));
  const told = await patient.waitFor('visit.followup');
  assert.equal(told.visit_id, visitId);
  assert.equal(told.appointment.id, appt.id);

  // Bad input gets a clear error and books nothing.
  await assert.rejects(doctor.request('visit.followup', { visit_id: visitId, slot_at: '2001-01-01T00:00:00Z' }), /bad_request/);
  await assert.rejects(doctor.request('visit.followup', { visit_id: visitId, window: { from: slot, to: '2001-01-01T00:00:00Z' } }), /bad_request/);
  await assert.rejects(doctor.request('visit.followup', { visit_id: visitId, slot_at: slot, dept: 'nope' }), /conflict/);
  const other = await srv.client('d2', 'doctor');
  await assert.rejects(other.request('visit.followup', { visit_id: visitId, slot_at: slot }), /forbidden/);
  await assert.rejects(patient.request('visit.followup', { visit_id: visitId, slot_at: slot }), /forbidden/);
  assert.equal(srv.sql(`SELECT count(*) n FROM followups WHERE visit_id='${visitId}'`)[0].n, 1);

  await doctor.request('visit.end', { visit_id: visitId, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.visit_id === visitId && m.state === 'ended');

  // The sweep tells it due (its slot is within appointment_due_before_s).
  await waitUntil('appointment.due in the outbox', () =>
    srv.sql(`SELECT count(*) n FROM outbox WHERE type='appointment.due' AND visit_id='${visitId}'`)[0].n === 1);

  // Later: the patient checks in with the follow-up like any appointment.
  const ci = await patient.request('checkin', { appointment_id: appt.id });
  const offer = await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  assert.equal(offer.patient.id, 'p1');
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.visit_id === ci.visit_id && m.state === 'active');
  const [v2] = srv.sql(`SELECT appointment_id, kind FROM visits WHERE id='${ci.visit_id}'`);
  assert.deepEqual(v2, { appointment_id: appt.id, kind: 'follow_up' });
  assert.equal(srv.sql(`SELECT status FROM appointments WHERE id='${appt.id}'`)[0].status, 'arrived');
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.visit_id === ci.visit_id && m.state === 'ended');
  assert.equal(srv.sql(`SELECT status FROM appointments WHERE id='${appt.id}'`)[0].status, 'fulfilled');

  // The visit's record lists it, now fulfilled.
  const rec = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin);
  assert.deepEqual(rec.json.followups.map((f) => [f.id, f.status]), [[appt.id, 'fulfilled']]);
  // Its events, in the visit it was booked in, in order.
  const types = srv.sql(`SELECT type FROM outbox WHERE visit_id='${visitId}' AND type LIKE 'appointment.%' ORDER BY seq`).map((r) => r.type);
  assert.deepEqual(types, ['appointment.booked', 'appointment.due']);
  for (const c of [doctor, patient, other]) await c.close();
});

test('an appointment whose slot passed without a check-in becomes a no-show, once', async () => {
  // One booked outside any visit, its slot already over: its own subject.
  const past = new Date(Date.now() - 60e3).toISOString();
  const r = await srv.api('POST', '/api/v1/appointments', { patient_id: 'p2', dept_id: 'endo', doctor_id: 'd2', slot: past, kind: 'follow_up' }, admin);
  assert.equal(r.status, 201, r.text);
  const apptId = r.json.id;
  // One booked in a visit for a department, slot in a moment, never checked in.
  const [visitId, doctor, patient] = await activeVisit('p3');
  const soon = new Date(Date.now() + 1500).toISOString();
  const { appointment } = await doctor.request('visit.followup', { visit_id: visitId, slot_at: soon, doctor: 'any' });
  assert.equal(appointment.doctor_id, null);
  await doctor.request('visit.end', { visit_id: visitId, reason: 'completed' });

  await waitUntil('both no-shows', () =>
    srv.sql(`SELECT count(*) n FROM appointments WHERE status='noshow' AND id IN ('${apptId}','${appointment.id}')`)[0].n === 2);
  const own = srv.sql(`SELECT type, payload FROM outbox WHERE visit_id='${apptId}' ORDER BY seq`);
  assert.deepEqual(own.map((e) => e.type), ['appointment.booked', 'appointment.no_show']);
  const data = JSON.parse(own[1].payload);
  assert.equal(data.patient_id, 'p2');
  assert.equal(data.appointment.status, 'noshow');
  assert.equal(srv.sql(`SELECT count(*) n FROM outbox WHERE visit_id='${visitId}' AND type='appointment.no_show'`)[0].n, 1);
  // A checked-in appointment is never a no-show: the first test's stays fulfilled.
  assert.equal(srv.sql("SELECT count(*) n FROM appointments WHERE status='noshow' AND patient_id='p1'")[0].n, 0);
  // Once only: the sweeps after it (every second) add nothing.
  const n = srv.sql("SELECT count(*) n FROM outbox WHERE type='appointment.no_show'")[0].n;
  await sleep(2500);
  assert.equal(srv.sql("SELECT count(*) n FROM outbox WHERE type='appointment.no_show'")[0].n, n);
  await doctor.close();
  await patient.close();
});

test('an appointment the hospital books and moves over REST is told too, as its own subject', async () => {
  const slot = new Date(Date.now() + 5 * 86400e3).toISOString();
  const r = await srv.api('POST', '/api/v1/appointments', { patient_id: 'p4', dept_id: 'cardio', slot, kind: 'first' }, admin);
  assert.equal(r.status, 201, r.text);
  const later = new Date(Date.now() + 6 * 86400e3).toISOString();
  const m = await srv.api('PATCH', `/api/v1/appointments/${r.json.id}`, { slot: later }, admin);
  assert.equal(m.status, 200, m.text);
  // A change that is not a new time tells nobody.
  assert.equal((await srv.api('PATCH', `/api/v1/appointments/${r.json.id}`, { doctor_id: 'd1' }, admin)).status, 200);
  const rows = srv.sql(`SELECT type, payload FROM outbox WHERE visit_id='${r.json.id}' ORDER BY seq`);
  assert.deepEqual(rows.map((e) => e.type), ['appointment.booked', 'appointment.moved']);
  assert.equal(Date.parse(JSON.parse(rows[1].payload).appointment.slot_at), Date.parse(later));
  await waitUntil('moved at the messaging system', () =>
    messages('appointment.moved').some((e) => e.visit_id === r.json.id));
});

test('a cancelled appointment is told to the messaging system (for the patient), once', async () => {
  const slot = new Date(Date.now() + 4 * 86400e3).toISOString();
  const r = await srv.api('POST', '/api/v1/appointments', { patient_id: 'p5', dept_id: 'cardio', doctor_id: 'd1', slot, kind: 'follow_up' }, admin);
  assert.equal(r.status, 201, r.text);
  const c = await srv.api('DELETE', `/api/v1/appointments/${r.json.id}`, undefined, admin);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.status, 'cancelled');
  // Cancelled once: a second cancel is refused and tells nobody again.
  assert.equal((await srv.api('DELETE', `/api/v1/appointments/${r.json.id}`, undefined, admin)).status, 409);
  const rows = srv.sql(`SELECT type, payload FROM outbox WHERE visit_id='${r.json.id}' ORDER BY seq`);
  assert.deepEqual(rows.map((e) => e.type), ['appointment.booked', 'appointment.cancelled']);
  const data = JSON.parse(rows[1].payload);
  assert.deepEqual([data.patient_id, data.appointment.status, data.appointment.doctor_id], ['p5', 'cancelled', 'd1']);
  await waitUntil('cancelled at the messaging system', () =>
    messages('appointment.cancelled').some((e) => e.visit_id === r.json.id && e.data.patient_id === 'p5'));
  // A cancelled appointment is never due nor a no-show.
  assert.equal(srv.sql(`SELECT count(*) n FROM outbox WHERE visit_id='${r.json.id}' AND type IN ('appointment.due', 'appointment.no_show')`)[0].n, 0);
});

test('the messaging system gets booked, due and no_show, signed, in order, and nothing about visits', async () => {
  await waitUntil('messages delivered', () =>
    messages('appointment.booked').length >= 2 && messages('appointment.due').length >= 1 &&
    messages('appointment.no_show').length >= 2);
  const st = sms.stats();
  assert.equal(st.badSignatures, 0);
  assert.deepEqual(st.orderViolations, []);
  assert.ok(sms.events.every((e) => /^(appointment|consultation|referral)\./.test(e.type)));
  const booked = messages('appointment.booked')[0];
  assert.equal(booked.data.appointment.patient_id, 'p1');
  assert.equal(booked.data.patient_id, 'p1');
  // The same rows went to the regulator feed (here its NDJSON file sink).
  const dir = join(srv.dataDir, 'feed');
  const feed = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
  assert.ok(feed.includes(booked.id));
  const status = await srv.api('GET', '/api/v1/messaging', undefined, admin);
  assert.equal(status.status, 200);
  assert.equal(status.json.sink, 'http');
  assert.ok(status.json.delivered >= sms.events.length);
  const metrics = await srv.api('GET', '/metrics', undefined, admin);
  assert.match(metrics.text, /telemed_messaging_delivered_total\{node="[^"]*"\} \d+/);
});

test('the messaging outbox survives an outage and restarts (clean and kill -9), and a rejected event is a dead letter an admin replays', async () => {
  const visitId = srv.sql("SELECT visit_id FROM followups f JOIN appointments a ON a.id=f.appointment_id WHERE a.patient_id='p1'")[0].visit_id;
  const apptId = srv.sql(`SELECT appointment_id FROM followups WHERE visit_id='${visitId}'`)[0].appointment_id;
  await sms.down();
  const doctor = await srv.client('d1', 'doctor');
  const later = new Date(Date.now() + 7200e3).toISOString();
  // Moving it: the appointment is arrived-then-fulfilled, so book a new one and move that.
  const { appointment } = await doctor.request('visit.followup', { visit_id: visitId, slot_at: later });
  await doctor.request('visit.followup', { visit_id: visitId, appointment_id: appointment.id, window: { from: later, to: new Date(Date.now() + 9000e3).toISOString() } });
  await assert.rejects(doctor.request('visit.followup', { visit_id: visitId, appointment_id: apptId, slot_at: later }), /conflict/);
  await doctor.close();
  await waitUntil('messaging retrying', async () => {
    const s = await srv.api('GET', '/api/v1/messaging', undefined, admin);
    return s.json.retrying === true && s.json.queue_depth >= 2;
  });
  await srv.restart();
  await srv.restart({ hard: true });
  await sms.up();
  await waitUntil('moved delivered after the outage', () =>
    messages('appointment.moved').some((e) => e.data.appointment.id === appointment.id));
  const moved = messages('appointment.moved').find((e) => e.data.appointment.id === appointment.id);
  assert.ok(moved.data.appointment.window_end_at);
  assert.deepEqual(sms.stats().orderViolations, []);
  assert.equal(sms.stats().badSignatures, 0);

  // A permanent rejection: dead letter, then an admin's replay delivers it.
  sms.reject = (ev) => ev.type === 'appointment.booked';
  const d = await srv.client('d1', 'doctor');
  const third = await d.request('visit.followup', { visit_id: visitId, slot_at: later });
  await d.close();
  let dead;
  await waitUntil('dead letter', async () => {
    const s = await srv.api('GET', '/api/v1/messaging', undefined, admin);
    dead = s.json.dead_letters.find((x) => x.type === 'appointment.booked');
    return !!dead;
  });
  sms.reject = null;
  const replay = await srv.api('POST', `/api/v1/messaging/dead-letters/${dead.seq}/replay`, undefined, admin);
  assert.equal(replay.status, 200, replay.text);
  await waitUntil('replayed', () => messages('appointment.booked').some((e) => e.data.appointment.id === third.appointment.id));
  assert.equal(srv.sql(`SELECT count(*) n FROM audit_log WHERE action='messaging.replay' AND target='${dead.seq}'`)[0].n, 1);
});

test("the patient's timeline: visits with diagnosis codes and signed notes, follow-ups; every read audited", async () => {
  const d1 = srv.token('d1', 'doctor');
  // A consultation requested about the patient (consult18's table) is part of the course.
  const firstVisit = srv.sql("SELECT id FROM visits WHERE patient_id='p1' ORDER BY checkin_at LIMIT 1")[0].id;
  const cr = await srv.api('POST', '/api/v1/consultations', { patient_id: 'p1', visit_id: firstVisit, dept_id: 'endo',
    reason: 'Sugar high', question: 'Insulin?', urgency: 'routine', window_start: new Date(Date.now() + 3600e3).toISOString(),
    window_end: new Date(Date.now() + 86400e3).toISOString() }, d1);
  assert.equal(cr.status, 201, cr.text);
  const r = await srv.api('GET', '/api/v1/patients/p1/timeline', undefined, d1);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.view, 'staff');
  const visits = r.json.items.filter((i) => i.kind === 'visit');
  assert.equal(visits.length, 2);
  assert.deepEqual(visits[0].diagnosis_codes, ['I10']);
  assert.equal(visits[0].notes[0].body, 'BP controlled.');
  assert.equal(visits[0].doctor_name, 'Dr d1');
  assert.equal(visits[0].dept_name, 'Dept cardio');
  const appts = r.json.items.filter((i) => i.kind === 'appointment');
  assert.ok(appts.length >= 3);
  assert.ok(appts.some((a) => a.status === 'fulfilled'));
  const consult = r.json.items.find((i) => i.kind === 'consultation');
  assert.equal(consult && consult.state, 'requested');
  // ...and the messaging system hears of it from the same outbox row.
  await waitUntil('consultation.requested at the messaging system', () =>
    messages('consultation.requested').some((e) => e.visit_id === cr.json.consultation_id));
  const times = r.json.items.map((i) => Date.parse(i.at));
  assert.deepEqual(times, [...times].sort((a, b) => a - b));

  // The patient's own view: their visits and notes, appointments still ahead.
  const own = await srv.api('GET', '/api/v1/patients/p1/timeline', undefined, srv.token('p1', 'patient'));
  assert.equal(own.status, 200);
  assert.equal(own.json.view, 'patient');
  const ahead = own.json.items.filter((i) => i.kind === 'appointment');
  assert.ok(ahead.length >= 1 && ahead.every((a) => a.status === 'booked'));

  // Nobody else's: another patient, a doctor who never saw them.
  assert.equal((await srv.api('GET', '/api/v1/patients/p1/timeline', undefined, srv.token('p2', 'patient'))).status, 403);
  assert.equal((await srv.api('GET', '/api/v1/patients/p1/timeline', undefined, srv.token('d2', 'doctor'))).status, 403);
  const audit = srv.sql("SELECT actor_id, outcome FROM audit_log WHERE action='patient.timeline' AND target='p1' ORDER BY id");
  assert.deepEqual(audit, [
    { actor_id: 'd1', outcome: 'ok' }, { actor_id: 'p1', outcome: 'ok' },
    { actor_id: 'p2', outcome: 'denied' }, { actor_id: 'd2', outcome: 'denied' },
  ]);
});
