// retention_evidence.test.mjs - the retention sweep leaves sealed evidence
// of what it deleted. A sealed visit whose recording is past
// retention_recordings_days; the server restarts (the sweep runs at start):
// the file is gone, the visit's chain holds a recording.deleted event with
// the file's hash, the policy and the time, the audit row names the same
// hash, the feed delivers the event, and both the chain and the end-to-end
// verify (seal included) still pass.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, setupHospital, waitUntil } from './lib/server.mjs';

const YEAR_MS = 365 * 86400e3;

test('a recording past retention is deleted with its hash chained into the sealed record', { timeout: 180000 }, async () => {
  // The visit's own recording row never gets media here, so the seal comes
  // seal-after-s after the end (as after a day in a deployment).
  const srv = await startServer({ args: ['--seal-after-s', '2'] });
  try {
    const admin = await setupHospital(srv);
    const doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const patient = await srv.client('p1', 'patient');
    const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up' });
    const vid = ci.visit_id;
    await doctor.waitFor('visit.offer', (m) => m.visit_id === vid);
    await doctor.request('visit.accept', { visit_id: vid });
    await patient.waitFor('visit.state', (m) => m.state === 'active');
    // The visit's recording, four years old (past the three-year floor).
    const file = path.join(srv.dataDir, 'old-visit.mkv');
    const bytes = crypto.randomBytes(256 * 1024);
    fs.writeFileSync(file, bytes);
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    const started = Date.now() - 4 * YEAR_MS;
    srv.sql(`INSERT INTO recordings(id, visit_id, path, format, state, size_bytes, sha256, started_at, finished_at)
      VALUES ('rec-old', '${vid}', '${file}', 'matroska', 'complete', ${bytes.length}, '${sha}', ${started}, ${started + 600e3})`);
    await doctor.request('visit.note', { visit_id: vid, text: 'n', diagnosis_code: 'I10', sign: true });
    await doctor.request('visit.end', { visit_id: vid, reason: 'completed' });
    await patient.waitFor('visit.state', (m) => m.state === 'ended');
    await patient.close();
    await doctor.close();
    await waitUntil('the seal', () => srv.sql(`SELECT 1 AS x FROM visit_seals WHERE visit_id = '${vid}'`).length > 0, 60000);
    const before = await srv.api('GET', `/api/v1/visits/${vid}/verify`, undefined, admin);
    assert.equal(before.json.ok, true, JSON.stringify(before.json, null, 2));

    await srv.restart(); // the sweep runs at start
    await waitUntil('the deletion', () => srv.sql(`SELECT state FROM recordings WHERE id = 'rec-old'`)[0].state === 'deleted', 30000);
    assert.equal(fs.existsSync(file), false);

    // The evidence: a chained event with the hash, the policy and the time ...
    const rows = srv.sql(`SELECT payload, chain_hash FROM outbox WHERE visit_id = '${vid}' AND type = 'recording.deleted'`);
    assert.equal(rows.length, 1);
    assert.match(rows[0].chain_hash, /^[0-9a-f]{64}$/);
    const deletion = JSON.parse(rows[0].payload).deletion;
    assert.equal(deletion.recording_id, 'rec-old');
    assert.equal(deletion.sha256, sha);
    assert.equal(deletion.size, bytes.length);
    assert.equal(deletion.policy, 'retention_recordings_days=1095');
    assert.ok(Math.abs(Date.parse(deletion.deleted_at) - Date.now()) < 600e3, deletion.deleted_at);
    // ... the audit row naming the same hash ...
    const audit = srv.sql(`SELECT actor_id, outcome, detail FROM audit_log WHERE action = 'recording.delete' AND target = 'rec-old'`);
    assert.deepEqual(audit, [{ actor_id: 'system', outcome: 'ok', detail: `retention_recordings_days=1095 sha256=${sha}` }]);
    // ... and the feed delivers it (the file sink here).
    const feedDir = path.join(srv.dataDir, 'feed');
    const delivered = () => fs.readdirSync(feedDir).flatMap((f) => fs.readFileSync(path.join(feedDir, f), 'utf8').split('\n'))
      .filter((l) => l).map((l) => JSON.parse(l)).find((e) => e.type === 'recording.deleted' && e.visit_id === vid);
    await waitUntil('the event in the feed', () => delivered() !== undefined, 30000);
    assert.equal(delivered().data.deletion.sha256, sha);

    // The chain and the sealed record still verify; the file is the policy at work.
    const chain = await srv.api('GET', `/api/v1/visits/${vid}/chain`, undefined, admin);
    assert.equal(chain.json.ok, true, JSON.stringify(chain.json));
    const after = await srv.api('GET', `/api/v1/visits/${vid}/verify`, undefined, admin);
    assert.equal(after.json.ok, true, JSON.stringify(after.json, null, 2));
    assert.equal(after.json.seal.signature, 'valid');
    assert.ok(after.json.events_after_seal >= 1);
    assert.equal(after.json.recordings.find((r) => r.id === 'rec-old').file, 'deleted by policy');
  } finally {
    await srv.stop();
  }
});
