// visit.test.mjs - one full visit between two webrtcbin reference peers
// through the real telemed-server (recording on, the default), then
// everything the record and the API must say about it: the recording row,
// the file on disk and how it plays, its hash, the regulator event, the
// recording API (ranges, roles, audit), the FHIR Encounter, and finally the
// retention sweep (410 once the file is deleted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '../integration/lib/server.mjs';
import {
  clinicServer, tokens, startVisit, describe, probe, sha256, sha256File, getBin, finishedRecording,
  ms, dirModes, until, DOCTOR,
} from './lib_rec.mjs';

const VISIT_S = 20; // long enough that the set-up before the first packet stays well under 10%

test('a recorded visit: file, record, API, FHIR, retention', { timeout: 240000 }, async (t) => {
  const srv = await clinicServer(t, { args: ['--no-recording-encrypt'] });
  const tok = tokens(srv, 'p-rec-visit');
  const t0 = Date.now();
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, { duration: 40, endAfter: VISIT_S });
  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  assert.equal(rd.code, 0, describe('doctor', rd));
  assert.equal(rp.code, 0, describe('patient', rp));
  assert.match(rp.out, /event=visit_state visit=\S+ state=ended/, 'patient saw the doctor end the visit');
  const vid = visitId();
  assert.ok(vid, 'visit id known');
  console.log(`# visit ${vid} ran ${Date.now() - t0} ms`);

  const rec = await finishedRecording(srv, vid, tok.admin);
  assert.ok(rec, 'visit record readable');
  const active = ms(rec.ended_at) - ms(rec.accepted_at);
  assert.ok(active >= VISIT_S * 1000 * 0.9, `visit active ${active} ms`);
  let row;
  let file;

  await t.test('the record has one complete recording with size, duration and hash', () => {
    assert.equal(rec.state, 'ended');
    assert.equal(rec.recordings.length, 1, JSON.stringify(rec.recordings));
    row = rec.recordings[0];
    assert.equal(row.state, 'complete', JSON.stringify(row));
    assert.equal(row.format, 'matroska');
    assert.ok(!row.encrypted, 'not encrypted without a key');
    assert.match(row.sha256, /^[0-9a-f]{64}$/);
    assert.ok(row.size_bytes > 0 && row.duration_ms > 0, JSON.stringify(row));
    assert.ok(row.started_at && row.finished_at, 'started_at and finished_at set');
    assert.ok(Array.isArray(rec.stream_stats), 'stream_stats in the record');
  });

  await t.test('the file is under the recording dir, dirs 0700, size and SHA-256 match', () => {
    file = row.path;
    const root = path.join(srv.dataDir, 'recordings');
    assert.ok(file.startsWith(root + path.sep), `${file} under ${root}`);
    assert.match(path.basename(file), new RegExp(`^${vid}\\.mkv$`));
    assert.ok(fs.existsSync(file), 'file exists');
    for (const [d, mode] of dirModes(root, file)) assert.equal(mode, 0o700, `${d} mode ${mode.toString(8)}`);
    assert.equal(fs.statSync(file).size, row.size_bytes, 'size in the record = file size');
    assert.equal(sha256File(file), row.sha256, 'sha256 in the record = file hash');
  });

  await t.test('the file plays: audio and video of both senders, duration within 10% of the visit', async () => {
    const p = await probe(file);
    assert.equal(p.code, 0, p.out);
    assert.equal(p.result.eos, 1, p.out);
    const video = p.streams.filter((s) => s.kind === 'video');
    const audio = p.streams.filter((s) => s.kind === 'audio');
    assert.equal(video.length, 2, `two video tracks\n${p.out}`);
    assert.equal(audio.length, 2, `two audio tracks\n${p.out}`);
    const sizes = video.map((s) => `${s.width}x${s.height}`).sort();
    assert.deepEqual(sizes, ['320x240', '640x360'], `one video track per sender\n${p.out}`);
    for (const s of video) assert.ok(s.buffers >= VISIT_S * 10, `video track decodes many frames\n${p.out}`);
    for (const s of audio) assert.ok(s.audio_ms >= VISIT_S * 1000 * 0.5, `audio track decodes\n${p.out}`);
    const span = p.result.duration_ms;
    console.log(`# recorded span ${span} ms, record duration_ms ${row.duration_ms}, visit active ${active} ms`);
    assert.ok(Math.abs(span - active) <= active * 0.1, `played ${span} ms vs visit ${active} ms\n${p.out}`);
    assert.ok(Math.abs(row.duration_ms - active) <= active * 0.1, `record says ${row.duration_ms} ms vs visit ${active} ms`);
  });

  await t.test('recording.available is in the outbox with the file hash', () => {
    const rows = srv.sql(`SELECT type, payload FROM outbox WHERE visit_id = '${vid}' ORDER BY seq`);
    const types = rows.map((r) => r.type);
    const ev = rows.find((r) => r.type === 'recording.available');
    assert.ok(ev, `outbox: ${types.join(',')}`);
    assert.ok(types.indexOf('recording.available') > types.indexOf('visit.started') || !types.includes('visit.started'));
    const payload = JSON.parse(ev.payload);
    assert.ok(JSON.stringify(payload).includes(row.sha256), `payload carries the hash: ${ev.payload}`);
  });

  const recPath = () => `/api/v1/recordings/${row.id}`;
  let full;
  const unsatisfiable = [];

  await t.test('GET /api/v1/recordings/{id}: admin and supervisor get the whole file', async () => {
    full = await getBin(srv, recPath(), { token: tok.admin });
    assert.equal(full.status, 200, `status ${full.status} content-type ${full.headers['content-type']} length ${full.body.length}`);
    assert.equal(full.headers['content-type'], 'video/x-matroska');
    assert.equal(full.body.length, row.size_bytes);
    assert.equal(sha256(full.body), row.sha256);
    const sup = await getBin(srv, recPath(), { token: tok.supervisor });
    assert.equal(sup.status, 200);
    assert.equal(sha256(sup.body), row.sha256);
  });

  await t.test('byte ranges: 206 with Content-Range and the right bytes, 416 out of bounds', async () => {
    const size = row.size_bytes;
    const file_ = fs.readFileSync(file);
    const cases = [
      ['bytes=100-1099', 100, 1099],
      ['bytes=0-0', 0, 0],
      [`bytes=${size - 10}-`, size - 10, size - 1],
      ['bytes=-500', size - 500, size - 1],
      [`bytes=${size - 5}-${size + 1000}`, size - 5, size - 1], // last clamps to the end
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
    ];
    for (const [range, first, last] of cases) {
      const r = await getBin(srv, recPath(), { token: tok.admin, headers: { range } });
      assert.equal(r.status, 206, `${range}: ${r.status} content-type ${r.headers['content-type']}`);
      assert.equal(r.headers['content-range'], `bytes ${first}-${last}/${size}`, range);
      assert.equal(Number(r.headers['content-length']), last - first + 1, range);
      assert.ok(r.body.equals(file_.subarray(first, last + 1)), `${range}: bytes differ`);
    }
    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
      const r = await getBin(srv, recPath(), { token: tok.admin, headers: { range } });
      assert.equal(r.status, 416, `${range}: ${r.status}`);
      unsatisfiable.push([range, r.headers['content-range']]);
    }
    // A header the server may ignore (RFC 9110): the whole file, never garbage.
    for (const range of ['bytes=abc', 'lines=1-2', 'bytes=0-1,5-6']) {
      const r = await getBin(srv, recPath(), { token: tok.admin, headers: { range } });
      assert.ok(r.status === 200 || r.status === 416 || r.status === 206, `${range}: ${r.status}`);
      if (r.status === 200) assert.equal(sha256(r.body), row.sha256, range);
    }
  });

  await t.test('a 416 says the size: Content-Range: bytes */size (RFC 9110 15.5.17, include/telemed/http_range.h)', () => {
    assert.ok(unsatisfiable.length === 3, 'the 416 requests ran');
    for (const [range, cr] of unsatisfiable) assert.equal(cr, `bytes */${row.size_bytes}`, range);
  });

  await t.test('recordings are for staff: patient and doctor 403, no token 401, unknown id 404; all audited', async () => {
    const pt = await getBin(srv, recPath(), { token: tok.patient });
    assert.equal(pt.status, 403);
    assert.ok(pt.body.length < 1000, 'no recording bytes to a patient');
    const dr = await getBin(srv, recPath(), { token: tok.doctor });
    assert.equal(dr.status, 403);
    const anon = await getBin(srv, recPath());
    assert.equal(anon.status, 401);
    const unk = await getBin(srv, '/api/v1/recordings/rec-00000000-0000-4000-8000-000000000000', { token: tok.admin });
    assert.equal(unk.status, 404);
    // Staff fetches of our own here, so this check stands on its own.
    await getBin(srv, recPath(), { token: tok.admin });
    await getBin(srv, recPath(), { token: tok.supervisor });
    const rows = srv.sql(`SELECT actor_id, actor_role, outcome, detail FROM audit_log
      WHERE action = 'recording.fetch' AND target = '${row.id}' ORDER BY id`);
    const ok = rows.filter((r) => r.outcome === 'ok');
    assert.ok(ok.some((r) => r.actor_role === 'admin'), JSON.stringify(rows));
    assert.ok(ok.some((r) => r.actor_role === 'supervisor'), JSON.stringify(rows));
    assert.ok(rows.some((r) => r.outcome === 'denied' && r.actor_role === 'patient'), `patient denial audited: ${JSON.stringify(rows)}`);
    // The audit API shows the same.
    const a = await srv.api('GET', `/api/v1/audit?target=${row.id}`, undefined, tok.admin);
    assert.equal(a.status, 200);
    assert.ok(a.json.audit.some((x) => x.action === 'recording.fetch'), a.text.slice(0, 500));
  });

  await t.test('a ranged fetch is audited with the range asked for (api_records.c: "Every fetch is in the audit log, with the range asked for")', async () => {
    await getBin(srv, recPath(), { token: tok.supervisor, headers: { range: 'bytes=7-77' } });
    const rows = srv.sql(`SELECT detail FROM audit_log WHERE action = 'recording.fetch' AND target = '${row.id}' ORDER BY id DESC LIMIT 1`);
    assert.match(rows[0]?.detail || '', /7-77/, `audit detail: ${JSON.stringify(rows)}`);
  });

  await t.test('FHIR R4 Encounter of the ended visit', async () => {
    // The doctor signs a note with an ICD-10 code after the visit.
    const dc = new Client(srv.url());
    await dc.open();
    await dc.request('hello', { token: tok.doctor, ua: 'rec-test/1' });
    await dc.request('visit.note', { visit_id: vid, text: 'acute upper respiratory infection', diagnosis_code: 'J06.9', sign: true });
    await dc.close();

    const r = await srv.api('GET', `/api/v1/visits/${vid}/fhir`, undefined, tok.admin);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^application\/fhir\+json/);
    const e = r.json;
    assert.equal(e.resourceType, 'Encounter');
    assert.equal(e.status, 'finished');
    assert.equal(e.class.system, 'http://terminology.hl7.org/CodeSystem/v3-ActCode');
    assert.equal(e.class.code, 'VR');
    assert.equal(typeof e.subject.reference, 'string');
    const contained = e.contained || [];
    const byRef = (ref) => ref && ref.startsWith('#') && contained.find((c) => c.id === ref.slice(1));
    assert.equal(byRef(e.subject.reference)?.resourceType, 'Patient', 'subject resolves to a contained Patient');
    assert.ok(Array.isArray(e.participant) && e.participant.length >= 1);
    const atnd = e.participant.find((p) => p.type?.some((cc) => cc.coding?.some((c) =>
      c.system === 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType' && c.code === 'ATND')));
    assert.ok(atnd, JSON.stringify(e.participant));
    assert.equal(byRef(atnd.individual?.reference)?.resourceType, 'Practitioner');
    assert.ok(e.period?.start && e.period?.end, 'period start and end');
    assert.equal(ms(e.period.start), ms(rec.accepted_at));
    assert.equal(ms(e.period.end), ms(rec.ended_at));
    assert.ok(ms(e.period.end) > ms(e.period.start));
    assert.equal(e.length?.system, 'http://unitsofmeasure.org');
    assert.equal(e.length?.code, 'min');
    assert.equal(typeof e.length.value, 'number');
    assert.ok(Math.abs(e.length.value - active / 60000) <= 0.1, `length ${e.length.value} min vs ${active} ms`);
    const reasons = (e.reasonCode || []).flatMap((cc) => cc.coding || []);
    assert.ok(reasons.some((c) => c.system === 'http://hl7.org/fhir/sid/icd-10' && c.code === 'J06.9'), JSON.stringify(e.reasonCode));
    const media = contained.filter((c) => c.resourceType === 'Media');
    assert.equal(media.length, 1, 'a contained Media for the recording');
    assert.equal(media[0].status, 'completed');
    assert.ok(JSON.stringify(media[0]).includes(row.id), 'Media identifies the recording');
    for (const c of contained) assert.ok(c.id && !c.id.includes('#'), `contained ${c.resourceType} has a local id`);
    // Not for patients; unknown visit 404.
    const pr = await srv.api('GET', `/api/v1/visits/${vid}/fhir`, undefined, tok.patient);
    assert.equal(pr.status, 403);
    const nf = await srv.api('GET', '/api/v1/visits/v-00000000-0000-4000-8000-000000000000/fhir', undefined, tok.admin);
    assert.equal(nf.status, 404);
  });

  await t.test('retention: a recording past the period is deleted at start, then 410 and audited', async () => {
    // The sweep's floor is 1095 days, so age the row instead of waiting:
    // started_at moves 1100 days back (server stopped, so nothing holds
    // the write lock), then the start runs the sweep.
    await srv.stop({ keep: true });
    srv.sql(`UPDATE recordings SET started_at = started_at - ${1100 * 86400000} WHERE id = '${row.id}'`);
    await srv.restart();
    const gone = await until(() => !fs.existsSync(file), 10000);
    assert.ok(gone, 'file deleted by the retention sweep');
    const r = await getBin(srv, recPath(), { token: tok.admin });
    assert.equal(r.status, 410, `status ${r.status} length ${r.body.length}`);
    const ranged = await getBin(srv, recPath(), { token: tok.admin, headers: { range: 'bytes=0-10' } });
    assert.equal(ranged.status, 410);
    const v = await srv.api('GET', `/api/v1/visits/${vid}`, undefined, tok.admin);
    const dr = v.json.recordings[0];
    assert.equal(dr.state, 'deleted');
    assert.ok(dr.deleted_at, 'deleted_at set');
    assert.match(dr.deleted_by_policy || '', /retention_recordings_days=1095/);
    const audit = srv.sql(`SELECT actor_id, outcome, detail FROM audit_log WHERE action = 'recording.delete' AND target = '${row.id}'`);
    assert.equal(audit.length, 1, JSON.stringify(audit));
    assert.equal(audit[0].outcome, 'ok');
    // The FHIR Media says what happened to the file.
    const f = await srv.api('GET', `/api/v1/visits/${vid}/fhir`, undefined, tok.admin);
    const m = f.json.contained.find((c) => c.resourceType === 'Media');
    assert.match(JSON.stringify(m), /deleted/);
    assert.equal(DOCTOR, rec.doctor_id);
  });
});
