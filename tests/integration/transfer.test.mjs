// Transfer during a visit and referral (issue 18) against the real server
// over WSS with its real SQLite store: a patient handed to another
// department (waiting at the head of its queue) and to named doctors (one
// declines, one accepts) without dropping their connection, with the rows,
// the regulator events, the one visit record with every part and its FHIR
// Encounter checked; a referral up with a booked appointment, declined,
// re-sent and accepted, with its pushes, events and ServiceRequest; and the
// bad input that must change nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, waitUntil } from './lib/server.mjs';

let srv;
let admin;

// The alliance: the core (2A) with cardio and derm, a higher-level member
// (3A) with neuro, and a community clinic with gp; referrals follow levels.
before(async () => {
  srv = await startServer({ args: ['--hospital-level', '2A', '--institutions',
    'top|Top Hospital|ORG-TOP|3A|hospital;east|East Clinic|ORG-EAST|community|clinic'] });
  admin = await setupHospital(srv, {
    depts: ['cardio', 'neuro', 'derm', 'gp'],
    doctors: [['d1', 'cardio'], ['d3', 'cardio'], ['d2', 'neuro'], ['d4', 'neuro']],
    capacity: 2,
  });
  for (const [id, inst] of [['neuro', 'top'], ['gp', 'east']]) {
    const r = await srv.api('POST', '/api/v1/departments', { id, name: `Dept ${id}`, institution_id: inst }, admin);
    assert.equal(r.status, 201, r.text);
  }
});
after(async () => { if (srv) await srv.stop(); });

let patients = 0;

async function doctor(id, status = 'available') {
  const c = await srv.client(id, 'doctor');
  await c.request('doctor.status', { status });
  return c;
}

// A live visit in cardio with d (already on duty) attending.
async function liveVisit(d) {
  const patientId = `tp${++patients}`;
  const p = await srv.client(patientId, 'patient');
  const ci = await p.request('checkin', { dept: 'cardio' });
  await d.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await d.request('visit.accept', { visit_id: ci.visit_id });
  await p.waitFor('visit.state', (m) => m.state === 'active');
  return { p, visitId: ci.visit_id, patientId };
}

const outbox = (visitId) => srv.sql(`SELECT type, payload FROM outbox WHERE visit_id = '${visitId}' ORDER BY seq`)
  .map((r) => ({ type: r.type, data: JSON.parse(r.payload) }));
// Outbox rows of transfers and referrals only: other visits' events (a
// participant leaving an earlier test's visit) may land at any time.
const counts = () => srv.sql(`SELECT (SELECT count(*) FROM visit_transfers) t,
  (SELECT count(*) FROM outbox WHERE type LIKE 'referral.%' OR type LIKE 'visit.transfer%') o,
  (SELECT count(*) FROM referrals) r`)[0];

// First: only d1 is on duty in cardio here, which one of these cases needs.
test('bad transfers are refused with a clear error and change nothing', async () => {
  const d1 = await doctor('d1');
  const { p, visitId } = await liveVisit(d1);
  const before = counts();
  await assert.rejects(p.request('visit.transfer', { visit_id: visitId, dept: 'neuro', reason: 'x' }), /forbidden/);
  const d2 = await doctor('d2');
  await assert.rejects(d2.request('visit.transfer', { visit_id: visitId, dept: 'neuro', reason: 'x' }), /forbidden/);
  const own = await d1.request('visit.transfer', { visit_id: visitId, dept: 'cardio', reason: 'x' }).catch((e) => e);
  assert.equal(own.code, 'conflict');
  assert.equal(own.reason, 'nobody_on_duty');
  const unknown = await d1.request('visit.transfer', { visit_id: visitId, dept: 'nowhere', reason: 'x' }).catch((e) => e);
  assert.deepEqual([unknown.code, unknown.reason], ['not_found', 'unknown_target']);
  await assert.rejects(d1.request('visit.transfer', { visit_id: visitId, doctor_id: 'd-none', reason: 'x' }), /not_found/);
  await assert.rejects(d1.request('visit.transfer', { visit_id: visitId, doctor_id: 'd1', reason: 'x' }), /bad_request/);
  await assert.rejects(d1.request('visit.transfer', { visit_id: visitId, dept: 'neuro' }), /bad_request/);
  await assert.rejects(d1.request('visit.transfer', { visit_id: visitId, dept: 'neuro', reason: 'r'.repeat(501) }), /bad_request/);
  await assert.rejects(d1.request('visit.transfer', { visit_id: visitId, reason: 'x' }), /bad_request/);
  // A named doctor who is not connected cannot be offered the patient.
  const busy = await d1.request('visit.transfer', { visit_id: visitId, doctor_id: 'd4', reason: 'x' }).catch((e) => e);
  assert.deepEqual([busy.code, busy.reason], ['conflict', 'doctor_busy']);
  assert.deepEqual(counts(), before);
  assert.equal(srv.sql(`SELECT state FROM visits WHERE id = '${visitId}'`)[0].state, 'active');

  await d1.request('visit.end', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'ended');
  const ended = counts();
  await assert.rejects(d1.request('visit.transfer', { visit_id: visitId, dept: 'neuro', reason: 'x' }), /conflict/);
  assert.deepEqual(counts(), ended);
  await p.close();
  await d1.close();
  await d2.close();
});

