// Visits of more than two (issue 17) against the real server over WSS, with
// its real SQLite store: invites and their outcomes, joining and leaving,
// removal, guest links (one time, expiring, revocable, this visit only),
// what a guest may not do, the participant cap, the end of a visit with
// everyone in it, and a restart in the middle of a three-party visit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, Client, sleep } from './lib/server.mjs';

let srv;
let admin;

// Staff of every kind, registered through the REST API with their kind.
async function addStaff(s, token, id, dept, kind) {
  const r = await s.api('POST', '/api/v1/doctors', { id, name: `Staff ${id}`, dept_id: dept,
    licence_no: `LIC-${id}`, kind }, token);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.kind, kind);
}

async function hospital(s) {
  const token = await setupHospital(s, { depts: ['cardio', 'neuro'],
    doctors: [['d1', 'cardio'], ['d3', 'cardio']], capacity: 4 });
  await addStaff(s, token, 'd2', 'neuro', 'doctor');
  await addStaff(s, token, 'n1', 'cardio', 'nurse');
  await addStaff(s, token, 'i1', 'cardio', 'interpreter');
  return token;
}

before(async () => {
  srv = await startServer({ args: ['--invite-timeout-s', '5', '--grace-s', '4'] });
  admin = await hospital(srv);
});
after(async () => { if (srv) await srv.stop(); });

let patients = 0;

// A live visit of a new patient with doctor (d1) attending.
async function liveVisit(s = srv, doctor = 'd1') {
  const patientId = `pp${++patients}`;
  const d1 = await s.client(doctor, 'doctor');
  await d1.request('doctor.status', { status: 'available' });
  const p = await s.client(patientId, 'patient', { name: `Patient ${patientId}` });
  const ci = await p.request('checkin', { dept: 'cardio' });
  await d1.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await d1.request('visit.accept', { visit_id: ci.visit_id });
  await p.waitFor('visit.state', (m) => m.state === 'active');
  return { d1, p, visitId: ci.visit_id, patientId };
}

async function staff(id, s = srv) {
  const c = await s.client(id, 'doctor');
  await c.request('doctor.status', { status: 'available' });
  return c;
}

// Invites staff member c into the visit and has them accept.
async function bringIn(d1, c, visitId, userId, role) {
  const inv = await d1.request('visit.invite', { visit_id: visitId, user_id: userId, role });
  const pushed = await c.waitFor('visit.invited', (m) => m.invite_id === inv.invite_id);
  const joined = await c.request('visit.invite_answer', { invite_id: inv.invite_id, accept: true });
  return { inv, pushed, joined };
}

async function guestJoin(host, visitId, name, s = srv) {
  const link = await host.request('guest.link_create', { visit_id: visitId, name });
  const g = new Client(s.url());
  await g.open();
  g.hello = await g.request('hello', { guest_code: link.code, ua: 'guest-test/1' });
  return { g, link };
}

const ids = (m) => m.participants.map((x) => `${x.role}:${x.id}`).sort();

