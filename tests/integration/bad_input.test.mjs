// Bad input over signaling and REST: each gets a clear error with a stable
// code, the connection stays usable, and nothing in the database changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, mintToken, Client, sleep } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer({ args: ['--max-frame-bytes', '65536', '--rate-msgs-per-s', '20', '--rate-burst', '40'] });
  await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio']] });
});
after(async () => { await srv.stop(); });

const counts = () => srv.sql(`SELECT (SELECT count(*) FROM visits) v, (SELECT count(*) FROM outbox) o,
  (SELECT count(*) FROM chat_messages) c, (SELECT count(*) FROM departments) d, (SELECT count(*) FROM appointments) a`)[0];

async function rawClient() {
  const c = new Client(srv.url());
  await c.open();
  return c;
}

test('malformed JSON, missing fields, unknown type, binary and oversized frames', async () => {
  const before = counts();
  const c = await rawClient();
  c.send('{"type": "hello", ');
  assert.equal((await c.waitError()).code, 'bad_request');
  c.send('[1,2,3]');
  assert.equal((await c.waitError()).code, 'bad_request');
  c.send({ type: 'hello' }); // no id
  assert.equal((await c.waitError()).code, 'bad_request');
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.match((await c.waitError()).message, /binary/);
  c.send({ type: 'ping', id: 'x', pad: 'a'.repeat(70 * 1024) });
  const big = await c.waitError();
  assert.equal(big.code, 'bad_request');
  assert.match(big.message, /large/);
  await assert.rejects(c.request('ping'), /unauthorized/); // hello first
  c.hello = await c.request('hello', { token: srv.token('p1', 'patient') });
  await assert.rejects(c.request('no.such.type'), /bad_request: unknown message type/);
  await assert.rejects(c.request('checkin', { dept: 'cardio', urgent: 'yes' }), /bad_request/);
  await assert.rejects(c.request('checkin', { dept: 42 }), /bad_request/);
  await assert.rejects(c.request('checkin', { dept: 'cardio', consent: { version: '2026.1', recording: 'sure' } }), /bad_request/);
  await assert.rejects(c.request('checkin', { dept: 'cardio', consent: 'yes' }), /bad_request/);
  await assert.rejects(c.request('checkin', {}), /bad_request/);
  await assert.rejects(c.request('checkin', { dept: 'nope' }), /not_found/);
  await assert.rejects(c.request('visit.rate', { visit_id: 'v-x', score: 9 }), /bad_request/);
  // Still usable after all that.
  assert.ok((await c.request('ping')).server_time);
  assert.deepEqual(counts(), before);
  await c.close();
});

test('tokens: expired, not yet valid, wrong key, alg none, tampered, wrong hospital', async () => {
  const now = Math.floor(Date.now() / 1000);
  const bad = {
    expired: mintToken(srv.secret, { sub: 'p1', role: 'patient', exp: now - 3600 }),
    future: mintToken(srv.secret, { sub: 'p1', role: 'patient', nbf: now + 3600 }),
    wrongKey: mintToken('not-the-secret', { sub: 'p1', role: 'patient' }),
    none: mintToken('', { sub: 'p1', role: 'patient' }, { alg: 'none', typ: 'JWT' }),
    badRole: mintToken(srv.secret, { sub: 'p1', role: 'god' }),
  };
  const good = srv.token('p1', 'patient');
  const [h, p, s] = good.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  claims.role = 'supervisor';
  bad.tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
  for (const [what, token] of Object.entries(bad)) {
    const c = await rawClient();
    await assert.rejects(c.request('hello', { token }), /unauthorized/, what);
    await c.close();
  }
  const c = await rawClient();
  await assert.rejects(c.request('hello', { token: srv.token('p1', 'patient', { hosp: 'other-hospital' }) }), /forbidden/);
  await c.close();
});

test('wrong role and someone else\'s visit', async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const p1 = await srv.client('p10', 'patient');
  const p2 = await srv.client('p11', 'patient');
  const ci = await p1.request('checkin', { dept: 'cardio' });
  await doctor.waitFor('visit.offer');
  const before = counts();
  await assert.rejects(p1.request('visit.accept', { visit_id: ci.visit_id }), /forbidden/);
  await assert.rejects(p2.request('doctor.status', { status: 'available' }), /forbidden/);
  await assert.rejects(doctor.request('checkin', { dept: 'cardio' }), /forbidden/);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await p1.waitFor('visit.state', (m) => m.state === 'active');
  const mid = counts();
  await assert.rejects(p2.request('chat.send', { visit_id: ci.visit_id, text: 'hi' }), /forbidden/);
  await assert.rejects(p2.request('visit.end', { visit_id: ci.visit_id }), /forbidden/);
  await assert.rejects(p2.request('media.offer', { visit_id: ci.visit_id, sdp: 'v=0' }), /forbidden/);
  await assert.rejects(p2.request('visit.watch', { visit_id: ci.visit_id }), /forbidden/);
  await assert.rejects(p1.request('visit.end', { visit_id: ci.visit_id, reason: 'because' }), /bad_request/);
  await assert.rejects(p1.request('chat.send', { visit_id: ci.visit_id, text: 'x'.repeat(5000) }), /bad_request/);
  assert.deepEqual(counts(), mid);
  assert.equal(before.c, mid.c);
  const audit = srv.sql(`SELECT actor_id, outcome FROM audit_log WHERE action='visit.watch'`);
  assert.deepEqual(audit, [{ actor_id: 'p11', outcome: 'denied' }]);
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  for (const c of [doctor, p1, p2]) await c.close();
});

