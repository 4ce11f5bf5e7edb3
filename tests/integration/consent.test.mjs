// Informed consent before check-in, and terminate-and-refer with advice,
// through the real server with consent required (its default): consent.get
// gives the texts, a check-in without consent, with an old version or
// refusing recording is refused and writes nothing; an accepted consent is
// in the visit record and the feed's events (version, time, session). A
// doctor's terminate_and_refer needs advice, which the patient sees and the
// record and visit.ended keep. A hospital's own consent texts come from
// consent_dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, setupHospital, waitUntil } from './lib/server.mjs';

const VERSION = '2026.1';
let srv;
before(async () => {
  srv = await startServer({ consent: true, args: ['--hospital-phone', '+86 22 2333 0000'] });
  await setupHospital(srv);
});
after(async () => { await srv.stop(); });

// The NDJSON feed sink's events of one visit, once `count` are there.
async function feedEvents(visitId, count) {
  const dir = path.join(srv.dataDir, 'feed');
  const read = () => (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
    .filter((f) => f.endsWith('.ndjson'))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l)).filter((e) => e.visit_id === visitId);
  return waitUntil(`${count} feed events of ${visitId}`, () => { const e = read(); return e.length >= count && e; });
}

test('consent.get: both languages, one version, the phone line', async () => {
  const p = await srv.client('p-read', 'patient');
  const c = await p.request('consent.get', {});
  assert.equal(c.version, VERSION);
  assert.equal(c.kind, 'patient');
  assert.equal(c.required, true);
  assert.equal(c.recording, true);
  assert.equal(c.phone, '+86 22 2333 0000');
  assert.match(c.texts['zh-CN'], /知情同意/);
  assert.match(c.texts.en, /Informed consent/);
  const g = await p.request('consent.get', { kind: 'interpreter' });
  assert.equal(g.kind, 'interpreter');
  assert.match(g.texts.en, /interpreter/);
  await assert.rejects(p.request('consent.get', { kind: 'bystander' }), /bad_request/);
  await p.close();
});

test('check-in without a current consent is refused and leaves nothing', async () => {
  const p = await srv.client('p-no', 'patient');
  await assert.rejects(p.request('checkin', { dept: 'cardio' }), /forbidden: accept the informed consent/);
  await assert.rejects(p.request('checkin', { dept: 'cardio', consent: { version: '2025.9', recording: true } }),
    /conflict: the consent accepted is not the current version/);
  await assert.rejects(p.request('checkin', { dept: 'cardio', consent: { version: VERSION } }), /bad_request/);
  // Refusing recording: no video visit here; the message says what to do instead.
  await assert.rejects(p.request('checkin', { dept: 'cardio', consent: { version: VERSION, recording: false } }),
    /forbidden: video visits are recorded.*in person/);
  assert.equal(srv.sql("SELECT count(*) n FROM visits WHERE patient_id = 'p-no'")[0].n, 0);
  assert.equal(srv.sql("SELECT count(*) n FROM consents WHERE user_id = 'p-no'")[0].n, 0);
  await p.close();
});

test('an accepted consent is on the record and in the feed; refer needs advice the patient sees', async () => {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client('p-yes', 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', consent: { version: VERSION, recording: true } });
  const offer = await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: offer.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');

  await assert.rejects(doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'terminate_and_refer' }),
    /bad_request: terminate_and_refer needs advice/);
  await assert.rejects(doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'terminate_and_refer', advice: '' }),
    /bad_request/);
  await assert.rejects(doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed', advice: 'x' }),
    /bad_request: advice goes with terminate_and_refer only/);
  await assert.rejects(patient.request('visit.end', { visit_id: ci.visit_id, reason: 'terminate_and_refer', advice: 'x' }),
    /forbidden: only the doctor/);
  const advice = '胸痛加重：今天到本院急诊科线下就诊 / chest pain: emergency department today';
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'terminate_and_refer', advice });
  const ended = await patient.waitFor('visit.state', (m) => m.state === 'ended');
  assert.equal(ended.end_reason, 'terminate_and_refer');
  assert.equal(ended.referral_advice, advice);

  const admin = srv.token('admin-1', 'admin');
  const rec = (await srv.api('GET', `/api/v1/visits/${ci.visit_id}`, undefined, admin)).json;
  assert.equal(rec.referral_advice, advice);
  assert.equal(rec.recording_consent, true);
  assert.equal(rec.consents.length, 1);
  const [c] = rec.consents;
  assert.equal(c.kind, 'patient');
  assert.equal(c.user_id, 'p-yes');
  assert.equal(c.version, VERSION);
  assert.equal(c.recording, true);
  assert.match(c.session_id, /^ws-[0-9a-f-]{36}$/);
  assert.ok(Math.abs(Date.parse(c.accepted_at) - Date.now()) < 600000);
  assert.equal(rec.doctor_verification.method, 'token');

  const events = await feedEvents(ci.visit_id, 3);
  const byType = Object.fromEntries(events.map((e) => [e.type, e.data]));
  assert.deepEqual(byType['visit.checked_in'].consent,
    { version: VERSION, recording: true, accepted_at: c.accepted_at, session_id: c.session_id });
  assert.equal(byType['visit.started'].doctor_verification.method, 'token');
  assert.equal(byType['visit.ended'].end_reason, 'terminate_and_refer');
  assert.equal(byType['visit.ended'].referral_advice, advice);
  await patient.close();
  await doctor.close();
});

test("a hospital's own consent text and version", async () => {
  const dir = fs.mkdtempSync(path.join(srv.dataDir, 'consent-'));
  fs.writeFileSync(path.join(dir, 'patient.en.txt'), 'Our own consent text, version 7.');
  const own = await startServer({ consent: true, args: ['--consent-dir', dir, '--consent-version', 'h-7'] });
  try {
    await setupHospital(own);
    const p = await own.client('p1', 'patient');
    const c = await p.request('consent.get', {});
    assert.equal(c.version, 'h-7');
    assert.equal(c.texts.en, 'Our own consent text, version 7.');
    assert.match(c.texts['zh-CN'], /知情同意/, 'a text the hospital did not give stays built in');
    assert.equal(c.phone, null);
    await assert.rejects(p.request('checkin', { dept: 'cardio', consent: { version: VERSION, recording: true } }), /conflict/);
    const ci = await p.request('checkin', { dept: 'cardio', consent: { version: 'h-7', recording: true } });
    assert.equal(own.sql(`SELECT version FROM consents WHERE visit_id = '${ci.visit_id}'`)[0].version, 'h-7');
    await p.close();
  } finally {
    await own.stop();
  }
  // An unreadable text stops the server at start with the file named.
  fs.writeFileSync(path.join(dir, 'guest.zh-CN.txt'), Buffer.from([0xff, 0xfe, 0x00]));
  await assert.rejects(startServer({ args: ['--consent-dir', dir] }), /consent text .*guest\.zh-CN\.txt/);
});