test('a transfer to a department: the patient stays connected and waits at the head of its queue', async () => {
  const d1 = await doctor('d1');
  const d2 = await doctor('d2', 'away'); // on duty for estimates, not offered patients
  const { p, visitId } = await liveVisit(d1);
  // Someone already waits in neurology.
  const q = await srv.client(`tq${++patients}`, 'patient');
  const qci = await q.request('checkin', { dept: 'neuro' });

  const res = await d1.request('visit.transfer', { visit_id: visitId, dept: 'neuro', reason: 'headaches: neurology' });
  assert.equal(res.visit_id, visitId);
  assert.equal(res.dept, 'neuro');
  assert.equal(res.doctor_id, null);
  assert.match(res.transfer_id, /^tr-/);
  const told = await p.waitFor('visit.transferred', (m) => m.visit_id === visitId);
  assert.equal(told.dept, 'neuro');
  assert.equal(told.reason, undefined); // the doctor's reason is theirs to tell
  const st = await p.waitFor('visit.state', (m) => m.state === 'waiting');
  assert.equal(st.dept, 'neuro');
  assert.equal(st.doctor_id, null);
  const pos = await p.waitFor('queue.position', (m) => m.visit_id === visitId);
  assert.equal(pos.position, 1);
  // Ahead of the patient who checked in before: the head of the queue.
  const queue = await d2.request('doctor.queue', { dept: 'neuro' });
  assert.deepEqual(queue.queue.map((x) => x.visit_id), [visitId, qci.visit_id]);
  assert.equal(p.ws.readyState, 1);

  // d1 is free and out of the visit: it is no longer theirs.
  await assert.rejects(d1.request('chat.send', { visit_id: visitId, text: 'hi' }), /forbidden/);
  assert.deepEqual((await d1.request('doctor.status', { status: 'available' })).visits, []);

  await d2.request('doctor.status', { status: 'available' });
  const offer = await d2.waitFor('visit.offer', (m) => m.visit_id === visitId);
  assert.deepEqual(offer.transfer, { from_doctor_id: 'd1', reason: 'headaches: neurology' });
  await d2.request('visit.accept', { visit_id: visitId });
  const live = await p.waitFor('visit.state', (m) => m.state === 'active');
  assert.equal(live.doctor_id, 'd2');
  await p.request('chat.send', { visit_id: visitId, text: 'hello again' });
  await d2.request('visit.end', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'ended');

  // The rows: d1's part closed as transferred, d2's part, the transfer.
  const parts = srv.sql(`SELECT user_id, visit_role, leave_reason FROM participants
    WHERE visit_id = '${visitId}' AND role = 'doctor' ORDER BY id`);
  assert.deepEqual(parts, [
    { user_id: 'd1', visit_role: 'attending', leave_reason: 'transferred' },
    { user_id: 'd2', visit_role: 'attending', leave_reason: 'completed' },
  ]);
  const [t] = srv.sql(`SELECT * FROM visit_transfers WHERE visit_id = '${visitId}'`);
  assert.equal(t.from_doctor_id, 'd1');
  assert.equal(t.from_dept_id, 'cardio');
  assert.equal(t.to_dept_id, 'neuro');
  assert.equal(t.to_doctor_id, null);
  assert.equal(t.accepted_by, 'd2');
  assert.ok(t.part_started_at <= t.transferred_at && t.transferred_at <= t.accepted_at);
  // The feed: one visit, its events in order; the first accept stays the visit's start.
  const events = outbox(visitId);
  assert.deepEqual(events.map((e) => e.type),
    ['visit.checked_in', 'visit.started', 'visit.transferred', 'visit.started', 'visit.ended']);
  const tr = events[2].data;
  assert.equal(tr.transfer.from_doctor_id, 'd1');
  assert.equal(tr.transfer.to_department_id, 'neuro');
  assert.equal(tr.transfer.reason, 'headaches: neurology');
  assert.equal(tr.state, 'waiting');
  assert.equal(events[3].data.transfer.accepted_by, 'd2');
  assert.equal(events[3].data.times.started_at, events[1].data.times.started_at);
  assert.deepEqual(events[4].data.doctors.map((d) => d.doctor_id), ['d1', 'd2']);

  // One visit record with both parts; its FHIR Encounter with both doctors.
  const rec = (await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin)).json;
  assert.equal(rec.parts.length, 2);
  assert.deepEqual(rec.parts.map((x) => [x.part, x.doctor_id, x.dept_id, x.ended_by]),
    [[1, 'd1', 'cardio', 'transfer'], [2, 'd2', 'neuro', 'completed']]);
  assert.equal(rec.parts[0].transfer.reason, 'headaches: neurology');
  assert.equal(rec.parts[0].ended_at, new Date(t.transferred_at).toISOString());
  assert.equal(rec.parts[1].started_at, new Date(t.accepted_at).toISOString());
  assert.equal(rec.parts[1].ended_at, rec.ended_at);
  const enc = (await srv.api('GET', `/api/v1/visits/${visitId}/fhir`, undefined, admin)).json;
  const atnd = enc.participant.filter((x) => x.type[0].coding[0].code === 'ATND');
  assert.equal(atnd.length, 2);
  const who = (r) => enc.contained.find((c) => `#${c.id}` === r.individual.reference).identifier[0].value;
  assert.deepEqual(atnd.map(who), ['d1', 'd2']);
  assert.deepEqual(atnd.map((x) => x.period), [
    { start: rec.parts[0].started_at, end: rec.parts[0].ended_at },
    { start: rec.parts[1].started_at, end: rec.ended_at },
  ]);
  await q.request('queue.leave', { visit_id: qci.visit_id });
  for (const c of [p, q, d1, d2]) await c.close();
});

