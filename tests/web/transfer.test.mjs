// transfer.test.mjs - transfer and referral through the web client (issue
// 18), in real Chromiums with fake cameras against a real server: the
// attending doctor hands the patient to a named colleague of another
// department from the visit's card; the patient's page says so while they
// wait, on the same connection, and shows the next doctor's video when
// they accept; the first doctor signs the note of their part. Then the
// second doctor refers the patient back to cardiology from the wrap-up,
// and the first doctor's page receives the referral and declines it; the
// words on every page in zh-CN and English carry no raw codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '../integration/lib/server.mjs';
import {
  startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, remoteVideo,
  rawWords, setLanguage,
} from './lib.mjs';

const PHONE = { width: 412, height: 860 };
const DESK = { width: 1280, height: 800 };

// The hellos a page sends: one per WebSocket connection it opens.
function countHellos(page) {
  const seen = { hellos: 0 };
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    try { if (JSON.parse(f.payload).type === 'hello') seen.hellos++; } catch { /* not JSON */ }
  }));
  return seen;
}

// The other side's video keeps decoding (waited for with a cap).
async function videoFlows(page, who) {
  const a = await remoteVideo(page);
  let b = a;
  for (const end = Date.now() + 60000; Date.now() < end && !(b.width > 0 && b.frames > a.frames + 10); ) {
    await page.waitForTimeout(250);
    b = await remoteVideo(page);
  }
  assert.ok(b.width > 0 && b.frames > a.frames + 10, `${who}: remote video does not flow: ${JSON.stringify([a, b])}`);
}

async function noRawWords(page, who) {
  // A toast keeps the language it was shown in: let it go first.
  await page.waitForFunction(() => !document.querySelector('#toasts').children.length, null, { timeout: 30000 });
  // The screen reader's live region is cleared by the switch, like the toasts.
  for (const locale of ['zh-CN', 'en-US']) {
    await setLanguage(page, locale);
    const { bad, text } = await rawWords(page, locale);
    assert.deepEqual(bad, [], `${who} (${locale}) shows raw words ${JSON.stringify(bad)} in:\n${text.slice(0, 5000)}`);
  }
  await setLanguage(page, 'en-US');
}

