// Consultation requests (issue 18, 远程会诊) against the real server over
// WSS and HTTPS, with its real SQLite store and the stand-in regulator over
// HTTPS: requested from a live visit -> another time proposed -> the
// proposal accepted (scheduled, with the patient's appointment) -> the
// patient checks in with it, the requester accepts, the specialist is told
// and joins (three participants) -> the opinion signed. The pushes, the
// SQLite rows, the audit rows and the regulator's events are checked, and
// docs/protocol.md's and docs/regulator-feed.md's examples against what was
// really sent. Then bad input: wrong role, unknown department, a time in the
// past, a double accept, a decline without a reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, setupHospital, waitUntil } from './lib/server.mjs';
import { startRegulator } from '../feed/regulator.mjs';
import { makePki, tmpDir } from '../feed/lib.mjs';

const SRC = process.env.TELEMED_SRC_DIR || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECRET = 'consult-feed-secret';
let srv, reg, root, admin;

before(async () => {
  root = tmpDir('tm-consult-');
  const pki = makePki(root);
  reg = await startRegulator({ secret: SECRET, tls: pki.server });
  srv = await startServer({ args: ['--feed-url', reg.url, '--feed-secret', SECRET, '--feed-ca', pki.caFile,
    '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '500'] });
  // gp asks, cardio answers: dspec is the specialist, dduty on duty there.
  admin = await setupHospital(srv, { depts: ['gp', 'cardio'],
    doctors: [['dreq', 'gp'], ['dspec', 'cardio'], ['dduty', 'cardio']], capacity: 4 });
});
after(async () => {
  if (srv) await srv.stop();
  if (reg) await reg.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const iso = (ms) => new Date(ms).toISOString();
const api = (method, p, body, who) => srv.api(method, p, body, srv.token(who, who.startsWith('p') ? 'patient' : 'doctor'));
const step = (id, what, body, who) => api('POST', `/api/v1/consultations/${id}/${what}`, body, who);

async function doctor(id) {
  const c = await srv.client(id, 'doctor');
  await c.request('doctor.status', { status: 'available' });
  return c;
}

// A live visit of patientId with dreq attending, in gp.
async function liveVisit(dreq, patientId) {
  const p = await srv.client(patientId, 'patient');
  const ci = await p.request('checkin', { dept: 'gp' });
  await dreq.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await dreq.request('visit.accept', { visit_id: ci.visit_id });
  await p.waitFor('visit.state', (m) => m.state === 'active');
  return { p, visitId: ci.visit_id };
}

function request(patient, visitId, extra = {}) {
  const now = Date.now();
  return { patient_id: patient, visit_id: visitId, dept_id: 'cardio', specialist_id: 'dspec',
    reason: 'Atrial fibrillation on ECG', question: 'Anticoagulation or not?',
    attachments: ['ecg:2026-12-07-001', 'lab:inr-77'], urgency: 'urgent',
    window_start: iso(now), window_end: iso(now + 3 * 86400e3), ...extra };
}

const sent = new Map(); // push type -> the pushes the doctors received

function keep(c) {
  const on = c.onMessage.bind(c);
  c.onMessage = (m) => {
    if (m.type?.startsWith('consultation.')) {
      if (!sent.has(m.type)) sent.set(m.type, []);
      sent.get(m.type).push(m);
    }
    on(m);
  };
  return c;
}

test('requested, proposed, accepted, held with three, opinion signed: pushes, rows, feed', { timeout: 240000 }, async () => {
  const dreq = keep(await doctor('dreq'));
  const dduty = keep(await doctor('dduty'));
  const dspec = keep(await doctor('dspec'));
  const { p, visitId: origin } = await liveVisit(dreq, 'p-cons-1');

  // Requested from the live visit: the department's doctors on duty and the named specialist hear.
  let r = await api('POST', '/api/v1/consultations', request('p-cons-1', origin), 'dreq');
  assert.equal(r.status, 201, r.text);
  const cr = r.json;
  assert.match(cr.consultation_id, /^cr-/);
  assert.equal(cr.state, 'requested');
  assert.equal(cr.requester_dept_id, 'gp');
  assert.equal(cr.origin_visit_id, origin);
  assert.deepEqual(cr.attachments, ['ecg:2026-12-07-001', 'lab:inr-77']);
  const id = cr.consultation_id;
  for (const c of [dduty, dspec, dreq])
    await c.waitFor('consultation.updated', (m) => m.event === 'requested' && m.consultation.consultation_id === id);
  await dreq.request('visit.end', { visit_id: origin });
  await p.waitFor('visit.state', (m) => m.state === 'ended');

  // Incoming for cardio, outgoing for the requester; gp's list of incoming does not have it.
  r = await api('GET', '/api/v1/consultations?side=incoming&state=requested', undefined, 'dduty');
  assert.deepEqual(r.json.consultations.map((x) => x.consultation_id), [id]);
  r = await api('GET', '/api/v1/consultations?side=outgoing', undefined, 'dreq');
  assert.deepEqual(r.json.consultations.map((x) => x.consultation_id), [id]);
  r = await api('GET', '/api/v1/consultations?side=incoming', undefined, 'dreq');
  assert.deepEqual(r.json.consultations, []);

  // cardio proposes another time; the requester accepts it.
  const slot = Date.now() + 600e3;
  r = await step(id, 'propose', { slot_at: iso(slot), specialist_id: 'dspec' }, 'dduty');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'proposed');
  await dreq.waitFor('consultation.updated', (m) => m.event === 'proposed');
  r = await step(id, 'accept-proposal', {}, 'dreq');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'scheduled');
  assert.equal(r.json.specialist_id, 'dspec');
  assert.ok(Math.abs(Date.parse(r.json.slot_at) - slot) < 1000, r.json.slot_at);
  const apptId = r.json.appointment_id;
  await dspec.waitFor('consultation.updated', (m) => m.event === 'scheduled');
  await dduty.waitFor('consultation.updated', (m) => m.event === 'scheduled');
  const appt = srv.sql(`SELECT patient_id, dept_id, doctor_id, status FROM appointments WHERE id = '${apptId}'`);
  assert.deepEqual(appt, [{ patient_id: 'p-cons-1', dept_id: 'gp', doctor_id: 'dreq', status: 'booked' }]);
  // A double accept, and a schedule of what is scheduled, change nothing.
  r = await step(id, 'accept-proposal', {}, 'dreq');
  assert.equal(r.status, 409, r.text);
  r = await step(id, 'schedule', { slot_at: iso(slot + 60e3), specialist_id: 'dspec' }, 'dduty');
  assert.equal(r.status, 409, r.text);

  // At the time: the patient checks in with the appointment as for a follow-up.
  const ci = await p.request('checkin', { appointment_id: apptId });
  await dreq.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await dreq.request('visit.accept', { visit_id: ci.visit_id });
  const started = await dspec.waitFor('consultation.started', (m) => m.consultation_id === id);
  assert.equal(started.visit_id, ci.visit_id);
  assert.equal(started.role, 'consulting');
  // The requester attends: nobody calls them to join what they are in.
  await dreq.waitFor('consultation.updated', (m) => m.event === 'in_progress');
  assert.ok(!(sent.get('consultation.started') || []).some((m) => m.consultation_id === id && m !== started));
  // The wrong doctor may not join; the specialist does.
  await assert.rejects(dduty.request('consultation.join', { consultation_id: id }), /not_found/);
  const joined = await dspec.request('consultation.join', { consultation_id: id });
  assert.equal(joined.role, 'consulting');
  const roles = (m) => m.participants.map((x) => `${x.role}:${x.id}:${x.connected}`).sort();
  const three = ['attending:dreq:true', 'consulting:dspec:true', 'patient:p-cons-1:true'];
  assert.deepEqual(roles(joined), three);
  assert.deepEqual(roles(await p.waitFor('visit.participants', (m) => m.participants.length === 3)), three);
  await assert.rejects(dspec.request('consultation.join', { consultation_id: id }), /conflict/);

  // The opinion: a draft, then signed; only the specialist; signed once.
  r = await step(id, 'opinion', { body: 'Start a DOAC.', sign: false }, 'dreq');
  assert.equal(r.status, 403, r.text);
  r = await step(id, 'opinion', { body: 'Draft.', sign: false }, 'dspec');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'in_progress');
  r = await step(id, 'opinion', { body: 'CHA2DS2-VASc 3: start a DOAC.', diagnosis_code: 'I48.0', sign: true }, 'dspec');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'completed');
  await dreq.waitFor('consultation.updated', (m) => m.event === 'opinion_signed');
  r = await step(id, 'opinion', { body: 'Changed my mind.', sign: true }, 'dspec');
  assert.equal(r.status, 409, r.text);
  await dreq.request('visit.end', { visit_id: ci.visit_id });
  await p.waitFor('visit.state', (m) => m.state === 'ended');

  // The rows: the request, its note in the visit, the visit record.
  const row = srv.sql(`SELECT state, visit_id, specialist_id, opinion, opinion_diagnosis_code,
    opinion_signed_at IS NOT NULL AS signed FROM consultations WHERE id = '${id}'`)[0];
  assert.deepEqual(row, { state: 'completed', visit_id: ci.visit_id, specialist_id: 'dspec',
    opinion: 'CHA2DS2-VASc 3: start a DOAC.', opinion_diagnosis_code: 'I48.0', signed: 1 });
  assert.deepEqual(srv.sql(`SELECT doctor_id, body, signed FROM notes WHERE visit_id = '${ci.visit_id}'`),
    [{ doctor_id: 'dspec', body: 'CHA2DS2-VASc 3: start a DOAC.', signed: 1 }]);
  assert.deepEqual(srv.sql(`SELECT visit_role FROM participants WHERE visit_id = '${ci.visit_id}'
    GROUP BY user_id ORDER BY min(id)`).map((x) => x.visit_role), ['patient', 'attending', 'consulting']);
  r = await srv.api('GET', `/api/v1/visits/${ci.visit_id}`, undefined, admin);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.consultation.consultation_id, id);
  assert.equal(r.json.consultation.opinion_diagnosis_code, 'I48.0');
  const audit = srv.sql(`SELECT action FROM audit_log WHERE target = '${id}' AND outcome = 'ok' ORDER BY id`).map((x) => x.action);
  for (const a of ['consultation.request', 'consultation.propose', 'consultation.accept_proposal',
    'consultation.start', 'consultation.join', 'consultation.opinion', 'consultation.opinion_sign'])
    assert.ok(audit.includes(a), `no audit ${a} in ${audit}`);

  // The outbox and the regulator: each step once, in order, no words of the request.
  const outbox = srv.sql(`SELECT event_id, type FROM outbox WHERE visit_id IN ('${id}', '${ci.visit_id}')
    AND type LIKE 'consultation.%' ORDER BY seq`);
  assert.deepEqual(outbox.map((x) => x.type), ['consultation.requested', 'consultation.proposed',
    'consultation.scheduled', 'consultation.opinion_signed']);
  await waitUntil('the consultation events at the regulator', () =>
    outbox.every((o) => reg.events.some((e) => e.id === o.event_id)), 60000);
  const events = new Map(reg.events.filter((e) => e.type.startsWith('consultation.')).map((e) => [e.type, e]));
  assert.equal(events.get('consultation.requested').visit_id, id);
  assert.equal(events.get('consultation.scheduled').data.appointment_id, apptId);
  assert.equal(events.get('consultation.opinion_signed').visit_id, ci.visit_id);
  assert.equal(events.get('consultation.opinion_signed').data.consultation.opinion.diagnosis_code, 'I48.0');
  assert.deepEqual(events.get('consultation.opinion_signed').data.doctors.map((d) => d.role), ['attending', 'consulting']);
  const wire = JSON.stringify([...events.values()]);
  for (const words of ['Atrial fibrillation', 'Anticoagulation', 'DOAC', 'ecg:2026']) assert.ok(!wire.includes(words), words);
  assert.deepEqual(reg.stats().orderViolations, []);
  assert.equal(reg.stats().badSignatures, 0);

  // A second request, declined by the department with a reason; a third whose proposal the requester declines.
  const { visitId: v2 } = await liveVisit(dreq, 'p-cons-2');
  r = await api('POST', '/api/v1/consultations', request('p-cons-2', v2, { specialist_id: undefined }), 'dreq');
  assert.equal(r.status, 201, r.text);
  const id2 = r.json.consultation_id;
  r = await step(id2, 'decline', {}, 'dduty');
  assert.equal(r.status, 400, r.text);
  r = await step(id2, 'decline', { reason: 'Please ask the county hospital first' }, 'dduty');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.declined_by, 'dduty');
  await dreq.waitFor('consultation.updated', (m) => m.event === 'declined' && m.consultation.consultation_id === id2);
  r = await api('POST', '/api/v1/consultations', request('p-cons-2', v2), 'dreq');
  const id3 = r.json.consultation_id;
  r = await step(id3, 'propose', { slot_at: iso(Date.now() + 7200e3), specialist_id: 'dspec' }, 'dduty');
  assert.equal(r.status, 200, r.text);
  r = await step(id3, 'decline', { reason: 'The patient travels that day' }, 'dduty');
  assert.equal(r.status, 403, r.text); // a proposal is the requester's to decline
  r = await step(id3, 'decline', { reason: 'The patient travels that day' }, 'dreq');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'declined');
  const declined = await waitUntil('consultation.declined at the regulator', () =>
    reg.events.filter((e) => e.type === 'consultation.declined').length === 2 &&
    reg.events.filter((e) => e.type === 'consultation.declined'), 60000);
  assert.deepEqual(declined.map((e) => [e.visit_id, e.data.declined_by]), [[id2, 'dduty'], [id3, 'dreq']]);
  events.set('consultation.declined', declined[0]);

  // docs/regulator-feed.md: each consultation example has the real event's fields.
  const feedDoc = fs.readFileSync(path.join(SRC, 'docs', 'regulator-feed.md'), 'utf8');
  const feedExamples = [...feedDoc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => { try { return JSON.parse(m[1]); } catch { return null; } })
    .filter((e) => e && typeof e.type === 'string' && e.type.startsWith('consultation.'));
  assert.deepEqual(feedExamples.map((e) => e.type).sort(), [...events.keys()].sort());
  for (const ex of feedExamples) assert.deepEqual(differences(ex, events.get(ex.type), ex.type), [], ex.type);

  // docs/protocol.md: the pushes' examples have the fields the doctors got.
  const protoDoc = fs.readFileSync(path.join(SRC, 'docs', 'protocol.md'), 'utf8');
  const pushExamples = [...protoDoc.matchAll(/```json\n([\s\S]*?)```/g)].flatMap((m) => {
    try { return [JSON.parse(m[1])]; } catch { return []; }
  }).filter((e) => ['consultation.updated', 'consultation.started'].includes(e.type));
  assert.equal(pushExamples.length, 2);
  for (const ex of pushExamples) assert.deepEqual(differences(ex, sent.get(ex.type)[0], ex.type), [], ex.type);
  for (const c of [dreq, dduty, dspec, p]) await c.close();
});