test('a transfer to named doctors: one declines (the department queue takes the patient), one accepts', async () => {
  const d1 = await doctor('d1');
  const d2 = await doctor('d2');
  const d3 = await doctor('d3');
  const d4 = await doctor('d4', 'away');
  const { p, visitId } = await liveVisit(d1);
  const res = await d1.request('visit.transfer', { visit_id: visitId, doctor_id: 'd2', reason: 'stroke signs' });
  assert.deepEqual([res.dept, res.doctor_id], ['neuro', 'd2']);
  const offer = await d2.waitFor('visit.offer', (m) => m.visit_id === visitId);
  assert.equal(offer.transfer.reason, 'stroke signs');
  const told = await p.waitFor('visit.transferred', (m) => m.visit_id === visitId);
  assert.equal(told.doctor_id, 'd2');
  await p.waitFor('visit.state', (m) => m.state === 'offered' && m.doctor_id === 'd2');
  // d2 declines: the patient waits at the head of neurology, and the next
  // neurologist at work is offered them.
  await d2.request('visit.decline', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'waiting' && m.dept === 'neuro');
  await d4.request('doctor.status', { status: 'available' });
  await d4.waitFor('visit.offer', (m) => m.visit_id === visitId);
  await d4.request('visit.accept', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'active' && m.doctor_id === 'd4');

  // Handed on once more, back to cardiology's d3, who accepts.
  await d4.request('visit.transfer', { visit_id: visitId, doctor_id: 'd3', reason: 'back to cardiology' });
  await d3.waitFor('visit.offer', (m) => m.visit_id === visitId);
  await d3.request('visit.accept', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'active' && m.doctor_id === 'd3');
  await d3.request('visit.end', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'ended');

  const offers = srv.sql(`SELECT doctor_id, outcome FROM offers WHERE visit_id = '${visitId}' ORDER BY id`);
  assert.deepEqual(offers.map((o) => `${o.doctor_id}:${o.outcome}`),
    ['d1:accepted', 'd2:declined', 'd4:accepted', 'd3:accepted']);
  const rec = (await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin)).json;
  assert.deepEqual(rec.parts.map((x) => [x.doctor_id, x.dept_id]),
    [['d1', 'cardio'], ['d4', 'neuro'], ['d3', 'cardio']]);
  assert.deepEqual(rec.transfers.map((x) => [x.to_doctor_id, x.accepted_by]), [['d2', 'd4'], ['d3', 'd3']]);
  assert.deepEqual(outbox(visitId).map((e) => e.type).filter((x) => x === 'visit.transferred').length, 2);
  // The first doctor still reads the record of the visit they attended.
  const mine = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, srv.token('d1', 'doctor'));
  assert.equal(mine.status, 200);
  for (const c of [p, d1, d2, d3, d4]) await c.close();
});

