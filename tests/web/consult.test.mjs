// consult.test.mjs - consultation requests (issue 18) on the doctor's page,
// in a real Chromium against a real server: the attending doctor requests a
// consultation from the live visit with the page's form; the receiving
// department's doctor sees it in the incoming list (zh-CN, in words), is
// refused a decline without a reason, proposes another time; the requester
// sees the proposal in their list (English) and accepts it; the list then
// says it is scheduled, with the specialist named. At the time the patient
// checks in with its appointment, the requester accepts the visit, the
// specialist's page is called to join and signs the opinion there. At most
// three browser contexts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, doctorOnDuty, rawWords, setLanguage } from './lib.mjs';

const DESK = { width: 1280, height: 900 };

test('request from a live visit, the incoming list decides, the requester accepts the proposal', { timeout: 300000 }, async () => {
  const srv = await startHospital({ depts: ['gp', 'cardio'], doctors: [['dreq', 'gp'], ['dspec', 'cardio'], ['dduty', 'cardio']] });
  const browser = await launch();
  try {
    // A live visit: the patient over the protocol, the requester on the page.
    const req = await openPage(browser, srv, 'doctor.html', 'dreq', 'doctor', { viewport: DESK });
    await setLanguage(req, 'en-US');
    await doctorOnDuty(req);
    const patient = await srv.client('p-web-cons', 'patient');
    const ci = await patient.request('checkin', { dept: 'gp', consent: { version: '2026.1', recording: true } });
    await req.waitForSelector('#offer:not([hidden])');
    await req.click('#offer-accept');
    await req.waitForFunction((v) => window.tm.state.visitId === v && window.tm.state.myRole === 'attending', ci.visit_id);

    // The request form, from the visit: the department, the words, the window.
    await req.waitForSelector('#consult-new:not([hidden])');
    await req.click('#consult-new');
    await req.waitForFunction(() => !!document.querySelector('#cs-dept option[value="cardio"]'));
    await req.selectOption('#cs-dept', 'cardio');
    await req.waitForFunction(() => !!document.querySelector('#cs-spec option[value="dspec"]'));
    await req.selectOption('#cs-spec', 'dspec');
    await req.fill('#cs-reason', 'Atrial fibrillation on ECG');
    await req.click('#consult-form button[type="submit"]');
    await req.waitForSelector('#cs-error:not([hidden])'); // no question yet
    await req.fill('#cs-question', 'Anticoagulation or not?');
    await req.fill('#cs-attach', 'ecg:001, lab:inr-77');
    await req.selectOption('#cs-urgency', 'urgent');
    await req.click('#consult-form button[type="submit"]');
    await req.waitForSelector('#consult-form', { state: 'hidden' });
    const rows = srv.sql("SELECT id, patient_id, origin_visit_id, dept_id, specialist_id, urgency, attachments, state FROM consultations");
    assert.equal(rows.length, 1);
    const id = rows[0].id;
    assert.deepEqual({ ...rows[0], id: undefined }, { id: undefined, patient_id: 'p-web-cons', origin_visit_id: ci.visit_id,
      dept_id: 'cardio', specialist_id: 'dspec', urgency: 'urgent', attachments: '["ecg:001","lab:inr-77"]', state: 'requested' });
    await req.waitForSelector(`#consult-outgoing li[data-id="${id}"]:has-text("Waiting for an answer")`);

    // The receiving department's doctor, in Chinese: the request in words.
    const duty = await openPage(browser, srv, 'doctor.html', 'dduty', 'doctor', { locale: 'zh-CN', viewport: DESK });
    await setLanguage(duty, 'zh-CN');
    await doctorOnDuty(duty);
    const item = `#consult-incoming li[data-id="${id}"]`;
    await duty.waitForSelector(`${item}:has-text("等待答复")`);
    await duty.waitForSelector(`${item}:has-text("加急")`);
    await duty.waitForSelector(`${item}:has-text("Anticoagulation or not?")`);
    const words = await rawWords(duty, 'zh-CN');
    assert.deepEqual(words.bad, [], words.text.slice(0, 1500));
    await shot(duty, 'consult-incoming-zh');

    // A decline needs a reason; then another time is proposed.
    await duty.click(`${item} button[data-act="cons.decline"]`);
    await duty.click(`${item} form button[type="submit"]`);
    await duty.waitForSelector(`${item} form .error:has-text("请填写拒绝原因")`);
    assert.equal(srv.sql(`SELECT state FROM consultations WHERE id = '${id}'`)[0].state, 'requested');
    await duty.click(`${item} button[data-act="cons.propose"]`);
    await duty.waitForSelector(`${item} form select option[value="dspec"]`, { state: 'attached' });
    await duty.click(`${item} form button[type="submit"]`);
    await duty.waitForSelector(`${item}:has-text("已建议其他时间")`);

    // The requester hears, accepts the time; both lists say scheduled.
    const out = `#consult-outgoing li[data-id="${id}"]`;
    await req.waitForSelector(`${out}:has-text("Another time proposed")`);
    await req.click(`${out} button[data-act="cons.accept_proposal"]`);
    await req.waitForSelector(`${out}:has-text("Scheduled for")`);
    await req.waitForSelector(`${out}:has-text("Specialist: Dr dspec")`);
    await duty.waitForSelector(`${item}:has-text("已安排")`);
    const done = srv.sql(`SELECT state, specialist_id, appointment_id IS NOT NULL AS booked FROM consultations WHERE id = '${id}'`)[0];
    assert.deepEqual(done, { state: 'scheduled', specialist_id: 'dspec', booked: 1 });
    const en = await rawWords(req, 'en-US');
    assert.deepEqual(en.bad, [], en.text.slice(0, 1500));
    await shot(req, 'consult-outgoing-en');
    assert.deepEqual([...req.errors, ...duty.errors], []);
    await duty.context().close();

    // At the time: the patient checks in with the appointment; the requester
    // accepts on the page; the specialist is called, joins and signs the opinion.
    await patient.request('visit.end', { visit_id: ci.visit_id });
    await patient.waitFor('visit.state', (m) => m.visit_id === ci.visit_id && m.state === 'ended');
    const spec = await openPage(browser, srv, 'doctor.html', 'dspec', 'doctor', { viewport: DESK });
    await setLanguage(spec, 'en-US');
    await doctorOnDuty(spec);
    const appt = srv.sql(`SELECT appointment_id FROM consultations WHERE id = '${id}'`)[0].appointment_id;
    const ci2 = await patient.request('checkin', { appointment_id: appt, consent: { version: '2026.1', recording: true } });
    await req.waitForFunction((v) => window.tm.state.offer && window.tm.state.offer.visit_id === v, ci2.visit_id, { timeout: 60000 });
    await req.click('#offer-accept');
    await spec.waitForSelector('#consult-started:not([hidden])');
    await spec.click('#consult-join');
    await spec.waitForFunction((v) => window.tm.state.visitId === v && window.tm.state.myRole === 'consulting', ci2.visit_id);
    const mine = `#consult-incoming li[data-id="${id}"]`;
    await spec.waitForSelector(`${mine}:has-text("Taking place")`);
    await spec.fill(`#cs-op-${id}`, 'CHA2DS2-VASc 3: start a DOAC.');
    await spec.fill(`#cs-code-${id}`, 'I48.0');
    await spec.click(`${mine} button[data-act="cons.opinion_sign"]`);
    await spec.waitForSelector(`${mine}:has-text("Opinion given")`);
    await req.waitForSelector(`${out}:has-text("Opinion given")`);
    const signed = srv.sql(`SELECT c.state, n.doctor_id, n.signed, n.diagnosis_code FROM consultations c
      JOIN notes n ON n.visit_id = c.visit_id WHERE c.id = '${id}'`);
    assert.deepEqual(signed, [{ state: 'completed', doctor_id: 'dspec', signed: 1, diagnosis_code: 'I48.0' }]);
    const specWords = await rawWords(spec, 'en-US');
    assert.deepEqual(specWords.bad, [], specWords.text.slice(0, 1500));
    await shot(spec, 'consult-specialist-en');
    assert.deepEqual([...req.errors, ...spec.errors], []);
    // The specialist reads the patient's card: the consultation makes the patient theirs.
    const card = await srv.api('GET', `/api/v1/appointments/${appt}`, undefined, srv.token('dspec', 'doctor'));
    assert.equal(card.status, 200, card.text);
    await patient.close();
  } finally {
    await browser.close();
    await srv.stop();
  }
});