// Keys an example and the real object do not share, nested objects too; an
// example object with a "…" member may leave keys out.
function differences(ex, real, where, out = []) {
  const short = '…' in ex;
  for (const k of Object.keys(ex)) if (k !== '…' && !(k in real)) out.push(`${where}.${k}: not sent`);
  if (!short) for (const k of Object.keys(real)) if (!(k in ex)) out.push(`${where}.${k}: sent, not in the example`);
  for (const [k, v] of Object.entries(ex)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && real[k] && typeof real[k] === 'object')
      differences(v, real[k], `${where}.${k}`, out);
  }
  return out;
}

test('bad input: wrong role, unknown department, a time past, no reason; nothing is written', async () => {
  const dreq = await doctor('dreq');
  const { p, visitId } = await liveVisit(dreq, 'p-cons-bad');
  const before = srv.sql('SELECT count(*) AS n FROM consultations')[0].n;
  const outboxBefore = srv.sql("SELECT count(*) AS n FROM outbox WHERE type LIKE 'consultation.%'")[0].n;
  // A patient does not request; a doctor of another visit does not either.
  let r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId), 'p-cons-bad');
  assert.equal(r.status, 403, r.text);
  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId), 'dduty');
  assert.equal(r.status, 403, r.text);
  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId, { dept_id: 'nowhere' }), 'dreq');
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.code, 'not_found');
  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId, { specialist_id: 'dreq' }), 'dreq');
  assert.equal(r.status, 400, r.text); // not a doctor of cardio
  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId, { urgency: 'whenever' }), 'dreq');
  assert.equal(r.status, 400, r.text);
  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId, { question: undefined }), 'dreq');
  assert.equal(r.status, 400, r.text);
  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId,
    { window_start: iso(Date.now() - 7200e3), window_end: iso(Date.now() - 3600e3) }), 'dreq');
  assert.equal(r.status, 400, r.text);
  assert.equal(srv.sql('SELECT count(*) AS n FROM consultations')[0].n, before);

  r = await api('POST', '/api/v1/consultations', request('p-cons-bad', visitId), 'dreq');
  assert.equal(r.status, 201, r.text);
  const id = r.json.consultation_id;
  // The requester does not schedule their own request; the patient reads nothing of it.
  r = await step(id, 'schedule', { slot_at: iso(Date.now() + 600e3), specialist_id: 'dspec' }, 'dreq');
  assert.equal(r.status, 403, r.text);
  r = await api('GET', `/api/v1/consultations/${id}`, undefined, 'p-cons-bad');
  assert.equal(r.status, 403, r.text);
  // A time past, a specialist of another department, a decline without reason.
  r = await step(id, 'schedule', { slot_at: iso(Date.now() - 60e3), specialist_id: 'dspec' }, 'dduty');
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.error.message, /passed/);
  r = await step(id, 'schedule', { slot_at: iso(Date.now() + 600e3), specialist_id: 'dreq' }, 'dduty');
  assert.equal(r.status, 400, r.text);
  r = await step(id, 'decline', { reason: '' }, 'dduty');
  assert.equal(r.status, 400, r.text);
  r = await step(id, 'accept-proposal', {}, 'dreq');
  assert.equal(r.status, 409, r.text); // nothing proposed
  r = await step(id, 'opinion', { body: 'x', sign: true }, 'dspec');
  assert.equal(r.status, 409, r.text); // named, but nothing has taken place
  r = await step(id, 'opinion', { body: 'x', sign: true }, 'dduty');
  assert.equal(r.status, 403, r.text); // not its specialist
  r = await step(id, 'nonsense', {}, 'dduty');
  assert.equal(r.status, 404, r.text);
  assert.equal(srv.sql(`SELECT state FROM consultations WHERE id = '${id}'`)[0].state, 'requested');
  // The first accept wins, the second is a conflict; cancel then frees the appointment.
  r = await step(id, 'schedule', { slot_at: iso(Date.now() + 600e3), specialist_id: 'dspec' }, 'dduty');
  assert.equal(r.status, 200, r.text);
  r = await step(id, 'schedule', { slot_at: iso(Date.now() + 900e3), specialist_id: 'dspec' }, 'dduty');
  assert.equal(r.status, 409, r.text);
  r = await step(id, 'cancel', {}, 'dduty');
  assert.equal(r.status, 403, r.text);
  r = await step(id, 'cancel', {}, 'dreq');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.cancelled_by, 'dreq');
  assert.equal(srv.sql(`SELECT status FROM appointments WHERE id = '${r.json.appointment_id}'`)[0].status, 'cancelled');
  assert.deepEqual(srv.sql(`SELECT type FROM outbox WHERE visit_id = '${id}' ORDER BY seq`).map((x) => x.type),
    ['consultation.requested', 'consultation.scheduled']);
  assert.equal(srv.sql("SELECT count(*) AS n FROM outbox WHERE type LIKE 'consultation.%'")[0].n, outboxBefore + 2);
  await dreq.request('visit.end', { visit_id: visitId });
  await dreq.close();
  await p.close();
});
