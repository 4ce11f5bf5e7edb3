// The doctor's identity before each visit (细则 Art. 13), through the real
// server: a token whose auth_time is recent lets the doctor accept, and how
// is recorded; a token without auth_time, with an old one or without an
// accepted amr is refused with a reason. With the hospital's verification
// endpoint configured (here a real Node HTTP server on loopback), the server
// asks it when the token does not prove enough, without holding anyone
// else up: a confirmation accepts (method "endpoint"), a denial or no answer
// in time refuses. The visit record and visit.started say how and when.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, setupHospital, waitUntil } from './lib/server.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

// A stand-in for the hospital's verification endpoint: answers each POST
// with what answer(body) returns ({status, json} or 'hang').
async function startEndpoint(answer) {
  const seen = [];
  const hanging = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const q = JSON.parse(body);
      seen.push({ q, type: req.headers['content-type'] });
      const a = answer(q);
      if (a === 'hang') { hanging.push(res); return; }
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.json));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/verify`,
    seen,
    close: () => { for (const r of hanging) r.destroy(); return new Promise((r) => server.close(r)); },
  };
}

// A patient checked in and offered to doctor d1 (who is available).
async function offered(srv, doctor, patientId) {
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  return { patient, visitId: ci.visit_id };
}

async function refusal(doctor, visitId) {
  const e = await doctor.request('visit.accept', { visit_id: visitId }).then(() => null, (err) => err);
  assert.ok(e, 'the accept was refused');
  assert.equal(e.code, 'forbidden');
  return e.reason;
}

async function feedEvent(srv, visitId, type) {
  const dir = path.join(srv.dataDir, 'feed');
  return waitUntil(`${type} of ${visitId} in the feed`, () => (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
    .filter((f) => f.endsWith('.ndjson'))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l)).find((e) => e.visit_id === visitId && e.type === type));
}

test('the token proves the doctor: auth_time within the window, amr when asked', async () => {
  const srv = await startServer({ args: ['--doctor-verify-window-s', '3600', '--doctor-verify-amr', 'face,hwk'] });
  servers.push(srv);
  await setupHospital(srv, { capacity: 4 });
  const now = Math.floor(Date.now() / 1000);
  const cases = [
    [{ auth_time: undefined }, 'identity_missing'],
    [{ auth_time: now - 7200, amr: ['face'] }, 'identity_expired'],
    [{ auth_time: now - 60, amr: ['pwd'] }, 'identity_method'],
  ];
  for (const [claims, reason] of cases) {
    const doctor = await srv.client('d1', 'doctor', claims);
    await doctor.request('doctor.status', { status: 'available' });
    const { patient, visitId } = await offered(srv, doctor, `p-${reason}`);
    assert.equal(await refusal(doctor, visitId), reason);
    // Refused, the offer still stands: nothing was written.
    assert.equal(srv.sql(`SELECT state FROM visits WHERE id = '${visitId}'`)[0].state, 'offered');
    await patient.request('queue.leave', { visit_id: visitId });
    await doctor.close();
  }
  // A sign-in with a face check 10 minutes ago: accepted, and recorded.
  const doctor = await srv.client('d1', 'doctor', { auth_time: now - 600, amr: ['pwd', 'face'] });
  await doctor.request('doctor.status', { status: 'available' });
  const { visitId } = await offered(srv, doctor, 'p-ok');
  await doctor.request('visit.accept', { visit_id: visitId });
  const admin = srv.token('admin-1', 'admin');
  const rec = (await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin)).json;
  assert.deepEqual(rec.doctor_verification,
    { method: 'token', amr: 'pwd,face', verified_at: new Date((now - 600) * 1000).toISOString() });
  const started = await feedEvent(srv, visitId, 'visit.started');
  assert.deepEqual(started.data.doctor_verification, rec.doctor_verification);
});

test("the hospital's endpoint: asked when the token is not enough; yes, no, no answer", async () => {
  let mode = 'yes';
  const verifiedAt = Math.floor(Date.now() / 1000) - 30;
  const ep = await startEndpoint((q) => {
    if (mode === 'hang') return 'hang';
    if (mode === 'error') return { status: 503, json: { error: 'down' } };
    return { status: 200, json: { verified: mode === 'yes', amr: ['face'], verified_at: verifiedAt, doctor_id: q.doctor_id } };
  });
  const srv = await startServer({ args: ['--doctor-verify-window-s', '3600', '--doctor-verify-url', ep.url,
    '--doctor-verify-timeout-ms', '1500'] });
  servers.push(srv);
  try {
    await setupHospital(srv, { capacity: 4 });
    const stale = Math.floor(Date.now() / 1000) - 86000;
    const doctor = await srv.client('d1', 'doctor', { auth_time: stale });
    await doctor.request('doctor.status', { status: 'available' });

    const a = await offered(srv, doctor, 'p-a');
    await doctor.request('visit.accept', { visit_id: a.visitId });
    assert.equal(ep.seen.length, 1);
    assert.deepEqual(ep.seen[0].q, { hospital_id: 'demo-hospital', doctor_id: 'd1', visit_id: a.visitId, auth_time: stale });
    assert.equal(ep.seen[0].type, 'application/json');
    const [v] = srv.sql(`SELECT state, doctor_verify_method m, doctor_verify_amr amr, doctor_verified_at t FROM visits WHERE id = '${a.visitId}'`);
    assert.deepEqual(v, { state: 'active', m: 'endpoint', amr: 'face', t: verifiedAt * 1000 });
    assert.equal((await feedEvent(srv, a.visitId, 'visit.started')).data.doctor_verification.method, 'endpoint');

    mode = 'no';
    const b = await offered(srv, doctor, 'p-b');
    assert.equal(await refusal(doctor, b.visitId), 'identity_refused');
    await b.patient.request('queue.leave', { visit_id: b.visitId });

    mode = 'error';
    const c = await offered(srv, doctor, 'p-c');
    assert.equal(await refusal(doctor, c.visitId), 'identity_unavailable');
    await c.patient.request('queue.leave', { visit_id: c.visitId });

    // No answer: refused after the timeout, and the control loop kept
    // serving meanwhile (a ping answered while the endpoint hangs).
    mode = 'hang';
    const d = await offered(srv, doctor, 'p-d');
    const pending = doctor.request('visit.accept', { visit_id: d.visitId }).then(() => null, (e) => e);
    await waitUntil('the endpoint asked', () => ep.seen.length === 4);
    const pinger = await srv.client('p-ping', 'patient');
    await pinger.request('ping');
    await assert.rejects(doctor.request('visit.accept', { visit_id: d.visitId }), /conflict: your identity check for this visit is under way/);
    const e = await pending;
    assert.equal(e && e.reason, 'identity_unavailable');
    assert.equal(srv.sql(`SELECT state FROM visits WHERE id = '${d.visitId}'`)[0].state, 'offered');

    // A fresh token proves it alone: the endpoint is not asked.
    const fresh = await srv.client('d1', 'doctor');
    await fresh.request('doctor.status', { status: 'available' });
    await fresh.request('visit.accept', { visit_id: d.visitId });
    assert.equal(ep.seen.length, 4);
    assert.equal(srv.sql(`SELECT doctor_verify_method m FROM visits WHERE id = '${d.visitId}'`)[0].m, 'token');
  } finally {
    await ep.close();
  }
});

test('doctor_verify_window_s 0: no check, and none recorded', async () => {
  const srv = await startServer({ args: ['--doctor-verify-window-s', '0'] });
  servers.push(srv);
  await setupHospital(srv);
  const doctor = await srv.client('d1', 'doctor', { auth_time: undefined });
  await doctor.request('doctor.status', { status: 'available' });
  const { visitId } = await offered(srv, doctor, 'p1');
  await doctor.request('visit.accept', { visit_id: visitId });
  const admin = srv.token('admin-1', 'admin');
  const rec = (await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin)).json;
  assert.equal(rec.doctor_verification, null);
});
