// The waiting room and the visit, end to end through the real server:
// check-in, offer, accept, chat, note, end, rating; decline, offer timeout,
// urgent patients and appointments; all checked against the pushes each
// side received and the rows in the SQLite file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, sleep } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer({ args: ['--offer-timeout-s', '5'] });
  await setupHospital(srv, {
    depts: ['cardio', 'endo', 'derm'],
    doctors: [['d1', 'cardio'], ['d2', 'endo'], ['d3', 'endo'], ['d4', 'derm']],
  });
});
after(async () => { await srv.stop(); });

test('full visit: check-in, offer, accept, chat, note, end, rating', async () => {
  const doctor = await srv.client('d1', 'doctor');
  const st = await doctor.request('doctor.status', { status: 'available' });
  assert.equal(st.status, 'available');
  assert.equal(st.in_shift, true);

  const patient = await srv.client('p1', 'patient', { name: '张三' });
  assert.equal(patient.hello.role, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: { version: '2026.1', recording: true } });
  assert.match(ci.visit_id, /^v-/);
  assert.equal(ci.position, 1);

  const offer = await doctor.waitFor('visit.offer');
  assert.equal(offer.visit_id, ci.visit_id);
  assert.equal(offer.patient.id, 'p1');
  assert.equal(offer.expires_in_s, 5);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });

  const pActive = await patient.waitFor('visit.state', (m) => m.state === 'active');
  const dActive = await doctor.waitFor('visit.state', (m) => m.state === 'active');
  assert.equal(pActive.doctor_id, 'd1');
  assert.equal(dActive.patient_id, 'p1');

  await patient.request('chat.send', { visit_id: ci.visit_id, text: '我头疼 my head hurts' });
  const atDoctor = await doctor.waitFor('chat.message');
  assert.equal(atDoctor.text, '我头疼 my head hurts');
  assert.equal(atDoctor.from_role, 'patient');
  await doctor.request('chat.send', { visit_id: ci.visit_id, text: 'take rest' });
  assert.equal((await patient.waitFor('chat.message', (m) => m.from === 'd1')).text, 'take rest');

  await doctor.request('visit.note', { visit_id: ci.visit_id, text: 'Tension headache.', diagnosis_code: 'G44.2', sign: true });
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  const ended = await patient.waitFor('visit.state', (m) => m.state === 'ended');
  assert.equal(ended.end_reason, 'completed');
  await patient.request('visit.rate', { visit_id: ci.visit_id, score: 5, comment: 'quick and kind' });

  const [v] = srv.sql(`SELECT state, doctor_id, end_reason, response_ms, queue_wait_ms, duration_ms FROM visits WHERE id='${ci.visit_id}'`);
  assert.equal(v.state, 'ended');
  assert.equal(v.doctor_id, 'd1');
  assert.equal(v.end_reason, 'completed');
  assert.ok(v.response_ms >= 0 && v.queue_wait_ms >= 0 && v.duration_ms >= 0);
  assert.equal(srv.sql(`SELECT count(*) n FROM chat_messages WHERE visit_id='${ci.visit_id}'`)[0].n, 2);
  assert.equal(srv.sql(`SELECT diagnosis_code FROM notes WHERE visit_id='${ci.visit_id}' AND signed=1`)[0].diagnosis_code, 'G44.2');
  assert.equal(srv.sql(`SELECT score FROM ratings WHERE visit_id='${ci.visit_id}'`)[0].score, 5);
  const types = srv.sql(`SELECT type FROM outbox WHERE visit_id='${ci.visit_id}' ORDER BY seq`).map((r) => r.type);
  assert.deepEqual(types, ['visit.checked_in', 'visit.started', 'visit.note_signed', 'visit.ended', 'visit.rated']);
  const parts = srv.sql(`SELECT role, user_agent FROM participants WHERE visit_id='${ci.visit_id}' ORDER BY id`);
  assert.deepEqual(parts.map((p) => p.role), ['patient', 'doctor']);
  assert.equal(parts[0].user_agent, 'node-test/1');

  // The record API shows it all.
  const rec = await srv.api('GET', `/api/v1/visits/${ci.visit_id}`, undefined, srv.token('sup', 'supervisor'));
  assert.equal(rec.status, 200);
  assert.equal(rec.json.chat.length, 2);
  assert.equal(rec.json.rating.score, 5);
  assert.equal(rec.json.notes[0].signed, true);
  assert.equal(rec.json.urgent, false);
  assert.equal(rec.json.recording_consent, true);
  // Rating twice is a conflict; logs never carry the chat text or name.
  await assert.rejects(patient.request('visit.rate', { visit_id: ci.visit_id, score: 4 }), /conflict/);
  assert.ok(!srv.logs.includes('my head hurts'));
  assert.ok(!srv.logs.includes('张三'));
  await patient.close();
  await doctor.close();
});