test('a referral up with a booked appointment: declined, re-sent, accepted', async () => {
  const d1 = await doctor('d1');
  const d2 = await doctor('d2');
  const { p, visitId, patientId } = await liveVisit(d1);
  await d1.request('visit.end', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'ended');
  const slot = new Date(Date.now() + 3 * 86400e3).toISOString();
  const appt = await srv.api('POST', '/api/v1/appointments', { patient_id: patientId, dept_id: 'neuro', slot, kind: 'follow_up' }, admin);
  assert.equal(appt.status, 201, appt.text);
  const t1 = srv.token('d1', 'doctor');
  const t2 = srv.token('d2', 'doctor');
  const body = { visit_id: visitId, direction: 'up', to_dept_id: 'neuro', reason: 'suspected TIA',
    summary: 'Two episodes of weakness; BP 150/95.', appointment_id: appt.json.id };

  const created = await srv.api('POST', '/api/v1/referrals', body, t1);
  assert.equal(created.status, 201, created.text);
  const r1 = created.json;
  assert.match(r1.id, /^rf-/);
  assert.deepEqual([r1.state, r1.version, r1.replaces, r1.from_dept_id, r1.patient_id],
    ['requested', 1, null, 'cardio', patientId]);
  const got = await d2.waitFor('referral.received', (m) => m.referral_id === r1.id);
  assert.deepEqual([got.direction, got.to_dept_id, got.from_doctor_id], ['up', 'neuro', 'd1']);

  const declined = await srv.api('POST', `/api/v1/referrals/${r1.id}/decline`, { reason: 'no slot this week' }, t2);
  assert.equal(declined.status, 200, declined.text);
  assert.equal(declined.json.state, 'declined');
  const ans = await d1.waitFor('referral.answered', (m) => m.referral_id === r1.id);
  assert.deepEqual([ans.state, ans.decline_reason], ['declined', 'no slot this week']);

  const resent = await srv.api('POST', `/api/v1/referrals/${r1.id}/resend`, { reason: 'suspected TIA, worse today' }, t1);
  assert.equal(resent.status, 201, resent.text);
  const r2 = resent.json;
  assert.deepEqual([r2.version, r2.replaces, r2.state, r2.reason, r2.appointment_id],
    [2, r1.id, 'requested', 'suspected TIA, worse today', appt.json.id]);
  await d2.waitFor('referral.received', (m) => m.referral_id === r2.id && m.version === 2);
  const old = (await srv.api('GET', `/api/v1/referrals/${r1.id}`, undefined, t1)).json;
  assert.deepEqual([old.state, old.replaced_by], ['resent', r2.id]);

  const accepted = await srv.api('POST', `/api/v1/referrals/${r2.id}/accept`, {}, t2);
  assert.equal(accepted.status, 200, accepted.text);
  assert.deepEqual([accepted.json.state, accepted.json.decided_by], ['accepted', 'd2']);
  await d1.waitFor('referral.answered', (m) => m.referral_id === r2.id && m.state === 'accepted');

  const events = outbox(visitId).filter((e) => e.type.startsWith('referral.'));
  assert.deepEqual(events.map((e) => `${e.type}:${e.data.referral.version}`),
    ['referral.created:1', 'referral.declined:1', 'referral.created:2', 'referral.accepted:2']);
  assert.equal(events[1].data.referral.decline_reason, 'no slot this week');
  assert.equal(events[0].data.referral.appointment_id, appt.json.id);
  assert.equal(events[0].data.visit_id, visitId);
  // The clinical summary stays at the hospitals.
  assert.ok(!events.some((e) => JSON.stringify(e.data).includes('BP 150/95')));

  const list = (await srv.api('GET', '/api/v1/referrals?to_dept=neuro', undefined, t2)).json.referrals;
  assert.deepEqual(list.map((x) => x.id), [r2.id, r1.id]);
  const mine = (await srv.api('GET', '/api/v1/referrals', undefined, t1)).json.referrals;
  assert.ok(mine.every((x) => x.from_doctor_id === 'd1'));

  const fhir = await srv.api('GET', `/api/v1/referrals/${r2.id}/fhir`, undefined, t2);
  assert.equal(fhir.status, 200, fhir.text);
  const b = fhir.json;
  assert.deepEqual([b.resourceType, b.type, b.entry.length], ['Bundle', 'collection', 2]);
  const sr = b.entry[0].resource;
  assert.equal(sr.resourceType, 'ServiceRequest');
  assert.deepEqual([sr.id, sr.status, sr.intent], [r2.id, 'active', 'order']);
  assert.equal(sr.category[0].coding[0].code, '3457005');
  assert.equal(sr.subject.identifier.value, patientId);
  assert.equal(sr.requester.identifier.value, 'd1');
  // Performed by the receiving institution (an Organization) and its department.
  assert.deepEqual(sr.performer.map((x) => [x.type, x.identifier.value, x.display]),
    [['Organization', 'top', 'Top Hospital'], ['HealthcareService', 'neuro', undefined]]);
  assert.deepEqual(sr.replaces, [{ reference: `ServiceRequest/${r1.id}` }]);
  assert.deepEqual(sr.supportingInfo, [{ reference: `Appointment/${appt.json.id}` }]);
  assert.equal(sr.reasonCode[0].text, 'suspected TIA, worse today');
  assert.equal(sr.encounter.reference, `Encounter/${visitId}`);
  const enc = b.entry[1];
  assert.equal(enc.resource.resourceType, 'Encounter');
  assert.equal(enc.resource.id, visitId);
  assert.ok(enc.fullUrl.endsWith(`/Encounter/${visitId}`));
  const oldFhir = (await srv.api('GET', `/api/v1/referrals/${r1.id}/fhir`, undefined, admin)).json;
  assert.equal(oldFhir.entry[0].resource.status, 'revoked');
  for (const c of [p, d1, d2]) await c.close();
});

