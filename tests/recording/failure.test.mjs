// failure.test.mjs - when recording cannot happen, the visit goes on and
// the trace says so. A recording directory that cannot be created (what a
// full disk does to the first visit of a day: mkdir fails) must leave the
// visit running, raise a recording_failed alert for supervisors and put a
// failed recording with its reason into the visit record. With recording
// switched off (--no-recording) there is no recording and no
// recording.available event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clinicServer, tokens, startVisit, describe, until, ms } from './lib_rec.mjs';

test('the recording directory cannot be created: visit goes on, supervisors alerted, record says failed', { timeout: 120000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'telemed-rec-bad-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const blocker = path.join(tmp, 'not-a-dir');
  fs.writeFileSync(blocker, 'a file where the recording directory should be\n');
  const srv = await clinicServer(t, { args: ['--recording-dir', path.join(blocker, 'recordings')] });
  const tok = tokens(srv, 'p-rec-fail');
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, { duration: 30, endAfter: 8 });
  await patient.waitEvent('offer_sent', 30000);
  const vid = visitId();

  const alert = await until(async () => {
    const r = await srv.api('GET', '/api/v1/overview', undefined, tok.supervisor);
    return r.status === 200 && (r.json.alerts || []).find((a) => a.kind === 'recording_failed' && a.visit_id === vid);
  }, 10000);
  assert.ok(alert, 'recording_failed alert in the supervisor overview');
  assert.ok(alert.reason, `the alert says why: ${JSON.stringify(alert)}`);

  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  assert.equal(rd.code, 0, `the visit went on with media: ${describe('doctor', rd)}`);
  assert.equal(rp.code, 0, describe('patient', rp));

  const r = await srv.api('GET', `/api/v1/visits/${vid}`, undefined, tok.admin);
  assert.equal(r.json.state, 'ended');
  assert.ok(ms(r.json.ended_at) - ms(r.json.accepted_at) >= 7000, 'the visit ran its course');
  const recs = r.json.recordings;
  assert.ok(recs.length === 1 && recs[0].state === 'failed' && recs[0].failure,
    `the visit record must say the recording failed and why: recordings=${JSON.stringify(recs)}`);
});

test('--no-recording: no recording row, no file, no recording.available', { timeout: 120000 }, async (t) => {
  const srv = await clinicServer(t, { args: ['--no-recording'] });
  const tok = tokens(srv, 'p-rec-off');
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, { duration: 30, endAfter: 6 });
  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  assert.equal(rd.code, 0, describe('doctor', rd));
  assert.equal(rp.code, 0, describe('patient', rp));
  const vid = visitId();
  const r = await srv.api('GET', `/api/v1/visits/${vid}`, undefined, tok.admin);
  assert.equal(r.json.state, 'ended');
  assert.deepEqual(r.json.recordings, []);
  assert.equal(fs.existsSync(path.join(srv.dataDir, 'recordings')) &&
    fs.readdirSync(path.join(srv.dataDir, 'recordings'), { recursive: true }).some((f) => /\.mkv(\.enc)?$/.test(f)), false);
  assert.deepEqual(srv.sql(`SELECT type FROM outbox WHERE visit_id = '${vid}' AND type = 'recording.available'`), []);
});
