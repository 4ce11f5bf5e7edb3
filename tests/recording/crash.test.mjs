// crash.test.mjs - kill -9 of telemed-server in the middle of a recorded
// visit between two webrtcbin reference peers. After the restart the
// recording row says incomplete (with the size and hash of what is on
// disk), the partial file still decodes up to the crash, and nothing the
// server committed before it died is lost: the visit row, the chat sent
// before the kill, the participants and the outbox events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { clinicServer, tokens, startVisit, probe, sha256File, sleep, until, DEPT } from './lib_rec.mjs';

const PATIENT = 'p-rec-crash';

test('kill -9 mid-visit: partial recording plays, record says incomplete, nothing committed is lost', { timeout: 180000 }, async (t) => {
  const srv = await clinicServer(t, { args: ['--no-recording-encrypt'] });
  const tok = tokens(srv, PATIENT);
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, { duration: 60 });
  await patient.waitEvent('first_video', 30000);
  await doctor.waitEvent('first_video', 30000);
  const tMedia = Date.now();
  const vid = visitId();
  assert.ok(vid);
  await sleep(4000); // both senders into the file for a while

  // Chat during the visit. A second connection of the patient replaces the
  // reference peer's session (its media stops, the doctor's goes on).
  const pc = await srv.client(PATIENT, 'patient', { dept: DEPT });
  const sent = [];
  for (const text of ['before the crash 1', 'before the crash 2 / 崩溃前']) {
    const r = await pc.request('chat.send', { visit_id: vid, text });
    sent.push({ id: r.message_id, text });
  }
  await sleep(2500);

  const q = {
    visit: `SELECT id, patient_id, dept_id, doctor_id, kind, checkin_at, offered_at, accepted_at, queue_wait_ms, response_ms, recording_consent FROM visits WHERE id = '${vid}'`,
    chat: `SELECT id, sender_id, sender_role, body, sent_at FROM chat_messages WHERE visit_id = '${vid}' ORDER BY id`,
    outbox: 'SELECT seq, event_id, type, visit_id, occurred_at, payload FROM outbox ORDER BY seq',
    participants: `SELECT user_id, role, joined_at FROM participants WHERE visit_id = '${vid}' ORDER BY id`,
    audit: 'SELECT id, at, actor_id, action, target, outcome FROM audit_log ORDER BY id',
  };
  const before = Object.fromEntries(Object.entries(q).map(([k, s]) => [k, srv.sql(s)]));
  assert.equal(before.visit.length, 1);
  assert.equal(before.chat.length, 2, JSON.stringify(before.chat));
  const recRow = srv.sql(`SELECT id, path, state FROM recordings WHERE visit_id = '${vid}'`);
  assert.equal(recRow.length, 1, 'a recording row exists while recording');
  assert.equal(recRow[0].state, 'recording');
  const tKill = Date.now();
  await srv.restart({ hard: true });
  console.log(`# killed ${tKill - tMedia} ms after media flowed both ways; restarted in ${Date.now() - tKill} ms`);

  let row;
  await t.test('the recording row is incomplete, with the size and hash of the file on disk', async () => {
    const rec = await until(async () => {
      const r = await srv.api('GET', `/api/v1/visits/${vid}`, undefined, tok.admin);
      return r.status === 200 && r.json.recordings?.[0]?.state !== 'recording' ? r.json : null;
    }, 10000);
    assert.ok(rec, 'visit record readable after the restart');
    assert.equal(rec.recordings.length, 1);
    row = rec.recordings[0];
    assert.equal(row.state, 'incomplete', JSON.stringify(row));
    assert.ok(row.failure, 'the reason is on record');
    assert.ok(fs.existsSync(row.path), 'partial file kept');
    assert.equal(row.size_bytes, fs.statSync(row.path).size);
    assert.equal(row.sha256, sha256File(row.path));
    const ev = srv.sql(`SELECT type, payload FROM outbox WHERE visit_id = '${vid}' AND type = 'recording.available'`);
    assert.equal(ev.length, 1, 'recording.available for the partial file');
    const payload = JSON.parse(ev[0].payload);
    assert.ok(JSON.stringify(payload).includes(row.sha256), ev[0].payload);
  });

  await t.test('the partial file decodes up to the crash', async () => {
    const p = await probe(row.path);
    // A cut file may end in an error from the demuxer; what matters is
    // what decodes before it.
    assert.ok(p.code === 0 || p.code === 3, p.out);
    const video = p.streams.filter((s) => s.kind === 'video');
    const audio = p.streams.filter((s) => s.kind === 'audio');
    assert.equal(video.length, 2, `both senders' video in the partial file\n${p.out}`);
    for (const s of video) assert.ok(s.buffers > 0, `frames decoded\n${p.out}`);
    assert.ok(audio.length >= 1 && audio.some((s) => s.audio_ms > 1000), `audio decodes\n${p.out}`);
    const lost = (tKill - tMedia) - p.result.duration_ms;
    console.log(`# partial file: ${p.result.duration_ms} ms decodable, ${tKill - tMedia} ms of two-way media before the kill; eos=${p.result.eos} error=${p.result.error}`);
    // Everything up to the last second or two before the kill (what sat
    // in the muxer's and the file's buffers may be gone).
    assert.ok(lost <= 3000, `decodes ${p.result.duration_ms} ms of ${tKill - tMedia} ms\n${p.out}`);
  });

  await t.test('nothing committed before the crash is lost', () => {
    const after = Object.fromEntries(Object.entries(q).map(([k, s]) => [k, srv.sql(s)]));
    assert.deepEqual(after.visit, before.visit, 'visit row');
    assert.deepEqual(after.chat, before.chat, 'chat messages');
    assert.deepEqual(after.chat.map((c) => [c.id, c.body]), sent.map((s) => [s.id, s.text]));
    for (const p of before.participants)
      assert.ok(after.participants.some((a) => a.user_id === p.user_id && a.role === p.role && a.joined_at === p.joined_at), `participant ${p.user_id}`);
    for (const o of before.outbox) {
      const a = after.outbox.find((x) => x.seq === o.seq);
      assert.deepEqual(a, o, `outbox event ${o.seq} ${o.type}`);
    }
    assert.ok(before.outbox.some((o) => o.type === 'visit.started' || o.visit_id === vid), 'the visit had events before the kill');
    for (const a of before.audit)
      assert.ok(after.audit.some((x) => x.id === a.id && x.action === a.action && x.at === a.at), `audit row ${a.id}`);
  });

  await t.test('the recording API serves the partial file', async () => {
    const r = await srv.api('GET', `/api/v1/recordings/${row.id}`, undefined, tok.admin);
    assert.ok(r.status === 200, `status ${r.status}`);
  });
});
