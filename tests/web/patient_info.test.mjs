// patient_info.test.mjs - what the patient page learns from the server, in
// chromium: when the department's doctors start again while no shift runs
// (both languages), the chat so far on a page opened afresh mid-visit (a new
// browser context: nothing kept in the tab), and the doctor's signed note on
// the end screen, also after a reload. The doctor is a protocol client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin } from './lib.mjs';

test('no shift now: the waiting room says when doctors start again, in zh-CN and English', { timeout: 120000 }, async () => {
  const srv = await startHospital({ depts: ['cardio', 'night'] });
  const browser = await launch();
  try {
    const r = await srv.api('POST', '/api/v1/doctors', { id: 'd3', name: 'Dr d3', dept_id: 'night', licence_no: 'LIC-d3' }, srv.admin);
    assert.equal(r.status, 201, r.text);
    const start = new Date(Date.now() + 3 * 3600e3);
    const s = await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd3', dept_id: 'night',
      start: start.toISOString(), end: new Date(start.getTime() + 4 * 3600e3).toISOString() }, srv.admin);
    assert.equal(s.status, 201, s.text);
    const page = await openPage(browser, srv, 'patient.html', 'p-night', 'patient', { locale: 'zh-CN', viewport: { width: 360, height: 740 } });
    await patientCheckin(page, { dept: 'night' });
    await page.waitForSelector('#wait-hours:not([hidden])');
    // The page's clock is this machine's; English may write it on 12 hours.
    const mm = String(start.getMinutes()).padStart(2, '0');
    const clock = new RegExp(`(${String(start.getHours()).padStart(2, '0')}|\\b0?${start.getHours() % 12 || 12}):${mm}`);
    const zh = await page.textContent('#wait-hours');
    assert.match(zh, /本科室医生将于 .* 开始接诊/);
    assert.match(zh, clock);
    assert.equal(await page.isVisible('#wait-nodoc'), true);
    await shot(page, 'patient-waiting-hours-zh');
    await page.click('#lang-switch');
    const en = await page.textContent('#wait-hours');
    assert.match(en, /Doctors of this department start again at /);
    assert.match(en, clock);
    assert.deepEqual(page.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('a page opened afresh mid-visit shows the chat so far; the signed note is on the end screen', { timeout: 180000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  let doctor;
  try {
    doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const first = await openPage(browser, srv, 'patient.html', 'p-info', 'patient', { viewport: { width: 360, height: 740 } });
    await patientCheckin(first);
    const offer = await doctor.waitFor('visit.offer');
    await doctor.request('visit.accept', { visit_id: offer.visit_id });
    await waitView(first, 'visit');
    await doctor.request('chat.send', { visit_id: offer.visit_id, text: 'Any fever since Monday?' });
    await first.waitForSelector('.chat-list li:has-text("Any fever since Monday?")');
    await first.context().close();

    // Another browser (no session storage of the first): the server's history.
    const again = await openPage(browser, srv, 'patient.html', 'p-info', 'patient', { locale: 'zh-CN', viewport: { width: 360, height: 740 } });
    await waitView(again, 'visit', 30000);
    await again.waitForSelector('.chat-list li:has-text("Any fever since Monday?")');
    assert.equal(await again.isVisible('.chat-empty'), false);

    const text = 'Tension headache. Rest, fluids, review in two weeks.';
    await doctor.request('visit.note', { visit_id: offer.visit_id, text, diagnosis_code: 'G44.2', sign: true });
    await doctor.request('visit.end', { visit_id: offer.visit_id });
    await waitView(again, 'ended');
    await again.waitForSelector('#end-note:not([hidden])');
    assert.match(await again.textContent('#end-note'), /Tension headache/);
    assert.match(await again.textContent('#end-note'), /诊断（ICD-10）：G44\.2/);
    assert.match(await again.textContent('#end-note-h'), /医生的诊疗记录/);
    await shot(again, 'patient-ended-note-zh');

    // A reload lands on the end screen to rate: the note is asked for again.
    await again.reload();
    await waitView(again, 'ended', 30000);
    await again.waitForSelector('#end-note:not([hidden])');
    assert.match(await again.textContent('#end-note'), /Tension headache/);
    assert.deepEqual(again.errors, []);
  } finally {
    if (doctor) await doctor.close();
    await browser.close();
    await srv.stop();
  }
});