test('bad referrals are refused and change nothing', async () => {
  const d1 = await doctor('d1');
  const { p, visitId, patientId } = await liveVisit(d1);
  const t1 = srv.token('d1', 'doctor');
  const good = { visit_id: visitId, direction: 'up', to_dept_id: 'neuro', reason: 'r', summary: 's' };
  const before = counts();
  const cases = [
    [srv.token(patientId, 'patient'), good, 403],
    [srv.token('d2', 'doctor'), good, 403],
    [t1, { ...good, direction: 'sideways' }, 400],
    [t1, { ...good, to_dept_id: 'nowhere' }, 404],
    [t1, { ...good, to_dept_id: 'cardio' }, 400],
    [t1, { ...good, summary: '' }, 400],
    [t1, { ...good, visit_id: 'v-none' }, 404],
    [t1, { ...good, appointment_id: 'a-none' }, 404],
  ];
  for (const [token, body, status] of cases) {
    const r = await srv.api('POST', '/api/v1/referrals', body, token);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
  }
  // Up and down follow the institutions' levels, with a reason word the page translates.
  const levels = [
    [{ ...good, direction: 'down' }, 'not_lower', /down goes to a lower level: top \(level 3A\) is not below demo-hospital \(level 2A\)/],
    [{ ...good, to_dept_id: 'gp' }, 'not_higher', /up goes to a higher level: east \(level community\) is not above/],
    [{ ...good, to_dept_id: 'derm' }, 'same_institution', /another member of the alliance/],
  ];
  for (const [body, reason, message] of levels) {
    const r = await srv.api('POST', '/api/v1/referrals', body, t1);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.reason, reason);
    assert.match(r.json.error.message, message);
  }
  assert.deepEqual(counts(), before);
  const down = await srv.api('POST', '/api/v1/referrals', { ...good, direction: 'down', to_dept_id: 'gp' }, t1);
  assert.equal(down.status, 201, down.text);
  const further = await srv.api('POST', `/api/v1/referrals/${down.json.id}/decline`, { reason: 'full' }, admin);
  assert.equal(further.status, 403); // only the receiving side answers
  before.r += 1;
  before.o += 1;
  const ok = await srv.api('POST', '/api/v1/referrals', good, t1);
  assert.equal(ok.status, 201, ok.text);
  const id = ok.json.id;
  // Only the receiving side answers; a decline needs a reason; an open one is not re-sent.
  assert.equal((await srv.api('POST', `/api/v1/referrals/${id}/accept`, {}, t1)).status, 403);
  const t2 = srv.token('d2', 'doctor');
  assert.equal((await srv.api('POST', `/api/v1/referrals/${id}/decline`, {}, t2)).status, 400);
  assert.equal((await srv.api('POST', `/api/v1/referrals/${id}/resend`, {}, t1)).status, 409);
  assert.equal((await srv.api('GET', `/api/v1/referrals/${id}`, undefined, srv.token('d3', 'doctor'))).status, 403);
  assert.equal((await srv.api('GET', '/api/v1/referrals/rf-none', undefined, admin)).status, 404);
  assert.equal((await srv.api('POST', `/api/v1/referrals/${id}/accept`, {}, t2)).status, 200);
  assert.equal((await srv.api('POST', `/api/v1/referrals/${id}/accept`, {}, t2)).status, 409);
  await waitUntil('referral events', () => outbox(visitId).filter((e) => e.type.startsWith('referral.')).length === 3);
  for (const c of [p, d1]) await c.close();
});