test('a transfer to a named doctor and a referral across the pages', { timeout: 420000 }, async (t) => {
  // Neurology is in a higher-level member (3A) than the core (2A): d2 refers down to cardiology.
  const srv = await startHospital({ depts: ['cardio', 'neuro'], doctors: [['d1', 'cardio'], ['d2', 'neuro']],
    args: ['--hospital-level', '2A', '--institutions', 'top|Top Hospital|ORG-TOP|3A|hospital'] });
  const moved = await srv.api('POST', '/api/v1/departments', { id: 'neuro', name: 'Dept neuro', institution_id: 'top' }, srv.admin);
  assert.equal(moved.status, 201, moved.text);
  const browser = await launch();
  let patient, d1, d2, visitId, hellos;
  try {
    d1 = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { viewport: DESK });
    d2 = await openPage(browser, srv, 'doctor.html', 'd2', 'doctor', { viewport: DESK });
    patient = await openPage(browser, srv, 'patient.html', 'p-tr', 'patient', { viewport: PHONE, extra: { name: '王芳 Wang Fang' } });
    hellos = countHellos(patient);

    await t.test('a 1:1 visit with d1', async () => {
      await doctorOnDuty(d1);
      await doctorOnDuty(d2);
      await patientCheckin(patient);
      visitId = await patient.evaluate(() => window.tm.state.visitId);
      await d1.waitForSelector('#offer:not([hidden])');
      assert.equal(await d1.isHidden('#offer-transfer'), true);
      await d1.click('#offer-accept');
      await waitView(patient, 'visit');
      await videoFlows(patient, 'patient with d1');
      await d1.waitForSelector('#handoff:not([hidden])');
      await d1.fill('#note-text', 'Part 1: chest pain at rest, neurological signs.');
    });

    await t.test('d1 hands the patient to d2 by name; the patient waits on the same connection', async () => {
      await d1.click('#tr-box summary');
      await d1.selectOption('#tr-kind', 'doctor');
      await d1.waitForSelector('#tr-doctor option[value="d2"]', { state: 'attached' });
      assert.match(await d1.textContent('#tr-doctor option[value="d2"]'), /Dr d2 · Dept neuro · Available/);
      // A transfer needs a reason: refused on the page, nothing sent.
      await d1.click('#tr-submit');
      assert.match(await d1.textContent('#tr-msg'), /Please give a reason/);
      await d1.selectOption('#tr-doctor', 'd2');
      await d1.fill('#tr-reason', 'Neurological signs: needs a neurologist now');
      await shot(d1, 'transfer-form-en');
      await d1.click('#tr-submit');
      await d1.waitForSelector('#wrap-card:not([hidden])');
      assert.match(await d1.textContent('#wrap-text'), /You handed the patient on/);
      await d1.waitForSelector('#tr-box', { state: 'hidden' }); // the visit is no longer theirs to transfer

      await waitView(patient, 'waiting');
      await patient.waitForSelector('#wait-transfer:not([hidden])');
      assert.match(await patient.textContent('#wait-transfer'), /transferred you to Dr d2 \(Dept neuro\)/);
      assert.doesNotMatch(await patient.textContent('[data-view="waiting"]'), /Neurological signs/); // the reason is the doctors'
      await shot(patient, 'transfer-patient-waiting-en');
      await noRawWords(patient, 'patient waiting after a transfer');
      await setLanguage(patient, 'zh-CN');
      assert.match(await patient.textContent('#wait-transfer'), /医生已将您转给/);
      await shot(patient, 'transfer-patient-waiting-zh');
      await setLanguage(patient, 'en-US');

      // d1 signs the note of their part after handing on.
      await d1.click('#note-sign');
      await d1.click('dialog.confirm .confirm-ok');
      await d1.waitForFunction(() => /signed/i.test(document.querySelector('#note-status').textContent));
      assert.equal(srv.sql(`SELECT doctor_id, signed FROM notes WHERE visit_id = '${visitId}'`)[0].signed, 1);
    });

    await t.test('d2 sees who handed the patient on and why, accepts, and the patient sees them', async () => {
      await d2.waitForSelector('#offer:not([hidden])');
      assert.match(await d2.textContent('#offer-transfer'), /Handed on by d1: Neurological signs: needs a neurologist now/);
      await shot(d2, 'transfer-offer-en');
      await d2.click('#offer-accept');
      await d2.waitForSelector('#visit:not([hidden])');
      await waitView(patient, 'visit');
      await patient.waitForFunction(() => /Dr d2/.test(document.querySelector('#visit-with').textContent));
      await videoFlows(patient, 'patient with d2');
      await videoFlows(d2, 'd2');
      assert.equal(hellos.hellos, 1, 'the patient page stayed on its first connection');
      await noRawWords(patient, 'patient with the second doctor');
    });

    await t.test('d2 refers the patient back to cardiology; d1 receives the referral and declines it', async () => {
      await d2.selectOption('#end-reason', 'completed');
      await d2.click('#end-btn');
      await d2.click('dialog.confirm .confirm-ok');
      await d2.waitForSelector('#wrap-card:not([hidden])');
      await d2.click('#rf-box summary');
      await d2.selectOption('#rf-direction', 'up');
      // Each receiving department names its institution and level.
      assert.match(await d2.textContent('#rf-dept option[value="cardio"]'), /^Dept cardio · .+ \(2A\)$/);
      assert.equal(await d2.textContent('#rf-dept option[value="neuro"]'), 'Dept neuro · Top Hospital (3A)');
      await d2.selectOption('#rf-dept', 'cardio');
      await d2.fill('#rf-reason', 'Blood pressure follow-up');
      await d2.fill('#rf-summary', 'No stroke. BP 150/95 on two readings.');
      // Up to a lower-level institution: refused, in the doctor's words and language.
      await d2.click('#rf-submit');
      await d2.waitForFunction(() => /A referral up goes to a higher-level institution/.test(document.querySelector('#rf-msg').textContent));
      await setLanguage(d2, 'zh-CN');
      await d2.click('#rf-submit');
      await d2.waitForFunction(() => /上转只能转往级别更高的医疗机构/.test(document.querySelector('#rf-msg').textContent));
      await setLanguage(d2, 'en-US');
      assert.equal(srv.sql('SELECT count(*) AS n FROM referrals')[0].n, 0);
      await d2.selectOption('#rf-direction', 'down');
      await d2.click('#rf-submit');
      await d2.waitForFunction(() => /Referral sent to Dept cardio/.test(document.querySelector('#rf-msg').textContent));

      await d1.waitForSelector('#rf-inbox:not([hidden]) #rf-list li');
      assert.match(await d1.textContent('#rf-list li'), /Down: back to community care · Blood pressure follow-up/);
      assert.match(await d1.textContent('#rf-list li'), /BP 150\/95/);
      // The inbox in both languages (the note's status line above keeps the
      // language it was written in: doctor.js's, left alone here).
      await setLanguage(d1, 'zh-CN');
      assert.match(await d1.textContent('#rf-inbox'), /转入本科室的转诊.*下转：转回基层医疗 · Blood pressure follow-up.*接收.*拒绝/s);
      await setLanguage(d1, 'en-US');
      assert.match(await d1.textContent('#rf-inbox'), /Referrals to my department.*Accept.*Decline/s);
      await shot(d1, 'referral-inbox-en');
      await d1.click('#rf-list li button:has-text("Decline")'); // no reason yet: refused on the page
      assert.equal(await d1.isVisible('#rf-list li'), true);
      await d1.fill('#rf-list li input', 'Seen in the community clinic instead');
      await d1.click('#rf-list li button:has-text("Decline")');
      await d1.waitForSelector('#rf-inbox', { state: 'hidden' });
      await d2.waitForFunction(() => /Your referral was declined: Seen in the community clinic instead/.test(document.body.innerText));
      const rows = srv.sql(`SELECT state, decline_reason FROM referrals WHERE visit_id = '${visitId}'`);
      assert.deepEqual(rows, [{ state: 'declined', decline_reason: 'Seen in the community clinic instead' }]);
      await noRawWords(d2, 'd2 after the answer');
    });

    await t.test('the supervisor reads one record with both doctors and the transfer', async () => {
      const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { viewport: DESK });
      await waitView(sup, 'sup');
      await sup.click('#tab-records');
      await sup.waitForSelector(`#results-body tr[data-visit="${visitId}"]`);
      await sup.click(`#results-body tr[data-visit="${visitId}"] button`);
      await sup.waitForSelector('#detail:not([hidden])');
      const tl = await sup.textContent('#d-timeline');
      assert.match(tl, /Accepted by Dr d1.*Dr d1 handed the patient on to Dr d2: Neurological signs: needs a neurologist now.*Accepted by Dr d2/s);
      assert.match(tl, /handed on to another doctor/);
      await noRawWords(sup, 'supervisor record of a transferred visit');
      await shot(sup, 'transfer-record-en');
      await sup.context().close();
    });

    const parts = (await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, srv.admin)).json.parts;
    assert.deepEqual(parts.map((p) => p.doctor_id), ['d1', 'd2']);
    // One recording through the transfer: the part with d1 is finished when
    // d2's streams arrive, the next part holds them.
    const recs = await waitUntil('both recording parts finished', () => {
      const r = srv.sql(`SELECT part, state FROM recordings WHERE visit_id = '${visitId}' ORDER BY part`);
      return r.length >= 2 && r.every((x) => x.state !== 'recording') && r;
    }, 60000);
    assert.deepEqual(recs.map((x) => `${x.part}:${x.state}`), ['1:complete', '2:complete']);
    for (const p of [patient, d1, d2]) assert.deepEqual(p.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