test('decline sends the patient to another doctor; offer timeout returns to head and sets doctor away', async () => {
  const d2 = await srv.client('d2', 'doctor');
  const patient = await srv.client('p2', 'patient');
  const ci = await patient.request('checkin', { dept: 'endo' });
  await d2.request('doctor.status', { status: 'available' });
  const offer1 = await d2.waitFor('visit.offer');
  assert.equal(offer1.visit_id, ci.visit_id);
  await d2.request('visit.decline', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'waiting');

  // d3 comes on duty and gets the offer; it lapses.
  const d3 = await srv.client('d3', 'doctor');
  await d3.request('doctor.status', { status: 'available' });
  const offer2 = await d3.waitFor('visit.offer');
  assert.equal(offer2.visit_id, ci.visit_id);
  const cancelled = await d3.waitFor('visit.offer_cancelled');
  assert.equal(cancelled.reason, 'timeout');
  const away = await d3.waitFor('doctor.status');
  assert.equal(away.status, 'away');
  const ov = await srv.api('GET', '/api/v1/overview', undefined, srv.token('sup', 'supervisor'));
  assert.ok(ov.json.alerts.some((a) => a.kind === 'offer_timeout' && a.visit_id === ci.visit_id && a.doctor_id === 'd3'));
  const pos = await patient.waitFor('queue.position', (m) => m.position === 1);
  assert.equal(pos.visit_id, ci.visit_id);
  const outcomes = srv.sql(`SELECT doctor_id, outcome FROM offers WHERE visit_id='${ci.visit_id}' ORDER BY id`);
  assert.deepEqual(outcomes, [{ doctor_id: 'd2', outcome: 'declined' }, { doctor_id: 'd3', outcome: 'timeout' }]);
  assert.equal(srv.sql(`SELECT state FROM visits WHERE id='${ci.visit_id}'`)[0].state, 'waiting');
  await patient.request('queue.leave', { visit_id: ci.visit_id });
  assert.equal(srv.sql(`SELECT state, end_reason FROM visits WHERE id='${ci.visit_id}'`)[0].end_reason, 'patient_left');
  await Promise.all([d2.close(), d3.close(), patient.close()]);
});

test('urgent check-in jumps the line; positions are pushed as they change', async () => {
  const a = await srv.client('pa', 'patient');
  const b = await srv.client('pb', 'patient');
  const u = await srv.client('pu', 'patient');
  const ca = await a.request('checkin', { dept: 'derm' });
  const cb = await b.request('checkin', { dept: 'derm' });
  assert.equal(ca.position, 1);
  assert.equal(cb.position, 2);
  const cu = await u.request('checkin', { dept: 'derm', urgent: true });
  assert.equal(cu.position, 1);
  await a.waitFor('queue.position', (m) => m.position === 2);
  await b.waitFor('queue.position', (m) => m.position === 3);

  const d4 = await srv.client('d4', 'doctor');
  await d4.request('doctor.status', { status: 'available' });
  const offer = await d4.waitFor('visit.offer');
  assert.equal(offer.visit_id, cu.visit_id);
  assert.equal(offer.urgent, true);
  await d4.request('visit.accept', { visit_id: cu.visit_id });
  await a.waitFor('queue.position', (m) => m.position === 1);
  await b.waitFor('queue.position', (m) => m.position === 2);
  for (const c of [a, b, u, d4]) await c.close();
});

test('an appointment whose slot has come goes before walk-ins', async () => {
  const admin = srv.token('admin-1', 'admin');
  const walk = await srv.client('pw', 'patient');
  const cw = await walk.request('checkin', { dept: 'cardio' });
  const r = await srv.api('POST', '/api/v1/appointments', { patient_id: 'pappt', dept_id: 'cardio',
    slot: new Date(Date.now() - 60e3).toISOString(), kind: 'follow_up' }, admin);
  assert.equal(r.status, 201);
  const ap = await srv.client('pappt', 'patient');
  const ca = await ap.request('checkin', { appointment_id: r.json.id });
  assert.equal(ca.position, 1);
  await walk.waitFor('queue.position', (m) => m.visit_id === cw.visit_id && m.position === 2);
  assert.equal(srv.sql(`SELECT status FROM appointments WHERE id='${r.json.id}'`)[0].status, 'arrived');
  // Someone else's appointment is not found for this patient.
  const other = await srv.client('pother', 'patient');
  await assert.rejects(other.request('checkin', { appointment_id: r.json.id }), /not_found/);
  // First visits are refused by default (follow-ups only online).
  await assert.rejects(other.request('checkin', { dept: 'cardio', kind: 'first' }), /forbidden/);
  for (const c of [walk, ap, other]) await c.close();
});

test('supervisor overview shows departments, visits and doctors, pushed on change', async () => {
  const sup = await srv.client('s1', 'supervisor');
  await sup.request('overview.subscribe');
  const first = await sup.waitFor('overview');
  assert.ok(first.departments.find((d) => d.id === 'cardio'));
  const p = await srv.client('pov', 'patient');
  const ci = await p.request('checkin', { dept: 'endo', urgent: true });
  const ov = await sup.waitFor('overview', (m) => m.visits.some((v) => v.id === ci.visit_id));
  const dept = ov.departments.find((d) => d.id === 'endo');
  assert.ok(dept.waiting >= 1);
  assert.ok(ov.alerts.some((a) => a.kind === 'urgent' && a.visit_id === ci.visit_id));
  // A patient cannot subscribe.
  await assert.rejects(p.request('overview.subscribe'), /forbidden/);
  await p.close();
  await sup.close();
  await sleep(50);
});
