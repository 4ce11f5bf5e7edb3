// What the patient is told, through the real server: who counts as on duty
// for the estimate (an away doctor does), the figures in the checkin result,
// the department's next shift when none runs now, the chat history on a
// reconnect mid-visit (bounded), and the signed note released to the patient.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital } from './lib/server.mjs';

let srv;
let admin;
const HOUR = 3600e3;
let eveningStart;

before(async () => {
  srv = await startServer({ args: ['--offer-timeout-s', '5', '--grace-s', '30'] });
  admin = await setupHospital(srv, {
    depts: ['cardio', 'endo', 'night', 'derm'],
    doctors: [['d1', 'cardio'], ['d2', 'endo'], ['d4', 'derm']],
  });
  // A department whose only shift starts in two hours, and a later one.
  const r = await srv.api('POST', '/api/v1/doctors', { id: 'd3', name: 'Dr d3', dept_id: 'night', licence_no: 'LIC-d3' }, admin);
  assert.equal(r.status, 201, r.text);
  eveningStart = new Date(Math.ceil((Date.now() + 2 * HOUR) / 1000) * 1000);
  for (const [start, end] of [[eveningStart, 4 * HOUR], [new Date(eveningStart.getTime() + 6 * HOUR), 8 * HOUR]]) {
    const s = await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd3', dept_id: 'night',
      start: start.toISOString(), end: new Date(eveningStart.getTime() + end).toISOString() }, admin);
    assert.equal(s.status, 201, s.text);
  }
});
after(async () => { if (srv) await srv.stop(); });

test('a doctor set away by a lapsed offer still counts as on duty: the estimate stays known', async () => {
  const doctor = await srv.client('d2', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-away', 'patient');
  const ci = await patient.request('checkin', { dept: 'endo' });
  assert.equal(ci.doctors_on_duty, 1);
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.waitFor('doctor.status', (m) => m.status === 'away' && m.reason === 'offer_timeout');
  const back = await patient.waitFor('queue.position', (m) => m.visit_id === ci.visit_id);
  assert.equal(back.doctors_on_duty, 1, 'the away doctor is still on duty for the waiting room');
  assert.equal(typeof back.estimated_wait_s, 'number');
  assert.ok(back.estimated_wait_s > 0);

  // Off duty is off duty: nobody is left, the estimate is unknown.
  await doctor.request('doctor.status', { status: 'off_duty' });
  const none = await patient.waitFor('queue.position', (m) => m.doctors_on_duty === 0);
  assert.equal(none.estimated_wait_s, null);
  const ov = await srv.api('GET', '/api/v1/overview', undefined, admin);
  assert.equal(ov.status, 200, ov.text);
  assert.equal(ov.json.departments.find((d) => d.id === 'endo').doctors_on_duty, 0);
  await patient.request('queue.leave', { visit_id: ci.visit_id });
  await patient.close();
  await doctor.close();
});

test('the checkin result carries the waiting room figures a position push does', async () => {
  const doctor = await srv.client('d4', 'doctor');
  await doctor.request('doctor.status', { status: 'away' });
  const a = await srv.client('p-ci-a', 'patient');
  const b = await srv.client('p-ci-b', 'patient');
  const ca = await a.request('checkin', { dept: 'derm' });
  assert.deepEqual({ position: ca.position, waiting: ca.waiting, doctors_on_duty: ca.doctors_on_duty, next_shift_at: ca.next_shift_at },
    { position: 1, waiting: 1, doctors_on_duty: 1, next_shift_at: null });
  assert.equal(typeof ca.estimated_wait_s, 'number');
  const cb = await b.request('checkin', { dept: 'derm' });
  assert.equal(cb.position, 2);
  assert.equal(cb.waiting, 2);
  assert.equal(cb.doctors_on_duty, 1);
  assert.ok(cb.estimated_wait_s > ca.estimated_wait_s, 'the second in line waits longer');
  for (const [c, ci] of [[a, ca], [b, cb]]) {
    await c.request('queue.leave', { visit_id: ci.visit_id });
    await c.close();
  }
  await doctor.close();
});

test('with no shift now, checkin and queue.position say when the next shift starts', async () => {
  const p = await srv.client('p-night', 'patient');
  const ci = await p.request('checkin', { dept: 'night' });
  assert.equal(ci.doctors_on_duty, 0);
  assert.equal(ci.estimated_wait_s, null);
  assert.equal(Date.parse(ci.next_shift_at), eveningStart.getTime());
  // The push (here the one a reconnect brings) says the same.
  await p.drop();
  const p2 = await srv.client('p-night', 'patient');
  const pos = await p2.waitFor('queue.position', (m) => m.visit_id === ci.visit_id);
  assert.equal(Date.parse(pos.next_shift_at), eveningStart.getTime());
  assert.equal(pos.doctors_on_duty, 0);

  // A department whose shift runs now has no next shift to announce.
  const q = await srv.client('p-day', 'patient');
  const day = await q.request('checkin', { dept: 'cardio' });
  assert.equal(day.next_shift_at, null);
  for (const [c, v] of [[p2, ci], [q, day]]) {
    await c.request('queue.leave', { visit_id: v.visit_id });
    await c.close();
  }
});

test('a patient who reconnects mid-visit gets the chat so far, the last 200 messages', async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-chat', 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  const sent = [];
  for (const [c, text] of [[patient, '头疼三天了'], [doctor, 'Any fever?'], [patient, 'no']])
    sent.push({ id: (await c.request('chat.send', { visit_id: ci.visit_id, text })).message_id, text });

  await patient.drop();
  const back = await srv.client('p-chat', 'patient');
  assert.equal(back.hello.resumed, true);
  const chat = back.hello.state.chat;
  assert.deepEqual(chat.map((m) => [m.message_id, m.text]), sent.map((m) => [m.id, m.text]));
  assert.deepEqual(Object.keys(chat[1]).sort(), ['at', 'from', 'from_role', 'message_id', 'text']);
  assert.equal(chat[1].from, 'd1');
  assert.equal(chat[1].from_role, 'doctor');
  assert.ok(!Number.isNaN(Date.parse(chat[0].at)));

  // A long conversation comes back bounded: the newest 200, oldest first.
  const now = Date.now();
  const rows = Array.from({ length: 250 }, (_, i) => `('${ci.visit_id}', 'p-chat', 'patient', 'line ${i}', ${now + i})`);
  srv.sql(`INSERT INTO chat_messages(visit_id, sender_id, sender_role, body, sent_at) VALUES ${rows.join(',')}`);
  await back.drop();
  const again = await srv.client('p-chat', 'patient');
  const long = again.hello.state.chat;
  assert.equal(long.length, 200);
  assert.equal(long[0].text, 'line 50');
  assert.equal(long[199].text, 'line 249');
  assert.ok(long.every((m, i) => i === 0 || m.message_id > long[i - 1].message_id));

  // A waiting patient's state has no chat (there is none before the visit).
  const waiting = await srv.client('p-chat-w', 'patient');
  await waiting.request('checkin', { dept: 'cardio' });
  await waiting.drop();
  const w2 = await srv.client('p-chat-w', 'patient');
  assert.equal(w2.hello.state.chat, undefined);
  await w2.request('queue.leave', { visit_id: w2.hello.state.visit.visit_id });
  await w2.close();

  await doctor.request('visit.end', { visit_id: ci.visit_id });
  await again.waitFor('visit.state', (m) => m.state === 'ended');
  await again.close();
  await doctor.close();
});