test('a transfer with a consulting doctor in the visit and open invites: they stay with the patient and the next doctor', async () => {
  for (const [id, kind] of [['n1', 'nurse'], ['i1', 'interpreter']]) {
    const r = await srv.api('POST', '/api/v1/doctors', { id, name: `Staff ${id}`, dept_id: 'cardio', kind }, admin);
    assert.equal(r.status, 201, r.text);
  }
  const d1 = await doctor('d1');
  const d2 = await doctor('d2');
  const d3 = await doctor('d3', 'away');
  const n1 = await doctor('n1', 'away');
  const i1 = await doctor('i1', 'away');
  const { p, visitId, patientId } = await liveVisit(d1);
  const inv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'd3', role: 'consulting' });
  await d3.request('visit.invite_answer', { invite_id: inv.invite_id, accept: true });
  const nurseInv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' });
  const interpInv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'i1', role: 'interpreter' });

  const done = await d1.request('visit.transfer', { visit_id: visitId, doctor_id: 'd2', reason: 'needs a neurologist now' });
  assert.equal(done.doctor_id, 'd2');
  // The consulting doctor stays, now with the patient alone, and hears the doctor left.
  const between = await d3.waitFor('visit.participants', (m) => m.visit_id === visitId && !m.participants.some((x) => x.role === 'attending'));
  assert.deepEqual(between.participants.map((x) => [x.id, x.role]), [[patientId, 'patient'], ['d3', 'consulting']]);
  assert.deepEqual(srv.sql(`SELECT user_id, visit_role, left_at IS NULL AS here FROM participants
    WHERE visit_id = '${visitId}' AND user_id IN ('d1', 'd3') ORDER BY user_id`),
  [{ user_id: 'd1', visit_role: 'attending', here: 0 }, { user_id: 'd3', visit_role: 'consulting', here: 1 }]);
  // An invite answered before the next doctor is there stays open.
  const early = await n1.request('visit.invite_answer', { invite_id: nurseInv.invite_id, accept: true }).catch((e) => e);
  assert.deepEqual([early.code, early.reason], ['conflict', 'awaiting_doctor']);

  await d2.waitFor('visit.offer', (m) => m.visit_id === visitId);
  await d2.request('visit.accept', { visit_id: visitId });
  const met = await d3.waitFor('visit.participants', (m) => m.visit_id === visitId && m.participants.some((x) => x.id === 'd2'));
  assert.deepEqual(met.participants.filter((x) => x.role !== 'patient').map((x) => [x.id, x.role]),
    [['d2', 'attending'], ['d3', 'consulting']]);
  // The invites carried over: the nurse joins now; the new attending withdraws the interpreter's.
  await n1.request('visit.invite_answer', { invite_id: nurseInv.invite_id, accept: true });
  await d2.waitFor('visit.participants', (m) => m.visit_id === visitId && m.participants.some((x) => x.id === 'n1'));
  await d2.request('visit.invite_cancel', { invite_id: interpInv.invite_id });
  assert.equal((await i1.waitFor('visit.invite_ended', (m) => m.invite_id === interpInv.invite_id)).outcome, 'cancelled');
  // The doctor who handed on no longer answers for the visit's invites.
  const late = await d1.request('visit.invite', { visit_id: visitId, user_id: 'i1', role: 'interpreter' }).catch((e) => e);
  assert.equal(late.code, 'forbidden');
  await d2.request('visit.end', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'ended');
  for (const c of [p, d1, d2, d3, n1, i1]) await c.close();
});

