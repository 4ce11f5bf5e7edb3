// tianjin_server.test.mjs - the tianjin profile in the real telemed-server,
// beside the webhook: a full visit over telemed.v1, the regulator ids put
// through REST, the nightly run started by the admin call, the record and
// its rating accepted by the stand-in platform; a record without the
// patient's certificate dead-lettered, then delivered after the id is put
// and the record replayed; status and /metrics. A visit with a consulting
// doctor: the platform's record has one doctor (the attending), the webhook
// names both.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer, setupHospital, fullVisit } from '../integration/lib/server.mjs';
import { startRegulator } from './regulator.mjs';
import { startPlatform } from './tianjin_platform.mjs';
import { sleep } from './lib.mjs';

const APP_KEY = 'srv-key';
const APP_SECRET = '0123456789abcdef0123456789abcdef';
const ORGAN_ID = '12120000MB0000001Y';

test('webhook and tianjin side by side: the admin run uploads the day, status and metrics show it',
  { timeout: 90000 }, async () => {
    const reg = await startRegulator({});
    const platform = await startPlatform({ appKey: APP_KEY, appSecret: APP_SECRET, organId: ORGAN_ID });
    const srv = await startServer({ args: ['--feed-url', reg.url, '--feed-profiles', 'webhook,tianjin',
      '--tianjin-url', platform.url, '--tianjin-app-key', APP_KEY, '--tianjin-app-secret', APP_SECRET,
      '--tianjin-organ-id', ORGAN_ID, '--tianjin-upload-at', '23:59:59',
      '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '500'] });
    try {
      const admin = await setupHospital(srv);
      for (const [kind, id, body] of [['doctor', 'd1', { code: '120101198001010011' }],
        ['dept', 'cardio', { code: '03.01' }], ['patient', 'p1', { code: '120101199001010022', cert_type: '1' }]]) {
        const r = await srv.api('PUT', `/api/v1/regulator-ids/${kind}/${id}`, body, admin);
        assert.equal(r.status, 200, r.text);
      }
      const bad = await srv.api('PUT', '/api/v1/regulator-ids/nurse/x', { code: '1' }, admin);
      assert.equal(bad.status, 400);
      const visit = await fullVisit(srv, 'p1', { score: 5 });
      const unknown = await fullVisit(srv, 'p2', { score: 5 }); // no certificate given for p2 yet
      await reg.waitFor(() => reg.stats().unique >= 10, 15000, 'the webhook events');

      const today = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
      const run = await srv.api('POST', '/api/v1/feed/profiles/tianjin/run', { day: today }, admin);
      assert.equal(run.status, 200, run.text);
      assert.equal(run.json.staged, 4);
      await platform.waitFor(() => platform.state.ratings.has(visit), 15000, 'record and rating');
      assert.equal(platform.state.visits.get(visit), 1);
      assert.deepEqual(platform.state.authFailures, []);

      const status = async (want) => {
        let st;
        for (let i = 0; i < 100; i++) {
          st = await srv.api('GET', '/api/v1/feed/profiles/tianjin', undefined, admin);
          if (want(st.json)) break;
          await sleep(100);
        }
        return st.json;
      };
      // p2's record never left: the dead letter names the field; its rating waits.
      let st = await status((j) => j.delivered === 2 && j.dead === 1);
      assert.equal(st.dead_letters.length, 1);
      assert.equal(st.dead_letters[0].buss_id, unknown);
      assert.equal(st.dead_letters[0].last_error, 'missing field patientCertType (from patient_cert_type), '
        + 'missing field patientCertID (from patient_cert_id)');
      assert.equal(st.held, 1);
      assert.ok(!platform.state.visits.has(unknown));
      // The compliance figures name the day's dead letter by its reason.
      const compliance = async () => (await srv.api('GET', '/api/v1/feed/compliance?days=10', undefined, admin)).json.profiles[0];
      let day = (await compliance()).days.find((d) => d.day === today);
      assert.deepEqual(day.dead_by_reason, { [st.dead_letters[0].last_error]: 1 });
      assert.equal(day.dead, 1);
      assert.notEqual(day.deadline, 'met');
      // The hospital gives the certificate, an admin replays: delivered under the same business id.
      const put = await srv.api('PUT', '/api/v1/regulator-ids/patient/p2', { code: '120101199001010033', cert_type: '1' }, admin);
      assert.equal(put.status, 200);
      const deadId = st.dead_letters[0].id;
      const replay = await srv.api('POST', `/api/v1/feed/profiles/tianjin/dead-letters/${deadId}/replay`, {}, admin);
      assert.equal(replay.status, 200, replay.text);
      await platform.waitFor(() => platform.state.ratings.has(unknown), 15000, 'the replayed record and its rating');
      assert.equal(platform.state.visits.get(unknown), 1);
      st = await status((j) => j.delivered === 4);
      assert.equal(st.delivered, 4);
      assert.deepEqual(st.dead_letters, []);
      const again = await srv.api('POST', `/api/v1/feed/profiles/tianjin/dead-letters/${deadId}/replay`, {}, admin);
      assert.equal(again.status, 409, 'delivered now, not a dead letter');
      // Every record accepted and the day checked in, before its deadline: met.
      for (let i = 0; i < 100 && (day = (await compliance()).days.find((d) => d.day === today)).deadline !== 'met'; i++)
        await sleep(100);
      assert.equal(day.deadline, 'met', JSON.stringify(day));
      assert.deepEqual([day.visits, day.ratings, day.accepted, day.pending, day.dead], [2, 2, 4, 0, 0]);
      assert.ok(Date.parse(day.complete_at) <= Date.parse(day.deadline_at));
      assert.ok(day.checkin_at);
      // A day five days back uploaded only now: checked in after its deadline, missed.
      const old = new Date(Date.now() + 8 * 3600e3 - 5 * 86400e3).toISOString().slice(0, 10);
      assert.equal((await srv.api('POST', '/api/v1/feed/profiles/tianjin/run', { day: old }, admin)).status, 200);
      let past;
      for (let i = 0; i < 100 && !((past = (await compliance()).days.find((d) => d.day === old)) && past.checkin_at); i++)
        await sleep(100);
      assert.equal(past.deadline, 'missed', JSON.stringify(past));
      assert.equal(past.visits, 0);
      // Yesterday is not staged before the upload time (23:59:59 here) and its deadline is ahead.
      const c = await compliance();
      assert.equal(c.deadline_h, 24);
      assert.equal(c.yesterday.staged, false);
      assert.equal(c.yesterday.deadline, 'open');
      assert.equal((await srv.api('GET', '/api/v1/feed/compliance?days=0', undefined, admin)).status, 400);
      const list = await srv.api('GET', '/api/v1/feed/profiles', undefined, admin);
      assert.deepEqual(list.json.profiles, ['webhook', 'tianjin']);
      const metrics = await srv.api('GET', '/metrics');
      assert.match(metrics.text, /telemed_upload_delivered_total\{node="[^"]*",profile="tianjin"\} 4/);
      assert.match(metrics.text, /^telemed_upload_deadline_missed\{node="[^"]*",profile="tianjin"\} 0$/m);
      const badDay = await srv.api('POST', '/api/v1/feed/profiles/tianjin/run', { day: '2025-13-01' }, admin);
      assert.equal(badDay.status, 400);
      const none = await srv.api('GET', '/api/v1/feed/profiles/nowhere', undefined, admin);
      assert.equal(none.status, 404);
    } finally {
      await srv.stop();
      await platform.close();
      await reg.close();
    }
  });

test('a consulting doctor: the record carries the attending only, the webhook lists both',
  { timeout: 90000 }, async () => {
    const reg = await startRegulator({});
    const platform = await startPlatform({ appKey: APP_KEY, appSecret: APP_SECRET, organId: ORGAN_ID });
    const srv = await startServer({ args: ['--feed-url', reg.url, '--feed-profiles', 'webhook,tianjin',
      '--tianjin-url', platform.url, '--tianjin-app-key', APP_KEY, '--tianjin-app-secret', APP_SECRET,
      '--tianjin-organ-id', ORGAN_ID, '--tianjin-upload-at', '23:59:59'] });
    try {
      const admin = await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio'], ['d2', 'cardio']] });
      for (const [kind, id, body] of [['doctor', 'd1', { code: '120101198001010011' }],
        ['doctor', 'd2', { code: '120101198202020022' }],
        ['dept', 'cardio', { code: '03.01' }], ['patient', 'p1', { code: '120101199001010022', cert_type: '1' }]]) {
        const r = await srv.api('PUT', `/api/v1/regulator-ids/${kind}/${id}`, body, admin);
        assert.equal(r.status, 200, r.text);
      }
      const d1 = await srv.client('d1', 'doctor');
      await d1.request('doctor.status', { status: 'available' });
      const p = await srv.client('p1', 'patient');
      const ci = await p.request('checkin', { dept: 'cardio', kind: 'follow_up' });
      await d1.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
      await d1.request('visit.accept', { visit_id: ci.visit_id });
      const d2 = await srv.client('d2', 'doctor');
      await d2.request('doctor.status', { status: 'available' });
      const inv = await d1.request('visit.invite', { visit_id: ci.visit_id, user_id: 'd2', role: 'consulting' });
      await d2.waitFor('visit.invited', (m) => m.invite_id === inv.invite_id);
      await d2.request('visit.invite_answer', { invite_id: inv.invite_id, accept: true });
      await d1.request('visit.note', { visit_id: ci.visit_id, text: 'n', diagnosis_code: 'I10', sign: true });
      await d1.request('visit.end', { visit_id: ci.visit_id });
      for (const c of [d1, d2, p]) await c.close();

      const today = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
      const run = await srv.api('POST', '/api/v1/feed/profiles/tianjin/run', { day: today }, admin);
      assert.equal(run.status, 200, run.text);
      await platform.waitFor(() => platform.state.records.has(ci.visit_id), 15000, 'the record');
      const rec = platform.state.records.get(ci.visit_id);
      assert.deepEqual([rec.doctorId, rec.doctorCertID], ['d1', '120101198001010011']);
      const text = JSON.stringify(rec);
      // Not as a value (the visit's uuid may well contain "d2").
      assert.ok(!Object.values(rec).includes('d2') && !text.includes('120101198202020022'), text);
      await reg.waitFor(() => reg.events.some((e) => e.type === 'visit.ended' && e.visit_id === ci.visit_id),
        15000, 'visit.ended');
      const ended = reg.events.find((e) => e.type === 'visit.ended' && e.visit_id === ci.visit_id);
      assert.deepEqual(ended.data.doctors.map((d) => [d.doctor_id, d.role, d.licence_no]),
        [['d1', 'attending', 'LIC-d1'], ['d2', 'consulting', 'LIC-d2']]);
    } finally {
      await srv.stop();
      await platform.close();
      await reg.close();
    }
  });
