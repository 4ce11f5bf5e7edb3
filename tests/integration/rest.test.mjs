// The REST API an admin or a hospital system uses: departments, doctors,
// shifts, appointments, visits, the audit log, /healthz and /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, setupHospital, BIN } from './lib/server.mjs';

let srv, admin;
before(async () => {
  srv = await startServer();
  admin = await setupHospital(srv, { depts: ['cardio', 'endo'], doctors: [['d1', 'cardio'], ['d2', 'endo']] });
});
after(async () => { await srv.stop(); });

test('healthz and metrics', async () => {
  const h = await srv.api('GET', '/healthz');
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  const m = await srv.api('GET', '/metrics');
  assert.equal(m.status, 200);
  // Every sample names the node (issue 19): the host name by default.
  for (const name of ['telemed_ws_connections{node=', 'telemed_queue_length{node="', '",dept="cardio"}',
    '",state="waiting"}', 'telemed_response_seconds_bucket{node=', 'telemed_feed_queue_depth{node='])
    assert.ok(m.text.includes(name), name);
  assert.equal(typeof h.json.node, 'string');
  assert.equal(h.json.accepting, true);
});

// A second server on a port already taken says so and exits; it once logged
// "listening" with nothing listening.
test('a port in use: the server says so and exits', () => {
  const dir = mkdtempSync(join(tmpdir(), 'telemed-test-'));
  try {
    const r = spawnSync(BIN, ['--data-dir', dir, '--port', String(srv.port), '--listen', '127.0.0.1',
      '--media-addresses', '127.0.0.1'], { env: { ...process.env, TELEMED_JWT_SECRET: 'x'.repeat(32) },
      encoding: 'utf8', timeout: 120000 });
    assert.notEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${srv.port} \\(is the port in use\\?\\)`));
    assert.doesNotMatch(r.stderr, /ev=server\.listening/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('departments, doctors and shifts', async () => {
  const d = await srv.api('GET', '/api/v1/departments', undefined, admin);
  assert.deepEqual(d.json.departments.map((x) => x.id), ['cardio', 'endo']);
  const docs = await srv.api('GET', '/api/v1/doctors?dept=endo', undefined, admin);
  assert.deepEqual(docs.json.doctors.map((x) => x.id), ['d2']);
  const shifts = await srv.api('GET', '/api/v1/shifts?doctor=d1', undefined, admin);
  assert.equal(shifts.json.shifts.length, 1);
  // A doctor sees their own schedule only.
  const own = await srv.api('GET', '/api/v1/shifts?doctor=d2', undefined, srv.token('d1', 'doctor'));
  assert.deepEqual(own.json.shifts.map((s) => s.doctor_id), ['d1']);
  const id = shifts.json.shifts[0].id;
  const extra = await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'cardio',
    start: Date.now() + 86400e3, end: Date.now() + 90000e3, capacity: 2 }, admin);
  assert.equal(extra.status, 201);
  assert.equal((await srv.api('DELETE', `/api/v1/shifts/${extra.json.id}`, undefined, admin)).status, 200);
  assert.equal((await srv.api('DELETE', `/api/v1/shifts/${extra.json.id}`, undefined, admin)).status, 404);
  assert.ok(id);
});

test('appointments: create, list, update, cancel', async () => {
  const slot = new Date(Date.now() + 3600e3).toISOString();
  const c = await srv.api('POST', '/api/v1/appointments', { id: 'apt-1', patient_id: 'p1', dept_id: 'cardio', slot, kind: 'follow_up' }, admin);
  assert.equal(c.status, 201);
  assert.equal(c.json.status, 'booked');
  assert.equal((await srv.api('POST', '/api/v1/appointments', { id: 'apt-1', patient_id: 'p1', dept_id: 'cardio', slot }, admin)).status, 409);
  const list = await srv.api('GET', '/api/v1/appointments?patient=p1', undefined, admin);
  assert.equal(list.json.appointments.length, 1);
  const mine = await srv.api('GET', '/api/v1/appointments', undefined, srv.token('p1', 'patient'));
  assert.equal(mine.json.appointments.length, 1);
  const theirs = await srv.api('GET', '/api/v1/appointments', undefined, srv.token('p2', 'patient'));
  assert.equal(theirs.json.appointments.length, 0);
  const later = new Date(Date.now() + 7200e3).toISOString();
  const u = await srv.api('PATCH', '/api/v1/appointments/apt-1', { slot: later, doctor_id: 'd1' }, admin);
  assert.equal(u.status, 200);
  assert.equal(u.json.doctor_id, 'd1');
  assert.equal(Date.parse(u.json.slot_at), Date.parse(later));
  const x = await srv.api('DELETE', '/api/v1/appointments/apt-1', undefined, admin);
  assert.equal(x.json.status, 'cancelled');
  assert.equal((await srv.api('PATCH', '/api/v1/appointments/apt-1', { slot }, admin)).status, 409);
  const audit = await srv.api('GET', '/api/v1/audit?target=apt-1', undefined, admin);
  // Reading the audit log is itself audited, before the answer is made.
  assert.deepEqual(audit.json.audit.map((a) => a.action).sort(),
    ['appointment.cancel', 'appointment.create', 'appointment.update', 'audit.read']);
});

test('visits: list with filters and one full record', async () => {
  const doctor = await srv.client('d2', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const p = await srv.client('p5', 'patient');
  const ci = await p.request('checkin', { dept: 'endo' });
  await doctor.waitFor('visit.offer');
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'terminate_and_refer', advice: 'Cardiology clinic, in person today' });
  const sup = srv.token('s1', 'supervisor');
  const all = await srv.api('GET', '/api/v1/visits?state=ended&dept=endo', undefined, sup);
  assert.ok(all.json.visits.some((v) => v.id === ci.visit_id && v.end_reason === 'terminate_and_refer'));
  const none = await srv.api('GET', '/api/v1/visits?dept=cardio&state=ended', undefined, sup);
  assert.ok(!none.json.visits.some((v) => v.id === ci.visit_id));
  const mineDoc = await srv.api('GET', '/api/v1/visits', undefined, srv.token('d1', 'doctor'));
  assert.ok(!mineDoc.json.visits.some((v) => v.id === ci.visit_id));
  const rec = await srv.api('GET', `/api/v1/visits/${ci.visit_id}`, undefined, sup);
  assert.equal(rec.json.dept_id, 'endo');
  assert.equal(rec.json.participants.length, 2);
  assert.equal(rec.json.offers[0].outcome, 'accepted');
  assert.equal((await srv.api('GET', `/api/v1/visits/${ci.visit_id}`, undefined, srv.token('d1', 'doctor'))).status, 403);
  const audit = await srv.api('GET', `/api/v1/audit?target=${ci.visit_id}`, undefined, admin);
  assert.ok(audit.json.audit.some((a) => a.action === 'visit.read' && a.actor_id === 's1'));
  await p.close();
  await doctor.close();
});

test('the token subcommand mints a token the server accepts', async () => {
  const token = execFileSync(BIN, ['--data-dir', srv.dataDir, 'token', '--secret', srv.secret,
    '--sub', 'cli-user', '--role', 'supervisor']).toString().trim();
  const r = await srv.api('GET', '/api/v1/me', undefined, token);
  assert.equal(r.status, 200);
  assert.equal(r.json.sub, 'cli-user');
  assert.equal(r.json.role, 'supervisor');
});

test('RS256 and ES256 tokens from a hospital identity provider are accepted with its public keys', async () => {
  const { generateKeyPairSync, sign } = await import('node:crypto');
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { startServer: start } = await import('./lib/server.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'telemed-keys-'));
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'ec.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'rsa.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  const jwt = (alg, key, claims) => {
    const now = Math.floor(Date.now() / 1000);
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${enc({ alg, typ: 'JWT' })}.${enc({ iat: now, exp: now + 600, ...claims })}`;
    const sig = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
    return `${input}.${sig.toString('base64url')}`;
  };
  const idp = await start({ args: ['--jwt-public-keys', `${join(dir, 'ec.pem')},${join(dir, 'rsa.pem')}`] });
  try {
    for (const [alg, key] of [['ES256', ec.privateKey], ['RS256', rsa.privateKey]]) {
      const r = await idp.api('GET', '/api/v1/me', undefined, jwt(alg, key, { sub: `u-${alg}`, role: 'supervisor' }));
      assert.equal(r.status, 200, `${alg}: ${r.text}`);
      assert.equal(r.json.sub, `u-${alg}`);
    }
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await idp.api('GET', '/api/v1/me', undefined, jwt('ES256', other.privateKey, { sub: 'x', role: 'admin' }));
    assert.equal(forged.status, 401);
  } finally {
    await idp.stop();
  }
});

test('a shift written over REST changes who is on duty at once', async () => {
  const d2 = await srv.client('d2', 'doctor');
  const on = await d2.request('doctor.status', { status: 'available' });
  assert.equal(on.in_shift, true);
  const [shift] = (await srv.api('GET', '/api/v1/shifts?doctor=d2', undefined, admin)).json.shifts;
  assert.equal((await srv.api('DELETE', `/api/v1/shifts/${shift.id}`, undefined, admin)).status, 200);
  const off = await d2.request('doctor.status', { status: 'available' });
  assert.equal(off.in_shift, false);
  assert.equal(off.shift, null);
  const back = await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd2', dept_id: 'endo',
    start: Date.now() - 60e3, end: Date.now() + 3600e3, capacity: 3 }, admin);
  assert.equal(back.status, 201);
  const again = await d2.request('doctor.status', { status: 'available' });
  assert.deepEqual([again.in_shift, again.shift.dept, again.shift.capacity], [true, 'endo', 3]);
  await d2.close();
});