test('a restart while a transferred patient waits: still first in line, not offered back to the first doctor', async () => {
  const d1 = await doctor('d1');
  const { p, visitId, patientId } = await liveVisit(d1);
  await d1.request('doctor.status', { status: 'away' });
  const qId = `tq${++patients}`;
  const q = await srv.client(qId, 'patient');
  const qci = await q.request('checkin', { dept: 'cardio' });
  const d3 = await doctor('d3', 'away');
  await d1.request('visit.transfer', { visit_id: visitId, dept: 'cardio', reason: 'a colleague of mine should see this' });
  assert.deepEqual((await d3.request('doctor.queue', { dept: 'cardio' })).queue.map((x) => x.visit_id), [visitId, qci.visit_id]);

  await srv.restart();
  const p2 = await srv.client(patientId, 'patient');
  const q2 = await srv.client(qId, 'patient');
  assert.equal(p2.hello.state.visit.state, 'waiting');
  const d3b = await doctor('d3', 'away');
  assert.deepEqual((await d3b.request('doctor.queue', { dept: 'cardio' })).queue.map((x) => x.visit_id), [visitId, qci.visit_id]);
  // The first doctor comes back first: they are offered the patient behind, not the one they handed on.
  const d1b = await doctor('d1');
  const first = await d1b.waitFor('visit.offer');
  assert.equal(first.visit_id, qci.visit_id);
  await d3b.request('doctor.status', { status: 'available' });
  const offer = await d3b.waitFor('visit.offer', (m) => m.visit_id === visitId);
  assert.deepEqual(offer.transfer, { from_doctor_id: 'd1', reason: 'a colleague of mine should see this' });
  await d3b.request('visit.accept', { visit_id: visitId });
  await p2.waitFor('visit.state', (m) => m.state === 'active' && m.doctor_id === 'd3');
  await d3b.request('visit.end', { visit_id: visitId });
  await d1b.request('visit.decline', { visit_id: qci.visit_id });
  await q2.request('queue.leave', { visit_id: qci.visit_id });
  const rec = (await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin)).json;
  assert.deepEqual(rec.parts.map((x) => x.doctor_id), ['d1', 'd3']);
  for (const c of [p, q, d1, d3, p2, q2, d3b, d1b]) await c.close();
});
