// speaker.test.mjs - the speaker choice in a visit (setSinkId, Chromium's
// fake audio outputs) on the patient's phone page in Chinese and the
// doctor's page in English; a browser without setSinkId (iOS Safari, WeChat's
// WKWebView) shows no choice; and the header's language switch stays
// readable under the pointer that just pressed it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, rawWords, acceptedVisit } from './lib.mjs';

const PHONE = { width: 360, height: 740 };

// The contrast ratio (WCAG 2) of an element's text against what is behind
// it: its own background, else the nearest ancestor's that is not clear.
const textContrast = (page, sel) => page.$eval(sel, (node) => {
  const rgba = (s) => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  // Paints translucent layers over the opaque one beneath, bottom up.
  const layers = [];
  for (let e = node; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    const a = c.length > 3 ? c[3] : 1;
    if (a > 0) layers.push([...c.slice(0, 3), a]);
    if (a >= 1) break;
  }
  let bg = [255, 255, 255];
  for (const [r, g, b, a] of layers.reverse()) bg = [r * a + bg[0] * (1 - a), g * a + bg[1] * (1 - a), b * a + bg[2] * (1 - a)];
  const fg = rgba(getComputedStyle(node).color).slice(0, 3);
  const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
});

// The sink every remote video of the page plays to.
const sinks = (page) => page.$$eval('.tile-video', (v) => v.filter((x) => x.srcObject).map((x) => x.sinkId));

test('speaker choice on the patient and doctor pages; none where the browser cannot', { timeout: 240000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
    const patient = await openPage(browser, srv, 'patient.html', 'p-spk', 'patient', { locale: 'zh-CN', viewport: PHONE });

    // The doctor's language switch, pressed twice: the pointer rests on it.
    await waitView(doctor, 'ws');
    await doctor.click('#lang-switch');
    await doctor.click('#lang-switch');
    const ratio = await textContrast(doctor, '#lang-switch');
    assert.ok(ratio >= 4.5, `language switch under the pointer: contrast ${ratio.toFixed(2)}`);

    await acceptedVisit(patient, doctor);
    await doctor.waitForSelector('#visit:not([hidden])');
    for (const page of [patient, doctor]) {
      await page.waitForFunction(() => [...document.querySelectorAll('.tile-video')].some((v) => v.videoWidth > 0), null, { timeout: 60000 });
    }

    // Both offer the three outputs Chromium's fake devices have.
    await doctor.waitForSelector('#speaker-doctor', { state: 'visible' });
    await patient.waitForSelector('#speaker-patient', { state: 'visible' });
    const opts = await doctor.$$eval('#speaker-doctor option', (o) => o.map((x) => ({ value: x.value, text: x.textContent })));
    assert.equal(opts.length, 3, JSON.stringify(opts));
    assert.deepEqual(opts[0], { value: '', text: 'System default' });
    assert.equal(await patient.$eval('#speaker-patient option', (o) => o.textContent), '系统默认');
    assert.equal(await patient.$eval('label[for="speaker-patient"] span', (s) => s.textContent), '扬声器');

    // A choice sends the other side's voice there, on each page.
    await doctor.selectOption('#speaker-doctor', opts[1].value);
    await doctor.waitForFunction((id) => {
      const v = [...document.querySelectorAll('.tile-video')].filter((x) => x.srcObject);
      return v.length > 0 && v.every((x) => x.sinkId === id);
    }, opts[1].value);
    const popts = await patient.$$eval('#speaker-patient option', (o) => o.map((x) => x.value));
    await patient.selectOption('#speaker-patient', popts[2]);
    await patient.waitForFunction((id) => [...document.querySelectorAll('.tile-video')].filter((x) => x.srcObject).every((x) => x.sinkId === id), popts[2]);
    assert.ok((await sinks(patient)).length > 0);
    // The patient's phone: the choice fits beside the other controls.
    const fits = await patient.$eval('#speaker-patient', (s) => s.getBoundingClientRect().right <= document.documentElement.clientWidth);
    assert.ok(fits, 'the speaker choice fits the phone');
    const words = await rawWords(patient, 'zh-CN');
    assert.deepEqual(words.bad, [], words.text);
    await shot(patient, 'patient-speaker-zh');

    // The doctor reloads: the choice is remembered for the next visit's sound.
    await doctor.reload();
    await doctor.waitForSelector('#visit:not([hidden])');
    await doctor.waitForFunction((id) => {
      const v = [...document.querySelectorAll('.tile-video')].filter((x) => x.srcObject);
      return v.length > 0 && v.every((x) => x.sinkId === id) && document.querySelector('#speaker-doctor').value === id;
    }, opts[1].value, { timeout: 60000 });

    // A browser without setSinkId (the patient back on another one): no choice shown.
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'zh-CN', viewport: PHONE });
    await ctx.addInitScript(() => { delete HTMLMediaElement.prototype.setSinkId; });
    const noSink = await ctx.newPage();
    noSink.errors = [];
    noSink.on('pageerror', (e) => noSink.errors.push(String(e)));
    await noSink.goto(`${srv.base()}/patient.html#token=${srv.token('p-spk', 'patient')}`);
    await waitView(noSink, 'visit', 60000);
    await noSink.waitForFunction(() => [...document.querySelectorAll('.tile-video')].some((v) => v.videoWidth > 0), null, { timeout: 60000 });
    assert.equal(await noSink.isHidden('label[for="speaker-patient"]'), true);
    assert.deepEqual(noSink.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