test('an invited doctor accepts, joins, chats and leaves; the visit goes on', async () => {
  const { d1, p, visitId } = await liveVisit();
  const d2 = await staff('d2');
  const list = await d1.request('staff.list', { kind: 'doctor' });
  const d2row = list.staff.find((x) => x.id === 'd2');
  assert.deepEqual([d2row.dept, d2row.kind, d2row.status], ['neuro', 'doctor', 'available']);
  const { inv, pushed, joined } = await bringIn(d1, d2, visitId, 'd2', 'consulting');
  assert.equal(pushed.visit_id, visitId);
  assert.equal(pushed.role, 'consulting');
  assert.equal(pushed.from.id, 'd1');
  assert.equal(joined.visit.state, 'active');
  assert.deepEqual(ids(joined), ['attending:d1', 'consulting:d2', `patient:${p.hello.sub}`]);
  const ended = await d1.waitFor('visit.invite_ended', (m) => m.invite_id === inv.invite_id);
  assert.equal(ended.outcome, 'accepted');
  const seen = await p.waitFor('visit.participants', (m) => m.participants.length === 3);
  assert.equal(seen.participants.find((x) => x.id === 'd2').name, 'Staff d2');
  assert.equal(seen.participants.find((x) => x.id === 'd1').name, 'Dr d1');

  const sup = await srv.client('s1', 'supervisor');
  await sup.request('overview.subscribe');
  const ov = await sup.waitFor('overview', (m) => m.visits.some((x) => x.id === visitId && x.party.length === 1));
  assert.deepEqual(ov.visits.find((x) => x.id === visitId).party, [{ id: 'd2', role: 'consulting', connected: true }]);
  await sup.request('visit.watch', { visit_id: visitId });
  assert.equal((await sup.waitFor('visit.participants')).participants.length, 3);
  await sup.close();

  await d2.request('chat.send', { visit_id: visitId, text: 'consultant here' });
  await p.waitFor('chat.message', (m) => m.from === 'd2');
  await d1.waitFor('chat.message', (m) => m.from === 'd2');
  // A consulting doctor writes their own addendum, but cannot end the visit.
  await d2.request('visit.note', { visit_id: visitId, text: 'addendum' });
  await assert.rejects(d2.request('visit.end', { visit_id: visitId }), /forbidden/);

  await d2.request('visit.leave', { visit_id: visitId });
  await p.waitFor('visit.participants', (m) => m.participants.length === 2);
  const st = await p.request('ping');
  assert.ok(st.server_time);
  await d1.request('visit.end', { visit_id: visitId });
  await p.waitFor('visit.state', (m) => m.state === 'ended');

  const rows = srv.sql(`SELECT type, payload FROM outbox WHERE visit_id = '${visitId}' ORDER BY seq`);
  const types = rows.map((r) => r.type);
  for (const t of ['visit.invite', 'visit.invite_ended', 'visit.participant_joined', 'visit.participant_left'])
    assert.ok(types.includes(t), `no ${t} event in ${types}`);
  const endData = JSON.parse(rows.find((r) => r.type === 'visit.ended').payload);
  assert.deepEqual(endData.doctors, [
    { doctor_id: 'd1', role: 'attending', licence_no: 'LIC-d1' },
    { doctor_id: 'd2', role: 'consulting', licence_no: 'LIC-d2' },
  ]);
  const left = JSON.parse(rows.find((r) => r.type === 'visit.participant_left').payload);
  assert.deepEqual(left.participant, { user_id: 'd2', visit_role: 'consulting', reason: 'left' });

  const rec = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin);
  assert.equal(rec.status, 200);
  const events = rec.json.timeline.map((e) => `${e.event}:${e.user_id}`);
  for (const e of ['invited:d2', 'invite_accepted:d2', 'joined:d2', 'left:d2'])
    assert.ok(events.includes(e), `timeline lacks ${e}: ${events}`);
  assert.ok(rec.json.participants.some((x) => x.user_id === 'd2' && x.visit_role === 'consulting'));
  const fhir = await srv.api('GET', `/api/v1/visits/${visitId}/fhir`, undefined, admin);
  assert.equal(fhir.status, 200);
  const cons = fhir.json.participant.find((x) => x.type[0].coding[0].code === 'CON');
  assert.ok(cons, JSON.stringify(fhir.json.participant));
  const who = fhir.json.contained.find((x) => `#${x.id}` === cons.individual.reference);
  assert.deepEqual([who.resourceType, who.identifier[0].value], ['Practitioner', 'd2']);
  const audit = srv.sql(`SELECT action FROM audit_log WHERE target = '${visitId}'`).map((r) => r.action);
  for (const a of ['visit.invite', 'visit.join', 'visit.leave']) assert.ok(audit.includes(a), a);
  for (const c of [d1, d2, p]) await c.close();
});

