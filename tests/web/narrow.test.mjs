// narrow.test.mjs - every page at 360×740 (a phone), in Chinese and in
// English, at each of its views: the patient's (device check, waiting, in
// the visit, the summary), the doctor's workstation (idle, the offer, the
// visit with the patient's timeline, transfer and referral, consultation
// request and follow-up forms), the supervisor's (live, the wall, the
// records and one record), the scheduling page and the figures page. No
// view may scroll sideways (scrollWidth <= clientWidth) or show null, raw
// codes or {placeholders}. A screenshot of each goes to web-screenshots/
// as narrow-<view>-<lang>.png, for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, confirm, rawWords, setLanguage } from './lib.mjs';

const PHONE = { width: 360, height: 740 };

// What sticks out to the right of the window, for the failure message.
const overflow = (page) => page.evaluate(() => ({
  scroll: document.documentElement.scrollWidth,
  width: document.documentElement.clientWidth,
  wide: [...document.querySelectorAll('body *')]
    .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map((e) => e.tagName + (e.id ? `#${e.id}` : '') + (e.className ? `.${String(e.className).split(' ')[0]}` : '')).slice(0, 6),
}));

// The view in both languages: no sideways scroll, no raw words; a screenshot each.
async function check(page, name) {
  for (const locale of ['zh-CN', 'en-US']) {
    await setLanguage(page, locale);
    await page.waitForTimeout(150); // a relabel may reflow
    const r = await overflow(page);
    assert.ok(r.scroll <= r.width, `${name} (${locale}): scrollWidth ${r.scroll} > ${r.width}: ${r.wide.join(', ')}`);
    const { bad, text } = await rawWords(page, locale);
    assert.deepEqual(bad, [], `${name} (${locale}) shows ${JSON.stringify(bad)} in:\n${text.slice(0, 3000)}`);
    await shot(page, `narrow-${name}-${locale === 'zh-CN' ? 'zh' : 'en'}`);
  }
}

test('every page and view at 360 px in both languages: nothing scrolls sideways', { timeout: 600000 }, async (t) => {
  const srv = await startHospital({ depts: ['cardio', 'neuro'], doctors: [['d1', 'cardio'], ['d2', 'neuro']],
    args: ['--hospital-level', '3A', '--institutions', 'clinic|东街社区卫生服务中心 East Street Community Clinic|ORG-C|community|clinic'] });
  const browser = await launch();
  const pages = [];
  const open = async (...args) => { const p = await openPage(browser, srv, ...args); pages.push(p); return p; };
  try {
    // A visit of the past, for the timeline and the records.
    const past = await srv.client('d2', 'doctor');
    await past.request('doctor.status', { status: 'available' });
    const pc = await srv.client('p-narrow', 'patient');
    const ci = await pc.request('checkin', { dept: 'neuro', consent: { version: '2026.1', recording: true } });
    await past.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
    await past.request('visit.accept', { visit_id: ci.visit_id });
    await past.request('visit.note', { visit_id: ci.visit_id, text: '头痛 Headache, two weeks.', diagnosis_code: 'R51', sign: true });
    await past.request('visit.end', { visit_id: ci.visit_id });
    await pc.waitFor('visit.state', (m) => m.state === 'ended');
    await pc.request('visit.rate', { visit_id: ci.visit_id, score: 5, comment: '很耐心 very kind' });
    await pc.close();
    await past.close();

    const patient = await open('patient.html', 'p-narrow', 'patient', { viewport: PHONE, extra: { name: '王芳 Wang Fang' } });
    const doctor = await open('doctor.html', 'd1', 'doctor', { viewport: PHONE, extra: { name: '李医生 Dr Li' } });
    const sup = await open('supervisor.html', 's1', 'supervisor', { viewport: PHONE });

    await t.test('patient: device check; doctor: idle', async () => {
      await waitView(patient, 'device');
      await check(patient, 'patient-device');
      await doctorOnDuty(doctor);
      await check(doctor, 'doctor-idle');
    });

    await t.test('patient waiting, doctor offered, supervisor live', async () => {
      await patientCheckin(patient);
      await check(patient, 'patient-waiting');
      await doctor.waitForSelector('#offer:not([hidden])');
      await check(doctor, 'doctor-offer');
      await waitView(sup, 'sup');
      await check(sup, 'supervisor-live');
    });

    await t.test('in the visit: the patient; the doctor with timeline, transfer, referral, consultation, follow-up', async () => {
      await doctor.click('#offer-accept');
      await waitView(patient, 'visit');
      await doctor.waitForSelector('#handoff:not([hidden])');
      await check(patient, 'patient-visit');
      await doctor.waitForSelector('#course:not([hidden])');
      await check(doctor, 'doctor-visit');
      await doctor.click('#tr-box summary');
      await doctor.click('#rf-box summary');
      await check(doctor, 'doctor-transfer');
      if (await doctor.isVisible('#consult-new')) {
        await doctor.click('#consult-new');
        await doctor.waitForSelector('#consult-form:not([hidden])');
      }
      await check(doctor, 'doctor-consult');
      await doctor.waitForSelector('#fu-form', { state: 'attached' });
      await doctor.$eval('#fu-form', (f) => f.scrollIntoView());
      await check(doctor, 'doctor-followup');
    });

    await t.test('the supervisor: the wall, the records, one record', async () => {
      await sup.waitForFunction(() => !document.querySelector('#wall-toggle').disabled);
      await sup.click('#wall-toggle');
      await check(sup, 'supervisor-wall');
      await sup.click('#wall-toggle');
      await sup.click('#tab-records');
      await sup.waitForSelector('#results-count:not(:empty)');
      await check(sup, 'supervisor-records');
      await sup.click('#results-body tr button');
      await sup.waitForSelector('#detail-h:not(:empty)');
      await check(sup, 'supervisor-record');
    });

    await t.test('the visit ends: the patient\'s summary, the doctor\'s wrap-up', async () => {
      await doctor.selectOption('#end-reason', 'completed');
      await doctor.click('#end-btn');
      await confirm(doctor);
      await waitView(patient, 'ended');
      await check(patient, 'patient-ended');
      await doctor.waitForSelector('#wrap-card:not([hidden])');
      await check(doctor, 'doctor-wrap');
    });

    await t.test('the scheduling and figures pages', async () => {
      const sched = await open('schedule.html', 's1', 'supervisor', { viewport: PHONE });
      await sched.waitForSelector('#week-table', { state: 'attached' });
      await sched.waitForTimeout(800);
      await check(sched, 'schedule');
      const fig = await open('figures.html', 's1', 'supervisor', { viewport: PHONE });
      await fig.waitForSelector('#fig-work', { state: 'attached' });
      await fig.waitForTimeout(800);
      await check(fig, 'figures');
    });

    for (const p of pages) assert.deepEqual(p.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
