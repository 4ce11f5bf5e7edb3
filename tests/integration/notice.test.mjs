// A guest's and an interpreter's own notice (issue 16), against the real
// server and its SQLite store: no media before they accept it through the
// protocol (consent.get with visit_id says whether they did, consent.accept
// records it with version, time and session), an old version or someone
// without a notice is refused and writes nothing, accepting twice keeps one
// row, and a restart keeps the accept (a resumed guest is not asked again).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, Client } from './lib/server.mjs';

const VERSION = '2026.1';
let srv;

before(async () => {
  srv = await startServer({ args: ['--grace-s', '120'] });
  const token = await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio']], capacity: 4 });
  const r = await srv.api('POST', '/api/v1/doctors', { id: 'i1', name: 'Staff i1', dept_id: 'cardio',
    licence_no: 'LIC-i1', kind: 'interpreter' }, token);
  assert.equal(r.status, 201, r.text);
});
after(async () => { if (srv) await srv.stop(); });

async function liveVisit(patientId) {
  const d1 = await srv.client('d1', 'doctor');
  await d1.request('doctor.status', { status: 'available' });
  const p = await srv.client(patientId, 'patient', { name: `Patient ${patientId}` });
  const ci = await p.request('checkin', { dept: 'cardio' });
  await d1.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await d1.request('visit.accept', { visit_id: ci.visit_id });
  await p.waitFor('visit.state', (m) => m.state === 'active');
  return { d1, p, visitId: ci.visit_id };
}

async function guestIn(host, visitId) {
  const link = await host.request('guest.link_create', { visit_id: visitId, name: 'son' });
  const g = new Client(srv.url());
  await g.open();
  g.hello = await g.request('hello', { guest_code: link.code, ua: 'notice-test/1' });
  return g;
}

async function interpreterIn(d1, visitId) {
  const i1 = await srv.client('i1', 'doctor');
  await i1.request('doctor.status', { status: 'available' });
  const inv = await d1.request('visit.invite', { visit_id: visitId, user_id: 'i1', role: 'interpreter' });
  await i1.waitFor('visit.invited', (m) => m.invite_id === inv.invite_id);
  await i1.request('visit.invite_answer', { invite_id: inv.invite_id, accept: true });
  return i1;
}

const consents = (visitId, kind) => srv.sql(
  `SELECT user_id, role, version, recording, session_id, accepted_at FROM consents WHERE visit_id = '${visitId}' AND kind = '${kind}'`);
// A bad offer gets past the notice only to be refused as an offer.
const notForbidden = (e) => !/forbidden/.test(e.message);

test('a guest and an interpreter accept their own notice before any media', async () => {
  const { d1, p, visitId } = await liveVisit('pn1');
  const g = await guestIn(p, visitId);
  const i1 = await interpreterIn(d1, visitId);

  for (const [c, kind] of [[g, 'guest'], [i1, 'interpreter']]) {
    await assert.rejects(c.request('media.offer', { visit_id: visitId, sdp: 'v=0' }),
      /forbidden: accept your notice first/);
    const n = await c.request('consent.get', { kind, visit_id: visitId });
    assert.deepEqual([n.kind, n.version, n.required, n.accepted], [kind, VERSION, true, false]);
    assert.match(n.texts['zh-CN'], /录像/);
    assert.match(n.texts.en, /interpreter/);
    await assert.rejects(c.request('consent.accept', { visit_id: visitId, version: '2025.9' }),
      /conflict: the notice accepted is not the current version/);
    await assert.rejects(c.request('consent.accept', { visit_id: visitId }), /bad_request/);
    assert.equal(consents(visitId, kind).length, 0);

    const before = Date.now();
    const ok = await c.request('consent.accept', { visit_id: visitId, version: VERSION });
    assert.deepEqual(ok, { visit_id: visitId, kind, version: VERSION });
    assert.equal((await c.request('consent.get', { kind, visit_id: visitId })).accepted, true);
    await c.request('consent.accept', { visit_id: visitId, version: VERSION });
    const rows = consents(visitId, kind);
    assert.equal(rows.length, 1, 'accepting again keeps one row');
    const [row] = rows;
    assert.deepEqual([row.user_id, row.role, row.version, row.recording],
      [c.hello.sub, kind, VERSION, 1]);
    assert.match(row.session_id, /\S/);
    assert.ok(row.accepted_at >= before - 1000 && row.accepted_at <= Date.now() + 1000);
    await assert.rejects(c.request('media.offer', { visit_id: visitId, sdp: 'v=0' }), notForbidden);
  }
  // The patient and the attending have no notice of this kind, and no gate.
  await assert.rejects(p.request('consent.accept', { visit_id: visitId, version: VERSION }),
    /forbidden: only a guest or interpreter in the visit has a notice/);
  await assert.rejects(d1.request('consent.accept', { visit_id: visitId, version: VERSION }), /forbidden/);
  assert.equal((await p.request('consent.get', { kind: 'guest', visit_id: visitId })).accepted, undefined);
  await assert.rejects(d1.request('media.offer', { visit_id: visitId, sdp: 'v=0' }), notForbidden);
  // The visit's record lists the consents given in it.
  const rec = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, srv.token('d1', 'doctor'));
  assert.deepEqual(rec.json.consents.map((c) => c.kind).sort(), ['guest', 'interpreter']);
  await d1.request('visit.end', { visit_id: visitId });
  for (const c of [d1, p, g, i1]) await c.close();
});

test('a restart keeps the accept; a guest who had not accepted is still asked', async () => {
  const { d1, p, visitId } = await liveVisit('pn2');
  const g = await guestIn(p, visitId);
  const g2 = await guestIn(p, visitId);
  await g.request('consent.accept', { visit_id: visitId, version: VERSION });
  await srv.restart();
  const back = async (old) => {
    const c = new Client(srv.url());
    await c.open();
    c.hello = await c.request('hello', { guest_resume: old.hello.resume });
    return c;
  };
  const gb = await back(g);
  const g2b = await back(g2);
  assert.equal((await gb.request('consent.get', { kind: 'guest', visit_id: visitId })).accepted, true);
  assert.equal((await g2b.request('consent.get', { kind: 'guest', visit_id: visitId })).accepted, false);
  await assert.rejects(gb.request('media.offer', { visit_id: visitId, sdp: 'v=0' }), notForbidden);
  await assert.rejects(g2b.request('media.offer', { visit_id: visitId, sdp: 'v=0' }), /forbidden/);
  const d1b = await srv.client('d1', 'doctor');
  await d1b.request('visit.end', { visit_id: visitId });
  for (const c of [d1, p, g, g2, gb, g2b, d1b]) await c.close().catch(() => {});
});