test('invites end declined, cancelled and timed out, each recorded', async () => {
  const { d1, p, visitId } = await liveVisit();
  const n1 = await staff('n1');
  const i1 = await staff('i1');
  // Declined.
  let inv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' });
  await n1.waitFor('visit.invited', (m) => m.invite_id === inv.invite_id);
  await n1.request('visit.invite_answer', { invite_id: inv.invite_id, accept: false });
  assert.equal((await d1.waitFor('visit.invite_ended', (m) => m.invite_id === inv.invite_id)).outcome, 'declined');
  // Cancelled by the inviter.
  inv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' });
  await d1.request('visit.invite_cancel', { invite_id: inv.invite_id });
  assert.equal((await n1.waitFor('visit.invite_ended', (m) => m.invite_id === inv.invite_id)).outcome, 'cancelled');
  await assert.rejects(n1.request('visit.invite_answer', { invite_id: inv.invite_id, accept: true }), /not_found/);
  // Lapsed (invite_timeout_s 5).
  inv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'i1', role: 'interpreter' });
  const lapsed = await i1.waitFor('visit.invite_ended', (m) => m.invite_id === inv.invite_id);
  assert.equal(lapsed.outcome, 'timeout');
  const outcomes = srv.sql(`SELECT outcome FROM invites WHERE visit_id = '${visitId}' ORDER BY created_at`)
    .map((r) => r.outcome);
  assert.deepEqual(outcomes, ['declined', 'cancelled', 'timeout']);
  // Refusals: a role that does not fit the kind, someone not signed in, a patient inviting.
  await assert.rejects(d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'consulting' }), /bad_request/);
  await assert.rejects(d1.request('visit.invite', { visit_id: visitId, user_id: 'd3', role: 'consulting' }), /conflict/);
  await assert.rejects(p.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' }), /forbidden/);
  inv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' });
  await assert.rejects(d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' }), /conflict/);
  // A consulting doctor proves who they are, as for accepting a visit: a
  // sign-in older than doctor_verify_window_s (12 h) is refused.
  const stale = await srv.client('d3', 'doctor', { auth_time: Math.floor(Date.now() / 1000) - 2 * 86400 });
  await stale.request('doctor.status', { status: 'available' });
  const inv3 = await d1.request('visit.invite', { visit_id: visitId, user_id: 'd3', role: 'consulting' });
  await assert.rejects(stale.request('visit.invite_answer', { invite_id: inv3.invite_id, accept: true }), /forbidden/);
  await stale.close();
  // The visit's end ends the open invite.
  await d1.request('visit.end', { visit_id: visitId });
  assert.equal((await n1.waitFor('visit.invite_ended', (m) => m.invite_id === inv.invite_id)).outcome, 'visit_ended');
  for (const c of [d1, n1, i1, p]) await c.close();
});

test('the attending removes a nurse; patient and attending cannot be removed', async () => {
  const { d1, p, visitId, patientId } = await liveVisit();
  const n1 = await staff('n1');
  await bringIn(d1, n1, visitId, 'n1', 'nurse');
  await p.waitFor('visit.participants', (m) => m.participants.length === 3);
  // A nurse may not invite, remove or write notes.
  await assert.rejects(n1.request('visit.remove', { visit_id: visitId, user_id: patientId }), /forbidden/);
  await assert.rejects(n1.request('visit.note', { visit_id: visitId, text: 'x' }), /forbidden/);
  await assert.rejects(d1.request('visit.remove', { visit_id: visitId, user_id: patientId }), /forbidden/);
  await d1.request('visit.remove', { visit_id: visitId, user_id: 'n1' });
  const removed = await n1.waitFor('visit.removed');
  assert.deepEqual([removed.visit_id, removed.by_role], [visitId, 'attending']);
  await p.waitFor('visit.participants', (m) => m.participants.length === 2);
  await assert.rejects(n1.request('chat.send', { visit_id: visitId, text: 'still here?' }), /forbidden/);
  const left = srv.sql(`SELECT leave_reason FROM participants WHERE visit_id = '${visitId}' AND user_id = 'n1'`);
  assert.deepEqual(left.map((r) => r.leave_reason), ['removed']);
  // The nurse reads the visit's record (notes included); an interpreter does not.
  const i1 = await staff('i1');
  await bringIn(d1, i1, visitId, 'i1', 'interpreter');
  await assert.rejects(i1.request('visit.note', { visit_id: visitId, text: 'x' }), /forbidden/);
  await d1.request('visit.end', { visit_id: visitId });
  const asNurse = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, srv.token('n1', 'doctor'));
  assert.equal(asNurse.status, 200);
  const asInterpreter = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, srv.token('i1', 'doctor'));
  assert.equal(asInterpreter.status, 403);
  for (const c of [d1, n1, i1, p]) await c.close();
});

