// visit.test.mjs - a whole visit through the web client in chromium: the
// patient page checks in, the doctor page goes on duty and accepts, both
// play the other side's video, chat goes both ways, a supervisor sees the
// live visit and watches it, the doctor writes a note and ends the visit,
// the patient rates it, and the visit record in the REST API shows it all.
// Screenshots of both sides and the supervisor dashboard are saved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, confirm, remoteVideo } from './lib.mjs';

// Video plays: a decoded picture, and frames keep coming (waited for, with
// a cap for a stalled stream; a loaded machine decodes fewer per second).
async function assertVideoPlays(page, who) {
  try {
    await page.waitForFunction(() => window.tm.call && window.tm.call.remote.videoWidth > 0, null, { timeout: 60000 });
  } catch {
    const s = await remoteVideo(page);
    assert.fail(`${who}: no remote video (peer state ${s.state}, media ${await page.evaluate(() => document.body.dataset.media)})`);
  }
  const a = await remoteVideo(page);
  let b = await remoteVideo(page);
  for (const end = Date.now() + 30000; b.frames <= a.frames && Date.now() < end; b = await remoteVideo(page))
    await page.waitForTimeout(250);
  assert.ok(b.width > 0, `${who}: videoWidth ${b.width}`);
  assert.ok(b.frames > a.frames, `${who}: framesDecoded ${a.frames} -> ${b.frames}`);
}

