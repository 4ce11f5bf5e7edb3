// party.test.mjs - a visit of three through the whole server between
// independent reference peers (webrtc_client on webrtcbin): the patient,
// the attending doctor, and a consulting doctor of another department whom
// the attending invites once the visit is active and who accepts. Each
// offers one sendrecv pair and one receive-only pair, and each must decode
// the other two: two video streams of frames at the two other senders' own
// picture sizes (every sender sends a size of its own) and two audio
// streams, counted by the peer itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, api } from './lib_server.mjs';
import { prepareClinic } from './lib_visit.mjs';
import { runClient, describe } from './lib_client.mjs';

const SIZES = { patient: [320, 240], doctor: [352, 288], consulting: [480, 270] };

function args(srv, token, role, who, extra = []) {
  const [w, h] = SIZES[who];
  return ['--url', srv.url, '--token', token, '--role', role, '--width', String(w), '--height', String(h),
    '--expect-width', '0', '--expect-height', '0', '--recv-pairs', '1',
    '--expect-video-streams', '2', '--expect-audio-streams', '2', '--min-audio-s', '3', ...extra];
}

// The decoded video sizes a peer reports, sorted, as "WxH".
const sizes = (r) => r.streams.filter((s) => s.kind === 'video' && Number(s.frames) > 0)
  .map((s) => `${s.width}x${s.height}`).sort();
const want = (...who) => who.map((x) => SIZES[x].join('x')).sort();

test('three webrtcbin peers in one visit: each decodes the other two', { timeout: 240000 }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const c = await prepareClinic(srv);
  // The colleague's own department, with a shift, so they are on duty there
  // and never offered this patient.
  const colleague = await prepareClinic(srv, { dept: 'neurology', doctorId: 'd-consult' });
  const admin = srv.token('admin-webrtc', 'admin');

  const consult = runClient(args(srv, colleague.doctorToken, 'doctor', 'consulting',
    ['--accept-invite', '--duration', '20']), { name: 'consulting' });
  t.after(() => consult.kill());
  const doctor = runClient(args(srv, c.doctorToken, 'doctor', 'doctor',
    ['--invite', colleague.doctorId, '--duration', '40', '--end-after', '30']), { name: 'doctor' });
  t.after(() => doctor.kill());
  await Promise.all([consult.waitEvent('hello_ok', 60000), doctor.waitEvent('hello_ok', 60000)]);
  const patient = runClient(args(srv, c.patientToken, 'patient', 'patient', ['--dept', c.dept, '--duration', '40']),
    { name: 'patient' });
  t.after(() => patient.kill());

  const joined = await consult.waitEvent('joined', 90000);
  assert.equal(joined.role, 'consulting');
  const [rp, rd, rc] = await Promise.all([patient.done, doctor.done, consult.done]);
  assert.equal(rp.code, 0, describe('patient', rp));
  assert.equal(rd.code, 0, describe('doctor', rd));
  assert.equal(rc.code, 0, describe('consulting', rc));
  assert.equal(rp.result.visit, rd.result.visit, 'the patient and the doctor in one visit');
  assert.equal(rc.result.visit, rd.result.visit, 'the colleague in the same visit');
  assert.deepEqual(sizes(rp), want('doctor', 'consulting'), describe('patient', rp));
  assert.deepEqual(sizes(rd), want('patient', 'consulting'), describe('doctor', rd));
  assert.deepEqual(sizes(rc), want('patient', 'doctor'), describe('consulting', rc));
  for (const [who, res] of [['patient', rp], ['doctor', rd], ['consulting', rc]]) {
    const audio = res.streams.filter((s) => s.kind === 'audio' && Number(s.audio_ms) >= 3000);
    assert.equal(audio.length, 2, `${who} hears both others: ${describe(who, res)}`);
  }
  // The visit record has the three of them, the colleague as consulting.
  const rec = await api(srv, 'GET', `/api/v1/visits/${rd.result.visit}`, { token: admin });
  const roles = (rec.body.participants || []).map((p) => p.visit_role || p.role).sort();
  assert.ok(roles.includes('consulting'), JSON.stringify(rec.body.participants));
});