test('a guest link works once, for its visit only; expired and revoked links are refused', async () => {
  const { d1, p, visitId } = await liveVisit();
  const { g, link } = await guestJoin(p, visitId, '女儿 / daughter');
  assert.equal(g.hello.role, 'guest');
  assert.match(g.hello.sub, /^g-/);
  assert.equal(g.hello.state.visit.visit_id, visitId);
  assert.ok(g.hello.state.participants.some((x) => x.role === 'guest' && x.name === '女儿 / daughter'));
  assert.match(link.url, /^\/guest\.html#code=[A-Za-z0-9_-]{22}$/);
  await d1.waitFor('visit.participants', (m) => m.participants.some((x) => x.role === 'guest'));

  const again = new Client(srv.url());
  await again.open();
  await assert.rejects(again.request('hello', { guest_code: link.code }), /unauthorized: guest link refused: used/);
  await assert.rejects(again.request('hello', { guest_code: 'AAAAAAAAAAAAAAAAAAAAAA' }), /guest link refused: unknown/);

  const short = await p.request('guest.link_create', { visit_id: visitId, name: 'son', ttl_s: 1 });
  await sleep(1500);
  await assert.rejects(again.request('hello', { guest_code: short.code }), /guest link refused: expired/);
  const revoked = await d1.request('guest.link_create', { visit_id: visitId, name: 'carer' });
  await p.request('guest.link_revoke', { link_id: revoked.link_id });
  await assert.rejects(again.request('hello', { guest_code: revoked.code }), /guest link refused: revoked/);
  const links = await p.request('guest.links', { visit_id: visitId });
  assert.deepEqual(links.links.map((l) => l.state), ['used', 'expired', 'revoked']);

  // The guest chats; doctor-only messages and other visits are refused.
  await g.request('chat.send', { visit_id: visitId, text: 'hi mum' });
  await p.waitFor('chat.message', (m) => m.from === g.hello.sub && m.from_role === 'guest');
  await assert.rejects(g.request('visit.note', { visit_id: visitId, text: 'x' }), /forbidden/);
  await assert.rejects(g.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' }), /forbidden/);
  await assert.rejects(g.request('guest.link_create', { visit_id: visitId, name: 'x' }), /forbidden/);
  await assert.rejects(g.request('visit.end', { visit_id: visitId }), /forbidden/);
  await assert.rejects(g.request('doctor.queue', {}), /forbidden/);
  const other = await liveVisit(srv, 'd3');
  await assert.rejects(g.request('chat.send', { visit_id: other.visitId, text: 'x' }), /forbidden/);
  await assert.rejects(g.request('media.offer', { visit_id: other.visitId, sdp: 'v=0' }), /forbidden/);
  await other.d1.request('visit.end', { visit_id: other.visitId });

  // A dropped guest resumes with its secret; then leaves.
  await g.drop();
  await p.waitFor('visit.participants', (m) => m.participants.some((x) => x.role === 'guest' && !x.connected));
  const back = new Client(srv.url());
  await back.open();
  const hello = await back.request('hello', { guest_resume: g.hello.resume });
  assert.equal(hello.sub, g.hello.sub);
  assert.equal(hello.resumed, true);
  await p.waitFor('visit.participants', (m) => m.participants.some((x) => x.role === 'guest' && x.connected));
  await back.request('visit.leave', { visit_id: visitId });
  await p.waitFor('visit.participants', (m) => m.participants.length === 2);
  await assert.rejects(again.request('hello', { guest_resume: g.hello.resume }), /guest resume refused/);

  const events = srv.sql(`SELECT payload FROM outbox WHERE visit_id = '${visitId}' AND type = 'visit.guest_link' ORDER BY seq`)
    .map((r) => JSON.parse(r.payload).guest_link.event);
  assert.deepEqual(events, ['created', 'used', 'created', 'created', 'revoked']);
  assert.ok(!srv.sql('SELECT payload FROM outbox').some((r) => r.payload.includes('daughter')));
  await d1.request('visit.end', { visit_id: visitId });
  for (const c of [d1, p, again, back, other.p, other.d1]) await c.close();
});

test('eight participants at most; the end of the visit closes everything', async () => {
  const { d1, p, visitId } = await liveVisit();
  const guests = [];
  for (let i = 0; i < 6; i++) guests.push((await guestJoin(p, visitId, `guest ${i}`)).g);
  const full = await p.waitFor('visit.participants', (m) => m.participants.length === 8);
  assert.equal(full.participants.length, 8);
  const n1 = await staff('n1');
  await assert.rejects(d1.request('visit.invite', { visit_id: visitId, user_id: 'n1', role: 'nurse' }), /full/);
  const ninth = await p.request('guest.link_create', { visit_id: visitId, name: 'ninth' });
  const c9 = new Client(srv.url());
  await c9.open();
  await assert.rejects(c9.request('hello', { guest_code: ninth.code }), /conflict: the visit is full/);

  await p.request('visit.end', { visit_id: visitId });
  for (const g of guests) await g.waitFor('visit.state', (m) => m.state === 'ended');
  const open = srv.sql(`SELECT count(*) AS n FROM guest_links WHERE visit_id = '${visitId}' AND state = 'open'`);
  assert.equal(open[0].n, 0);
  const stillIn = srv.sql(`SELECT count(*) AS n FROM participants WHERE visit_id = '${visitId}' AND left_at IS NULL`);
  assert.equal(stillIn[0].n, 0);
  // The ninth link died with the visit.
  await assert.rejects(c9.request('hello', { guest_code: ninth.code }), /guest link refused: revoked/);
  for (const c of [d1, p, n1, c9, ...guests]) await c.close();
});

test('a dropped consulting doctor who does not come back leaves; the visit goes on', async () => {
  const { d1, p, visitId } = await liveVisit();
  const d2 = await staff('d2');
  await bringIn(d1, d2, visitId, 'd2', 'consulting');
  await p.waitFor('visit.participants', (m) => m.participants.length === 3);
  await d2.drop();
  await p.waitFor('visit.participant', (m) => m.id === 'd2' && m.connected === false);
  // grace_s 4: the server takes d2 out; the visit stays active.
  await p.waitFor('visit.participants', (m) => m.participants.length === 2);
  const rows = srv.sql(`SELECT state FROM visits WHERE id = '${visitId}'`);
  assert.equal(rows[0].state, 'active');
  const reason = srv.sql(`SELECT leave_reason FROM participants WHERE visit_id = '${visitId}' AND user_id = 'd2' ORDER BY id DESC LIMIT 1`);
  assert.equal(reason[0].leave_reason, 'grace_expired');
  await d1.request('visit.end', { visit_id: visitId });
  for (const c of [d1, p]) await c.close();
});

test('nurses and interpreters are never offered waiting patients', async () => {
  const now = Date.now();
  for (const id of ['n1', 'i1']) {
    const r = await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: 'cardio',
      start: new Date(now - 60e3).toISOString(), end: new Date(now + 3600e3).toISOString() }, admin);
    assert.equal(r.status, 201, r.text);
  }
  const n1 = await staff('n1');
  const i1 = await staff('i1');
  const p = await srv.client(`pp${++patients}`, 'patient');
  const ci = await p.request('checkin', { dept: 'cardio' });
  // Offers go out before the answer to anything sent after them.
  await n1.request('ping');
  await i1.request('ping');
  assert.ok(!n1.pushes.some((m) => m.type === 'visit.offer'));
  assert.ok(!i1.pushes.some((m) => m.type === 'visit.offer'));
  const d3 = await staff('d3');
  await d3.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await p.request('queue.leave', { visit_id: ci.visit_id });
  for (const c of [n1, i1, d3, p]) await c.close();
});