test('full visit across the patient, doctor and supervisor pages', { timeout: 240000 }, async (t) => {
  const srv = await startHospital();
  const browser = await launch();
  let patient, doctor, sup, visitId;
  try {
    doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
    patient = await openPage(browser, srv, 'patient.html', 'p-web-1', 'patient', { viewport: { width: 412, height: 860 } });

    await t.test('patient checks in, doctor goes on duty and accepts', async () => {
      await doctorOnDuty(doctor);
      await patientCheckin(patient);
      visitId = await patient.evaluate(() => window.tm.state.visitId);
      assert.match(visitId, /\S/);
      await doctor.waitForSelector('#offer:not([hidden])');
      const desc = await doctor.textContent('#offer-desc');
      assert.match(desc, /name-of-p-web-1/);
      assert.match(await doctor.textContent('#offer-countdown'), /\d+ s/);
      await doctor.click('#offer-accept');
      await waitView(patient, 'visit');
      await doctor.waitForSelector('#visit:not([hidden])');
      assert.equal(await doctor.evaluate(() => window.tm.state.visitId), visitId);
    });

    await t.test('both pages play the other side\'s video (needs the media core)', async () => {
      await assertVideoPlays(patient, 'patient');
      await assertVideoPlays(doctor, 'doctor');
      await patient.waitForFunction(() => document.querySelector('.quality').dataset.level !== 'unknown', null, { timeout: 30000 });
    });

    await t.test('chat both ways', async () => {
      await patient.fill('#chat-input-patient', 'I have had the headache for three days');
      await patient.click('#visit-mount .chat-form button');
      await doctor.waitForSelector('.chat-list li:has-text("three days")');
      await doctor.fill('#chat-input-doctor', 'Please keep taking the tablets');
      await doctor.press('#chat-input-doctor', 'Enter');
      await patient.waitForSelector('.chat-list li.theirs:has-text("keep taking")');
      await doctor.waitForSelector('.chat-list li.mine:has-text("keep taking")');
    });

    await t.test('supervisor sees the live visit and its figures, and watches it', async () => {
      sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor');
      await waitView(sup, 'sup');
      await sup.waitForSelector(`#live-body tr[data-visit="${visitId}"][data-state="active"]`);
      await sup.waitForFunction(() => document.querySelector('.tile[data-dept="cardio"] dd[data-k="in_visit"]')?.textContent === '1');
      assert.equal(await sup.textContent('.tile[data-dept="cardio"] dd[data-k="doctors_on_duty"]'), '1');
      // Keyboard focus survives the once-a-second refresh of the table.
      await sup.focus(`#live-body button[data-visit="${visitId}"]`);
      await sup.waitForTimeout(2200);
      assert.equal(await sup.evaluate(() => document.activeElement.dataset.visit), visitId);
      await sup.keyboard.press('Enter');
      await sup.waitForSelector('#watch:not([hidden])');
      // The participants are told (the regulations ask for it).
      await patient.waitForSelector('.call .notice-info:not([hidden])');
      await doctor.waitForSelector('.call .notice-info:not([hidden])');
      // The supervisor reads the chat from now on.
      await patient.fill('#chat-input-patient', 'Is my blood pressure fine?');
      await patient.press('#chat-input-patient', 'Enter');
      await sup.waitForSelector('#watch-chat li:has-text("blood pressure")');
      await shot(sup, 'supervisor-dashboard');
    });

    await t.test('supervisor watch shows both videos (needs media core and watch)', async () => {
      try {
        await sup.waitForFunction(() => {
          const v = [...document.querySelectorAll('#watch-grid video')];
          return v.length >= 2 && v.every((x) => x.videoWidth > 0);
        }, null, { timeout: 25000 });
      } finally {
        await shot(sup, 'supervisor-watching');
      }
      await sup.waitForFunction(() => document.querySelector(`#live-body tr[data-state="active"] .q-cell`), null, { timeout: 30000 });
    });

    await t.test('the supervisor page watches again after its connection drops', async () => {
      const gen = await sup.evaluate(() => window.tm.state.peerGen);
      await sup.evaluate(() => window.tm.sig.drop());
      await sup.waitForFunction((g) => document.body.dataset.conn === 'open' && window.tm.state.peerGen > g, gen, { timeout: 30000 });
      await sup.waitForFunction(() => {
        const v = [...document.querySelectorAll('#watch-grid video')];
        return v.length >= 2 && v.every((x) => x.videoWidth > 0);
      }, null, { timeout: 25000 });
    });

    await shot(patient, 'visit-patient');
    await shot(doctor, 'visit-doctor');

    await t.test('doctor writes a note and ends the visit; the patient rates it', async () => {
      await doctor.fill('#note-text', 'Tension headache, follow-up in two weeks.');
      await doctor.fill('#note-code', 'G44.2');
      await doctor.click('#note-save');
      await doctor.waitForFunction(() => /Draft saved/.test(document.querySelector('#note-status').textContent));
      await doctor.selectOption('#end-reason', 'completed');
      await doctor.click('#end-btn');
      await confirm(doctor);
      await doctor.waitForSelector('#wrap-card:not([hidden])');
      await waitView(patient, 'ended');
      assert.match(await patient.textContent('#end-reason'), /completed/);
      await doctor.click('#note-sign');
      await confirm(doctor);
      await doctor.waitForFunction(() => /signed/.test(document.querySelector('#note-status').textContent));
      await patient.click('.stars label:has(input[value="5"])');
      await patient.fill('#rate-comment', 'Very clear, thank you');
      await patient.click('#rate-form button[type="submit"]');
      await patient.waitForSelector('#rate-thanks:not([hidden])');
      // The supervisor's watch ends with the visit.
      await sup.waitForSelector('#watch', { state: 'hidden' });
    });

    await t.test('the visit record in the API shows all of it', async () => {
      const r = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, srv.admin);
      assert.equal(r.status, 200, r.text);
      const rec = r.json;
      assert.equal(rec.state, 'ended');
      assert.equal(rec.end_reason, 'completed');
      assert.equal(rec.doctor_id, 'd1');
      assert.equal(rec.recording_consent, true);
      assert.equal(rec.patient_id, 'p-web-1');
      assert.deepEqual(rec.chat.map((c) => c.sender_role), ['patient', 'doctor', 'patient']);
      assert.equal(rec.notes.length, 1);
      assert.equal(rec.notes[0].diagnosis_code, 'G44.2');
      assert.ok(rec.notes[0].signed);
      assert.equal(rec.rating.score, 5);
      assert.equal(rec.rating.comment, 'Very clear, thank you');
      assert.ok(rec.participants.some((p) => p.role === 'doctor'));
      assert.ok(rec.participants.some((p) => p.role === 'patient'));
    });

    await t.test('doctor takes the next patient in one click; figures count the visit', async () => {
      await doctor.click('#next-btn');
      await doctor.waitForFunction(() => window.tm.state.status === 'available');
      await doctor.waitForFunction(() => document.querySelector('#fig-visits').textContent === '1');
      await doctor.waitForFunction(() => document.querySelector('#fig-rating').textContent === '5.0');
      assert.equal(await doctor.isHidden('#visit'), true);
    });

    await t.test('visit records search and detail page on the supervisor page', async () => {
      await sup.click('#tab-records');
      await sup.waitForSelector(`#results-body tr[data-visit="${visitId}"]`);
      // Dates are local days: today finds it, tomorrow does not.
      const day = (off) => { const d = new Date(Date.now() + off * 86400e3); return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`; };
      await sup.fill('#f-from', day(1));
      await sup.click('#search-form button[type="submit"]');
      await sup.waitForFunction(() => /No visits/.test(document.querySelector('#results-count').textContent));
      await sup.fill('#f-from', day(0));
      await sup.fill('#f-to', day(0));
      await sup.selectOption('#f-dept', 'cardio');
      await sup.selectOption('#f-doctor', 'd1');
      await sup.selectOption('#f-state', 'ended');
      await sup.click('#search-form button[type="submit"]');
      await sup.waitForSelector(`#results-body tr[data-visit="${visitId}"]`);
      await sup.click(`#results-body tr[data-visit="${visitId}"] button`);
      await sup.waitForSelector('#detail:not([hidden])');
      const tl = await sup.textContent('#d-timeline');
      assert.match(tl, /checked in/);
      assert.match(tl, /Accepted by Dr d1/);
      assert.match(tl, /Ended: completed/);
      assert.match(await sup.textContent('#d-notes'), /Tension headache/);
      assert.match(await sup.textContent('#d-chat'), /three days/);
      assert.match(await sup.textContent('#d-rating'), /5\/5/);
      await sup.waitForFunction(() => !/Loading/.test(document.querySelector('#d-recording').textContent));
      await shot(sup, 'supervisor-visit-detail');
    });

    for (const p of [patient, doctor, sup]) if (p) assert.deepEqual(p.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