test('a signed note is released to the patient; a draft is not', async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-note', 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');

  await doctor.request('visit.note', { visit_id: ci.visit_id, text: 'draft: maybe G44', diagnosis_code: 'G44.2' });
  assert.deepEqual((await patient.request('visit.notes', { visit_id: ci.visit_id })).notes, []);
  await doctor.request('visit.end', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  assert.equal(patient.pushes.filter((m) => m.type === 'visit.note_released').length, 0);

  // Signed after the end, while the patient looks at the end screen.
  const text = '紧张性头痛。注意休息，多饮水，两周后复诊。';
  await doctor.request('visit.note', { visit_id: ci.visit_id, text, diagnosis_code: 'G44.2', sign: true });
  const pushed = await patient.waitFor('visit.note_released', (m) => m.visit_id === ci.visit_id);
  assert.equal(pushed.text, text);
  assert.equal(pushed.doctor_id, 'd1');
  assert.equal(pushed.diagnosis_code, 'G44.2');

  // After a reload the page asks for it.
  await patient.drop();
  const back = await srv.client('p-note', 'patient');
  const got = await back.request('visit.notes', { visit_id: ci.visit_id });
  assert.equal(got.notes.length, 1);
  assert.deepEqual(got.notes[0], { doctor_id: 'd1', text, diagnosis_code: 'G44.2', signed_at: pushed.signed_at });

  // Nobody else reads it; bad requests say what is wrong.
  const other = await srv.client('p-other', 'patient');
  await assert.rejects(other.request('visit.notes', { visit_id: ci.visit_id }), /forbidden/);
  await assert.rejects(other.request('visit.notes', { visit_id: 'v-nope' }), /not_found/);
  await assert.rejects(other.request('visit.notes', {}), /bad_request: visit_id is required/);
  await assert.rejects(doctor.request('visit.notes', { visit_id: ci.visit_id }), /forbidden/);
  for (const c of [back, other, doctor]) await c.close();
});
