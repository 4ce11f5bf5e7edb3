// followup.test.mjs - issue 18's pages in chromium: the doctor sees the
// patient's whole course beside the live visit (earlier visit with its
// diagnosis code and signed note, the follow-up it booked) and books the
// next follow-up from the visit, in zh-CN and English, with no null or raw
// code on screen; the patient sees the follow-up booked in their visit at
// the end of it and on their page after a reload. The other side of each
// visit is a protocol client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, rawWords, setLanguage, holdResponses } from './lib.mjs';

const PHONE = { width: 360, height: 740 };
const CONSENT = { version: '2026.1', recording: true };

// An ended visit of patientId with d1: a signed note and a follow-up booked
// in it; returns the follow-up.
async function history(srv, patientId, note, slot) {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: CONSENT });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await doctor.request('visit.note', { visit_id: ci.visit_id, text: note, diagnosis_code: 'I10', sign: true });
  const { appointment } = await doctor.request('visit.followup', { visit_id: ci.visit_id, slot_at: slot.toISOString() });
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await doctor.request('doctor.status', { status: 'off_duty' });
  await patient.close();
  await doctor.close();
  return appointment;
}

async function assertNoRawWords(page, locale, where) {
  const { bad, text } = await rawWords(page, locale);
  assert.deepEqual(bad, [], `${where} (${locale}) shows ${JSON.stringify(bad)} in:\n${text.slice(0, 1500)}`);
}

for (const locale of ['zh-CN', 'en-US']) {
  test(`the doctor's patient timeline beside the live visit, and a follow-up booked from it (${locale})`, { timeout: 240000 }, async () => {
    const srv = await startHospital();
    const browser = await launch();
    let patient;
    try {
      const slot = new Date(Date.now() + 2 * 86400e3);
      const first = await history(srv, 'p-course', 'BP controlled on amlodipine.', slot);
      const page = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale });
      await doctorOnDuty(page);
      // The patient comes back on the follow-up booked last time.
      patient = await srv.client('p-course', 'patient');
      const ci = await patient.request('checkin', { appointment_id: first.id, consent: CONSENT });
      await page.waitForSelector('#offer:not([hidden])');
      await page.click('#offer-accept');
      await page.waitForFunction((id) => window.tm.state.visitId === id, ci.visit_id);

      await page.waitForSelector('#course:not([hidden]) .course-visit');
      const course = await page.textContent('#course');
      assert.match(course, /I10/);
      assert.match(course, /BP controlled on amlodipine\./);
      assert.match(course, locale === 'zh-CN' ? /患者病程/ : /Patient's course/);
      assert.match(course, locale === 'zh-CN' ? /已签到/ : /checked in/);
      await assertNoRawWords(page, locale, 'doctor timeline');

      // Book the next one from the visit: tomorrow at 10:00, with me.
      await page.waitForSelector('#followup-card:not([hidden])');
      const d = new Date(Date.now() + 86400e3);
      const local = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}T10:00`;
      await page.fill('#fu-slot', local);
      await page.click('#fu-form button[type="submit"]');
      await page.waitForSelector('#fu-done:not([hidden])');
      const told = await patient.waitFor('visit.followup');
      assert.equal(told.visit_id, ci.visit_id);
      assert.equal(Date.parse(told.appointment.slot_at), new Date(local).getTime());
      await page.waitForSelector('#course-upcoming .course-appt');
      assert.match(await page.textContent('#course-upcoming'), locale === 'zh-CN' ? /复诊/ : /Follow-up/);
      // And one within dates (the form suggests two weeks out), with any doctor.
      await page.selectOption('#fu-mode', 'window');
      await page.selectOption('#fu-who', 'any');
      await page.click('#fu-form button[type="submit"]');
      const win = await patient.waitFor('visit.followup', (m) => m.appointment.window_end_at !== null);
      assert.equal(win.appointment.doctor_id, null);
      assert.ok(Date.parse(win.appointment.window_end_at) - Date.parse(win.appointment.slot_at) > 3 * 86400e3);
      await page.waitForFunction(() => document.querySelectorAll('#course-upcoming .course-appt').length === 2);
      assert.match(await page.textContent('#course-upcoming'), locale === 'zh-CN' ? /至/ : /–/);
      await assertNoRawWords(page, locale, 'doctor timeline after booking');
      await shot(page, `doctor-timeline-${locale}`);

      // The other language, on the same screen.
      const other = locale === 'zh-CN' ? 'en-US' : 'zh-CN';
      await setLanguage(page, other);
      await page.waitForFunction((re) => new RegExp(re).test(document.querySelector('#course-h').textContent),
        other === 'zh-CN' ? '患者病程' : "Patient's course");
      await assertNoRawWords(page, other, 'doctor timeline, switched');
      const audit = srv.sql("SELECT count(*) n FROM audit_log WHERE action='patient.timeline' AND target='p-course' AND actor_id='d1' AND outcome='ok'")[0].n;
      assert.ok(audit >= 2, `timeline reads audited: ${audit}`);
      assert.deepEqual(page.errors, []);
    } finally {
      if (patient) await patient.close();
      await browser.close();
      await srv.stop();
    }
  });
}

test('the patient sees the follow-up booked in the visit at its end and on their page after a reload (zh-CN)', { timeout: 240000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  let doctor;
  try {
    doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const page = await openPage(browser, srv, 'patient.html', 'p-next', 'patient', { locale: 'zh-CN', viewport: PHONE });
    await patientCheckin(page);
    const offer = await doctor.waitFor('visit.offer');
    await doctor.request('visit.accept', { visit_id: offer.visit_id });
    await waitView(page, 'visit');
    // The page reads the patient's course when the follow-up is pushed; that
    // read is answered before the visit ends and reaches the page after the
    // end screen shows (as it did in CI), so the end must read it again.
    const courseRead = await holdResponses(page, '**/timeline');
    const slot = new Date(Date.now() + 14 * 86400e3);
    await doctor.request('visit.note', { visit_id: offer.visit_id, text: 'Review in two weeks.', diagnosis_code: 'I10', sign: true });
    await doctor.request('visit.followup', { visit_id: offer.visit_id, slot_at: slot.toISOString() });
    await courseRead.answered;
    await doctor.request('visit.end', { visit_id: offer.visit_id, reason: 'completed' });
    await waitView(page, 'ended');
    courseRead.release();
    await page.waitForFunction(() => {
      const c = document.querySelector('#my-course');
      return c && !c.hidden && /Dept cardio/.test(c.textContent) && /Review in two weeks/.test(c.textContent);
    });
    const card = await page.textContent('#my-course');
    assert.match(card, /复诊/);
    assert.match(card, /Dept cardio/);
    assert.match(card, /Review in two weeks\./);
    await assertNoRawWords(page, 'zh-CN', 'patient end screen');
    await shot(page, 'patient-followup-zh');

    await page.reload();
    await waitView(page, 'ended', 30000);
    await page.waitForSelector('#my-course:not([hidden]) #my-upcoming .course-appt');
    assert.match(await page.textContent('#my-upcoming'), /复诊/);
    await setLanguage(page, 'en-US');
    await page.waitForFunction(() => /My appointments and visits/.test(document.querySelector('#my-h').textContent));
    assert.match(await page.textContent('#my-upcoming'), /Follow-up/);
    await assertNoRawWords(page, 'en-US', 'patient end screen, English');
    assert.deepEqual(page.errors, []);
  } finally {
    if (doctor) await doctor.close();
    await browser.close();
    await srv.stop();
  }
});
