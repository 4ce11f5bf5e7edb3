// media_retry.test.mjs - a media.offer the server refuses (docs/protocol.md
// "media.offer"), in headless chromium against a real telemed-server: the
// page's own MediaPeer (peer.js) offers for the patient's visit while it is
// only offered to the doctor, so the server refuses it for real
// (reason not_active, logged as ev=media.offer_refused); the peer says it
// retries and sends the offer again with backoff, and once the doctor has
// accepted, a retry is answered and media connects. An offer the server can
// never take (an SDP it refuses) is final: its reason says so and the page
// has words for it in both languages. The test's peer retries every
// 300 ms for as long as the test needs (offerRetryMs): the doctor accepts
// after a count of refusals, whatever the machine's load, where the
// product's 23.5 s of retries could run out first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, patientCheckin, doctorOnDuty, waitView } from './lib.mjs';
import { waitUntil } from '../integration/lib/server.mjs';

test('a refused media.offer is retried while the refusal passes, and a final one is said', { timeout: 180000 }, async (t) => {
  const srv = await startHospital();
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await srv.stop();
  });
  const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
  const patient = await openPage(browser, srv, 'patient.html', 'p-retry', 'patient');
  let visitId;

  await t.test('an offer before the visit is active is refused, logged and retried', async () => {
    await doctorOnDuty(doctor);
    await patientCheckin(patient);
    await doctor.waitForSelector('#offer:not([hidden])');
    visitId = await patient.evaluate(() => window.tm.state.visitId);
    // The page's own peer, offering for the offered (not yet active) visit.
    await patient.evaluate(async (id) => {
      const { MediaPeer } = await import('/js/peer.js');
      window.early = { states: [], peer: null };
      const offerRetryMs = Array.from({ length: 2000 }, () => 300); // 10 min: the test's cap ends first
      const peer = new MediaPeer({ sig: window.tm.sig, visitId: id, iceServers: [], recv: { audio: 1, video: 1 }, offerRetryMs });
      window.early.peer = peer;
      peer.addEventListener('state', (e) => window.early.states.push(`${e.detail.state}:${e.detail.reason || ''}`));
      peer.start().catch((e) => window.early.states.push(`threw:${e.reason || e.code}`));
    }, visitId);
    await patient.waitForFunction(() => window.early.states.includes('retrying:not_active'));
    await waitUntil('the refusal is logged', () => new RegExp(`ev=media.offer_refused visit=${visitId} peer=patient:p-retry reason=not_active`).test(srv.logs), 60000);
    // Refused again while the doctor has not accepted: still retrying.
    await waitUntil('a third refusal', () => (srv.logs.match(new RegExp(`ev=media.offer_refused visit=${visitId} `, 'g')) || []).length >= 3, 60000);
    assert.equal(await patient.evaluate(() => window.early.peer.state), 'retrying');
  });

  await t.test('once the doctor accepts, the next try is answered and media connects', async () => {
    await doctor.click('#offer-accept');
    await waitView(patient, 'visit');
    await patient.waitForFunction(() => window.early.states.includes('connected:'), null, { timeout: 60000 });
    const states = await patient.evaluate(() => window.early.states);
    assert.ok(!states.some((s) => s.startsWith('unavailable') || s.startsWith('threw')), states.join(' '));
    await patient.evaluate(() => window.early.peer.close());
  });

  await t.test('an SDP the server refuses is final, and the page can say why in both languages', async () => {
    const r = await patient.evaluate(async (id) => {
      try {
        await window.tm.sig.request('media.offer', { visit_id: id, sdp: 'not an sdp' });
        return { ok: true };
      } catch (e) {
        const { mediaRefusalText } = await import('/js/peer.js');
        const { t } = await import('/js/i18n.js');
        return { code: e.code, reason: e.reason, key: mediaRefusalText(e.reason), text: t(mediaRefusalText(e.reason)) };
      }
    }, visitId);
    assert.equal(r.code, 'bad_request');
    assert.equal(r.reason, 'sdp_refused');
    assert.equal(r.key, 'visit.media_refused_sdp');
    assert.match(r.text, /browser|浏览器/);
    await waitUntil('the final refusal is logged', () => new RegExp(`ev=media.offer_refused visit=${visitId} peer=patient:p-retry reason=sdp_refused`).test(srv.logs), 10000);
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  });
});
