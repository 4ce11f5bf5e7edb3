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
    assert.equal(await second.textContent('#wait-estimate'), 'Not known yet');
    assert.equal(await second.isVisible('#wait-nodoc'), true);
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

test('check-in with a booked appointment; urgent is shown to the doctor', { timeout: 120000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const slot = new Date(Date.now() - 60e3).toISOString();
    const r = await srv.api('POST', '/api/v1/appointments', { patient_id: 'p-appt', dept_id: 'cardio', slot, kind: 'follow_up' }, srv.admin);
    assert.equal(r.status, 201, r.text);
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor');
    await waitView(doctor, 'ws');
    const page = await openPage(browser, srv, 'patient.html', 'p-appt', 'patient');
    await waitView(page, 'device');
    await page.waitForSelector('#dev-continue:not([disabled])');
    await page.click('#dev-continue');
    await waitView(page, 'checkin');
    await page.click('label.choice:has(input[value="appointment"])');
    await page.waitForSelector(`#ci-appt option[value="${r.json.id}"]`, { state: 'attached' });
    await page.check('#ci-urgent');
    await page.check('#ci-consent');
    await page.click('#ci-form button[type="submit"]');
    await waitView(page, 'waiting');
    assert.match(await page.textContent('#wait-dept'), /urgent/);
    // The doctor's queue shows the appointment and the urgent flag.
    await doctor.waitForSelector('#queue-body tr', { timeout: 30000 });
    const row = await doctor.textContent('#queue-body tr');
    assert.match(row, /Appointment/);
    assert.match(row, /Urgent/);
    await doctor.click('#status-group label:has(input[value="available"])');
    await doctor.waitForSelector('#offer:not([hidden])');
    assert.match(await doctor.textContent('#offer-tags'), /Appointment.*Urgent/);
    await shot(doctor, 'doctor-offer');
    await doctor.click('#offer-decline');
    await doctor.waitForSelector('#offer', { state: 'hidden' });
    // Declined: the patient keeps the head of the queue.
    await page.waitForFunction(() => document.querySelector('#wait-position').textContent === '1');
    const rows = srv.sql(`SELECT appointment_id, urgent FROM visits WHERE patient_id = 'p-appt'`);
    assert.equal(rows[0].appointment_id, r.json.id);
    assert.equal(rows[0].urgent, 1);
    assert.deepEqual(page.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
