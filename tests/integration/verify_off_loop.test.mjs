// verify_off_loop.test.mjs - GET /api/v1/visits/{id}/verify hashes the
// recording files off the control loop. The visit's recording row points at
// a named pipe, so the hash cannot finish before the test writes into it:
// while the verify waits on it, signaling answers pings and another REST
// request is served; then the bytes go in and the verify answers with their
// hash, and its audit row is written. On a server that hashed on the loop,
// the first ping would never be answered. Two verifies may wait at once; a
// third is refused (429) until one of them has finished.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, setupHospital } from './lib/server.mjs';

// A visit ended without a signed note (so it is not sealed before the
// test has added its recording row).
async function endedVisit(srv, patientId) {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  await patient.close();
  await doctor.close();
  return ci.visit_id;
}

test('a verify waiting on its recording file leaves signaling and REST answering', { timeout: 120000 }, async () => {
  const srv = await startServer({ args: ['--seal-after-s', '86400'] });
  const fifo = path.join(srv.dataDir, 'recording.pipe');
  const fifo2 = path.join(srv.dataDir, 'recording2.pipe');
  let writer = null, writer2 = null;
  try {
    const admin = await setupHospital(srv);
    const vid = await endedVisit(srv, 'p1');
    const bytes = crypto.randomBytes(3 * 1024 * 1024);
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    execFileSync('mkfifo', [fifo]);
    srv.sql(`INSERT INTO recordings(id, visit_id, path, format, state, size_bytes, sha256, started_at, finished_at)
      VALUES ('rec-pipe', '${vid}', '${fifo}', 'matroska', 'complete', ${bytes.length}, '${sha}', 1, 2)`);
    const vid2 = await endedVisit(srv, 'p2');
    execFileSync('mkfifo', [fifo2]);
    srv.sql(`INSERT INTO recordings(id, visit_id, path, format, state, size_bytes, sha256, started_at, finished_at)
      VALUES ('rec-pipe2', '${vid2}', '${fifo2}', 'matroska', 'complete', ${bytes.length}, '${sha}', 1, 2)`);

    let answered = null;
    const verify = srv.api('GET', `/api/v1/visits/${vid}/verify`, undefined, admin).then((r) => (answered = r));
    // Signaling while the hash waits on the pipe: three pings, one by one.
    const c = await srv.client('d1', 'doctor');
    for (let i = 0; i < 3; i++) {
      const pong = await Promise.race([c.request('ping', {}),
        new Promise((_, rej) => setTimeout(() => rej(new Error(`ping ${i} not answered while the verify runs`)), 30000))]);
      assert.equal(typeof pong.server_time, 'string', JSON.stringify(pong));
    }
    await c.close();
    // And another REST request, served meanwhile.
    assert.equal((await srv.api('GET', `/api/v1/visits/${vid}/chain`, undefined, admin)).status, 200);
    assert.equal(answered, null, 'the verify answered before its file could be read');

    // A second verify waits beside it; a third is refused while both run.
    const vid3 = await endedVisit(srv, 'p3'); // no files: a verify admitted ends at once
    const verify2 = srv.api('GET', `/api/v1/visits/${vid2}/verify`, undefined, admin);
    let third;
    for (let i = 0; i < 100; i++) { // admitted (200) until the second is parked
      third = await srv.api('GET', `/api/v1/visits/${vid3}/verify`, undefined, admin);
      if (third.status === 429) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(third.status, 429, third.text);
    assert.match(third.json.error.message, /try again/);
    writer2 = fs.promises.writeFile(fifo2, bytes);
    await writer2;
    assert.equal((await verify2).status, 200);

    writer = fs.promises.writeFile(fifo, bytes);
    await writer;
    const r = await verify;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, JSON.stringify(r.json, null, 2));
    const rec = r.json.recordings.find((x) => x.id === 'rec-pipe');
    assert.equal(rec.file_sha256, sha);
    const audit = srv.sql(`SELECT outcome FROM audit_log WHERE action = 'visit.verify' AND target = '${vid}'`);
    assert.deepEqual(audit, [{ outcome: 'ok' }]);
  } finally {
    // A writer that never came would leave the server's reader blocked at stop.
    if (!writer && fs.existsSync(fifo)) await fs.promises.writeFile(fifo, '').catch(() => {});
    if (!writer2 && fs.existsSync(fifo2)) await fs.promises.writeFile(fifo2, '').catch(() => {});
    await srv.stop();
  }
});