test('a flood from one connection is rate limited', async () => {
  const c = await srv.client('pflood', 'patient');
  for (let i = 0; i < 70; i++) c.send({ type: 'ping', id: `f${i}` });
  const e = await c.waitError((m) => m.code === 'rate_limited');
  assert.equal(e.code, 'rate_limited');
  await sleep(2500);
  assert.ok((await c.request('ping')).server_time); // recovers once it slows down
  await c.close();
});

test('REST: no token, bad token, wrong role, invalid bodies change nothing', async () => {
  const admin = srv.token('admin-1', 'admin');
  const before = counts();
  assert.equal((await srv.api('GET', '/api/v1/visits')).status, 401);
  assert.equal((await srv.api('GET', '/api/v1/visits', undefined, 'garbage')).status, 401);
  const patientTok = srv.token('p1', 'patient');
  const r403 = await srv.api('POST', '/api/v1/departments', { id: 'x', name: 'X' }, patientTok);
  assert.equal(r403.status, 403);
  assert.equal(r403.json.error.code, 'forbidden');
  assert.equal((await srv.api('GET', '/api/v1/visits', undefined, patientTok)).status, 403);
  const bad = [
    ['POST', '/api/v1/departments', '{"id": "x", '],
    ['POST', '/api/v1/departments', '[]'],
    ['POST', '/api/v1/departments', { id: 'bad id!', name: 'X' }],
    ['POST', '/api/v1/departments', { id: 'x' }],
    ['POST', '/api/v1/doctors', { id: 'dx', name: 'Dr X', dept_id: 'missing' }],
    ['POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'cardio', start: 'tomorrow', end: 'later' }],
    ['POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'cardio', start: 2000, end: 1000 }],
    ['POST', '/api/v1/appointments', { patient_id: 'p1', dept_id: 'cardio', slot: 'x' }],
    ['POST', '/api/v1/appointments', { patient_id: 'p1', dept_id: 'cardio', slot: Date.now(), kind: 'weird' }],
    ['GET', '/api/v1/visits?from=yesterday'],
  ];
  for (const [method, path, body] of bad) {
    const r = await srv.api(method, path, body, admin);
    assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.code, 'bad_request');
  }
  assert.equal((await srv.api('GET', '/api/v1/nothing', undefined, admin)).status, 404);
  assert.equal((await srv.api('GET', '/api/v1/visits/v-none', undefined, admin)).status, 404);
  const huge = await srv.api('POST', '/api/v1/departments', JSON.stringify({ id: 'big', name: 'x'.repeat(300 * 1024) }), admin);
  assert.equal(huge.status, 400);
  assert.deepEqual(counts(), before);
});

test('REST edge cases: unsupported methods, empty bodies, another hospital\'s token', async () => {
  const admin = srv.token('admin-1', 'admin');
  const del = await srv.api('DELETE', '/api/v1/audit', undefined, admin);
  assert.equal(del.status, 404);
  assert.equal((await srv.api('POST', '/api/v1/overview', {}, admin)).status, 404);
  // An empty body is answered once, as a bad request, and the server lives on.
  const empty = await srv.api('POST', '/api/v1/departments', '', admin);
  assert.equal(empty.status, 400);
  assert.equal((await srv.api('GET', '/healthz')).status, 200);
  const foreign = await srv.api('GET', '/api/v1/me', undefined, srv.token('s1', 'supervisor', { hosp: 'another-hospital' }));
  assert.equal(foreign.status, 403);
});

test('a supervisor who drops stops watching: participants are told, the audit says so', async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const p = await srv.client('pw1', 'patient');
  const ci = await p.request('checkin', { dept: 'cardio' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  const sup = await srv.client('sup-w', 'supervisor');
  await sup.request('visit.watch', { visit_id: ci.visit_id });
  assert.equal((await p.waitFor('visit.supervisor')).present, true);
  await sup.drop();
  const gone = await p.waitFor('visit.supervisor', (m) => m.present === false);
  assert.equal(gone.count, 0);
  const rows = srv.sql(`SELECT action, detail FROM audit_log WHERE target='${ci.visit_id}' AND actor_id='sup-w' ORDER BY id`);
  assert.deepEqual(rows.map((r) => r.action), ['visit.watch', 'visit.unwatch']);
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await Promise.all([doctor.close(), p.close()]);
});