test('a restart in the middle of a three-party visit keeps its participants', async () => {
  const s2 = await startServer({ args: ['--grace-s', '120'] });
  try {
    await hospital(s2);
    const { d1, p, visitId, patientId } = await liveVisit(s2);
    const d2 = await staff('d2', s2);
    await bringIn(d1, d2, visitId, 'd2', 'consulting');
    const { g } = await guestJoin(p, visitId, 'brother', s2);
    await p.waitFor('visit.participants', (m) => m.participants.length === 4);
    await s2.restart();
    const d2b = await s2.client('d2', 'doctor');
    assert.deepEqual(d2b.hello.state.visits, [visitId]);
    assert.deepEqual(ids({ participants: d2b.hello.state.participants[visitId] }),
      ['attending:d1', 'consulting:d2', `guest:${g.hello.sub}`, `patient:${patientId}`]);
    const pb = await s2.client(patientId, 'patient');
    const gb = new Client(s2.url());
    await gb.open();
    const gh = await gb.request('hello', { guest_resume: g.hello.resume });
    assert.equal(gh.state.participants.find((x) => x.role === 'guest').name, 'brother');
    await d2b.request('chat.send', { visit_id: visitId, text: 'after the restart' });
    await pb.waitFor('chat.message', (m) => m.from === 'd2');
    await gb.waitFor('chat.message', (m) => m.from === 'd2');
    const d1b = await s2.client('d1', 'doctor');
    await d1b.request('visit.end', { visit_id: visitId });
    await gb.waitFor('visit.state', (m) => m.state === 'ended');
    const data = JSON.parse(s2.sql(`SELECT payload FROM outbox WHERE visit_id = '${visitId}' AND type = 'visit.ended'`)[0].payload);
    assert.deepEqual(data.doctors.map((x) => x.licence_no), ['LIC-d1', 'LIC-d2']);
    for (const c of [d1b, d2b, pb, gb]) await c.close();
  } finally {
    await s2.stop();
  }
});
