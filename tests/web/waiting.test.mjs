// waiting.test.mjs - the waiting room in chromium: two patients check in,
// the second sees position 2, then 1 when a doctor takes the first; the
// estimate follows the doctors on duty; leaving the queue goes back to
// check-in. Saves a screenshot of the waiting room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin, confirm } from './lib.mjs';

test('waiting room: position 2, then 1 when the first patient is taken', { timeout: 180000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  let doctor;
  try {
    const first = await openPage(browser, srv, 'patient.html', 'p-first', 'patient');
    const second = await openPage(browser, srv, 'patient.html', 'p-second', 'patient', { viewport: { width: 390, height: 844 } });
    await patientCheckin(first);
    await patientCheckin(second);
    await first.waitForFunction(() => document.querySelector('#wait-position').textContent === '1');
    await second.waitForFunction(() => document.querySelector('#wait-position').textContent === '2');
    // No doctor on duty yet: no estimate, and the page says why.
    assert.match(await second.textContent('#wait-estimate'), /No doctor/);
    await shot(second, 'waiting-room');

    doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const offer = await doctor.waitFor('visit.offer');
    const firstVisit = await first.evaluate(() => window.tm.state.visitId);
    assert.equal(offer.visit_id, firstVisit, 'the first patient is offered first');
    await first.waitForSelector('#wait-offered:not([hidden])');
    await doctor.request('visit.accept', { visit_id: offer.visit_id });

    await second.waitForFunction(() => document.querySelector('#wait-position').textContent === '1');
    assert.match(await second.textContent('#wait-estimate'), /min/);
    assert.match(await second.textContent('#wait-doctors'), /Doctors on duty: 1/);
    await waitView(first, 'visit');
    await shot(second, 'waiting-room-position-1');

    // Leaving the queue takes the patient back to check-in.
    await second.click('#wait-leave');
    await confirm(second);
    await waitView(second, 'checkin');
    const rows = srv.sql("SELECT state, end_reason FROM visits WHERE patient_id = 'p-second'");
    assert.deepEqual(rows, [{ state: 'cancelled', end_reason: 'patient_left' }]);
    assert.deepEqual(first.errors, []);
    assert.deepEqual(second.errors, []);
  } finally {
    if (doctor) await doctor.close();
    await browser.close();
    await srv.stop();
  }
});
