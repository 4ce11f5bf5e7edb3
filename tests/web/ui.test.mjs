// ui.test.mjs - the pages as people use them, in chromium: language switch
// (zh-CN from the browser, to English and back, remembered), the patient
// page at 360 px without horizontal scroll through every step, labels on
// every control, and clear messages (with a retry) when the camera is
// blocked, missing or taken by another app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, confirm, holdResponses } from './lib.mjs';

const noHScroll = (page) => page.evaluate(() => ({
  scroll: document.documentElement.scrollWidth, width: window.innerWidth,
  wide: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && e.offsetParent !== null).map((e) => e.tagName + (e.id ? `#${e.id}` : '') + (e.className ? `.${String(e.className).split(' ')[0]}` : '')).slice(0, 5),
}));

// Every visible form control has a name a screen reader can say.
const unlabelled = (page) => page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, video')]
  .filter((e) => e.offsetParent !== null || e.type === 'radio' || e.type === 'checkbox')
  .filter((e) => {
    if (e.tagName === 'BUTTON') return !(e.textContent.trim() || e.getAttribute('aria-label'));
    if (e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')) return false;
    return !(e.labels && e.labels.length && [...e.labels].some((l) => l.textContent.trim()));
  })
  .map((e) => e.outerHTML.slice(0, 80)));

test('language: follows the browser (zh-CN), switches to English and back, remembers', { timeout: 120000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const page = await openPage(browser, srv, 'patient.html', 'p-lang', 'patient', { locale: 'zh-CN' });
    await waitView(page, 'device');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.textContent('#dev-h'), '检查摄像头和麦克风');
    await page.waitForSelector('#dev-status.notice-ok');
    assert.match(await page.textContent('#dev-status'), /正常/);
    await page.click('#lang-switch');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await page.textContent('#dev-h'), 'Check your camera and microphone');
    assert.match(await page.textContent('#dev-status'), /work/);
    assert.equal(await page.textContent('#lang-switch'), '中文');
    await page.click('#lang-switch');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.textContent('#dev-h'), '检查摄像头和麦克风');
    // The choice outlives a reload.
    await page.click('#lang-switch');
    await page.reload();
    await waitView(page, 'device');
    assert.equal(await page.textContent('#dev-h'), 'Check your camera and microphone');
    // The other pages speak the same languages.
    const doc = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale: 'zh-CN' });
    await waitView(doc, 'ws');
    assert.equal((await doc.textContent('#st-h')).trim(), '我的状态');
    await doc.click('#lang-switch');
    assert.equal((await doc.textContent('#st-h')).trim(), 'My status');
    const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { locale: 'zh-CN' });
    await waitView(sup, 'sup');
    assert.equal(await sup.textContent('#tab-live'), '实时');
    await sup.click('#lang-switch');
    assert.equal(await sup.textContent('#tab-live'), 'Live');
    for (const p of [page, doc, sup]) assert.deepEqual(p.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('patient page at 360 px: no horizontal scroll in any step; every control labelled', { timeout: 120000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  let doctor;
  try {
    const page = await openPage(browser, srv, 'patient.html', 'p-narrow', 'patient', { viewport: { width: 360, height: 740 }, locale: 'zh-CN' });
    const check = async (step) => {
      const r = await noHScroll(page);
      assert.ok(r.scroll <= r.width, `${step}: scrollWidth ${r.scroll} > ${r.width} (${r.wide.join(', ')})`);
      assert.deepEqual(await unlabelled(page), [], `${step}: unlabelled controls`);
    };
    await waitView(page, 'device');
    await page.waitForSelector('#dev-continue:not([disabled])');
    await check('device check');
    await page.click('#dev-continue');
    await waitView(page, 'checkin');
    await check('check-in');
    await shot(page, 'patient-360-checkin');
    await page.click('label.choice:has(input[value="appointment"])');
    await check('check-in with appointment');
    await page.click('label.choice:has(input[value="follow_up"])');
    await page.waitForFunction(() => !!document.querySelector('#ci-dept option[value="cardio"]'));
    // The informed consent in the page's language; refusing recording says
    // what to do instead and checks nobody in.
    await page.waitForFunction(() => /知情同意/.test(document.querySelector('#ci-consent-text').textContent));
    await page.click('#ci-refuse');
    assert.match(await page.textContent('#ci-refused'), /线下就诊/);
    await check('consent refused');
    assert.equal(srv.sql("SELECT count(*) n FROM visits")[0].n, 0);
    await page.check('#ci-consent');
    assert.equal(await page.isHidden('#ci-refused'), true);
    await page.click('#ci-form button[type="submit"]');
    await waitView(page, 'waiting');
    assert.equal(srv.sql("SELECT version FROM consents WHERE kind = 'patient'")[0].version, '2026.1');
    await check('waiting room');
    await shot(page, 'patient-360-waiting');
    doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const offer = await doctor.waitFor('visit.offer');
    await doctor.request('visit.accept', { visit_id: offer.visit_id });
    await waitView(page, 'visit');
    await page.waitForTimeout(1500);
    await check('visit');
    await shot(page, 'patient-360-visit');
    await doctor.request('visit.end', { visit_id: offer.visit_id, reason: 'terminate_and_refer', advice: 'Cardiology clinic, in person today' });
    await waitView(page, 'ended');
    await check('rating');
    assert.match(await page.textContent('#end-reason'), /线下/);
    assert.equal(await page.textContent('#end-advice-text'), 'Cardiology clinic, in person today');
    await shot(page, 'patient-360-rating');
    assert.deepEqual(page.errors, []);
  } finally {
    if (doctor) await doctor.close();
    await browser.close();
    await srv.stop();
  }
});

test('doctor and supervisor pages: every control labelled, no horizontal scroll at 360 px', { timeout: 60000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    for (const [file, sub, role, ready] of [['doctor.html', 'd1', 'doctor', 'ws'], ['supervisor.html', 's1', 'supervisor', 'sup']]) {
      const page = await openPage(browser, srv, file, sub, role, { viewport: { width: 360, height: 740 } });
      await waitView(page, ready);
      await page.waitForTimeout(1200);
      const r = await noHScroll(page);
      assert.ok(r.scroll <= r.width, `${file}: scrollWidth ${r.scroll} (${r.wide.join(', ')})`);
      assert.deepEqual(await unlabelled(page), [], `${file}: unlabelled controls`);
      if (role === 'supervisor') {
        await page.click('#tab-records');
        await page.waitForSelector('#results-count:not(:empty)');
        assert.deepEqual(await unlabelled(page), [], 'records: unlabelled controls');
      }
      await shot(page, `${role}-360`);
    }
  } finally {
    await browser.close();
    await srv.stop();
  }
});

// getUserMedia failing the way browsers fail: permission denied, no
// device, device busy (another app). The page explains and retries.
for (const [name, error, text] of [
  ['denied', 'NotAllowedError', /blocked/],
  ['no device', 'NotFoundError', /No camera or microphone/],
  ['taken by another app', 'NotReadableError', /used by another app/],
]) {
  test(`device check: camera ${name} shows a clear message and a retry that works`, { timeout: 60000 }, async () => {
    const srv = await startHospital();
    const browser = await launch();
    try {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
      await ctx.addInitScript((errName) => {
        const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        window.__failMedia = true;
        navigator.mediaDevices.getUserMedia = (c) => (window.__failMedia
          ? Promise.reject(new DOMException('simulated', errName)) : real(c));
      }, error);
      const page = await ctx.newPage();
      await page.goto(`${srv.base()}/patient.html#token=${srv.token('p-dev', 'patient')}`);
      await page.waitForSelector('#dev-status.notice-error');
      assert.match(await page.textContent('#dev-status'), text);
      assert.equal(await page.isVisible('#dev-retry'), true);
      assert.equal(await page.isVisible('#dev-continue-without'), true);
      if (name === 'denied') await shot(page, 'device-denied');
      // The user fixes it and retries.
      await page.evaluate(() => { window.__failMedia = false; });
      await page.click('#dev-retry');
      await page.waitForSelector('#dev-status.notice-ok');
      assert.equal(await page.isEnabled('#dev-continue'), true);
    } finally {
      await browser.close();
      await srv.stop();
    }
  });
}

test('a patient without a camera can still check in and chat', { timeout: 90000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  let doctor;
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
    await ctx.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('simulated', 'NotFoundError'));
    });
    const page = await ctx.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    await page.goto(`${srv.base()}/patient.html#token=${srv.token('p-nocam', 'patient')}`);
    await page.waitForSelector('#dev-continue-without:not([hidden])');
    await page.click('#dev-continue-without');
    await waitView(page, 'checkin');
    await page.waitForFunction(() => !!document.querySelector('#ci-dept option[value="cardio"]'));
    await page.check('#ci-consent');
    await page.click('#ci-form button[type="submit"]');
    await waitView(page, 'waiting');
    doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const offer = await doctor.waitFor('visit.offer');
    await doctor.request('visit.accept', { visit_id: offer.visit_id });
    await waitView(page, 'visit');
    assert.equal(await page.isDisabled('.controls button >> nth=0'), true, 'mute is disabled without a microphone');
    await page.fill('.chat-input', 'no camera here');
    await page.press('.chat-input', 'Enter');
    const m = await doctor.waitFor('chat.message');
    assert.equal(m.text, 'no camera here');
    assert.deepEqual(page.errors, []);
  } finally {
    if (doctor) await doctor.close();
    await browser.close();
    await srv.stop();
  }
});

test('a second tab takes over; the first says so instead of fighting for the session', { timeout: 60000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const token = srv.token('p-twice', 'patient');
    const first = await openPage(browser, srv, 'patient.html', 'p-twice', 'patient', { token });
    await waitView(first, 'device');
    const second = await openPage(browser, srv, 'patient.html', 'p-twice', 'patient', { token });
    await waitView(second, 'device');
    await first.waitForSelector('.fatal');
    assert.match(await first.textContent('.fatal'), /another tab/);
    assert.equal(await first.isVisible('.fatal button'), true, 'a way forward: reload');
    await second.waitForTimeout(1000);
    assert.equal(await second.evaluate(() => window.tm.sig.state), 'open');
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('camera lost mid-visit: the page says so and the camera restarts into the same call', { timeout: 90000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  let doctor;
  try {
    const page = await openPage(browser, srv, 'patient.html', 'p-cam', 'patient');
    await patientCheckin(page);
    doctor = await srv.client('d1', 'doctor');
    await doctor.request('doctor.status', { status: 'available' });
    const offer = await doctor.waitFor('visit.offer');
    await doctor.request('visit.accept', { visit_id: offer.visit_id });
    await waitView(page, 'visit');
    const before = await page.evaluate(() => window.tm.call.stream.getVideoTracks()[0].id);
    // What the browser does when another app grabs the device: the track
    // ends by itself.
    await page.evaluate(() => {
      const tr = window.tm.call.stream.getVideoTracks()[0];
      tr.stop();
      tr.dispatchEvent(new Event('ended'));
    });
    await page.waitForSelector('.call .notice-warn[role="alert"]:not([hidden])');
    assert.match(await page.textContent('.call .notice-warn[role="alert"]'), /camera stopped/);
    await page.click('.controls button:has-text("Restart camera")');
    await page.waitForSelector('.call .notice-warn[role="alert"]', { state: 'hidden' });
    const after = await page.evaluate(() => {
      const pc = window.tm.call.peer.pc;
      const sender = pc.getSenders().find((s) => s.track && s.track.kind === 'video');
      return { id: window.tm.call.stream.getVideoTracks()[0].id, sending: sender && sender.track.id, live: sender && sender.track.readyState };
    });
    assert.notEqual(after.id, before);
    assert.equal(after.sending, after.id, 'the new camera track is what the call sends');
    assert.equal(after.live, 'live');
    assert.deepEqual(page.errors, []);
  } finally {
    if (doctor) await doctor.close();
    await browser.close();
    await srv.stop();
  }
});

test('strings: both languages have every key, and every key the markup and code use exists', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { WEB_ROOT } = await import('./lib.mjs');
  const src = fs.readFileSync(path.join(WEB_ROOT, 'js', 'i18n.js'), 'utf8');
  const block = (name) => {
    const start = src.indexOf(`${name}: {`);
    const end = src.indexOf('\n  },', start);
    return new Set([...src.slice(start, end).matchAll(/^\s+'([\w.]+)':/gm)].map((m) => m[1]));
  };
  const en = block('en'), zh = block("'zh-CN'");
  assert.ok(en.size > 100);
  assert.deepEqual([...en].filter((k) => !zh.has(k)), [], 'keys missing in zh-CN');
  assert.deepEqual([...zh].filter((k) => !en.has(k)), [], 'keys missing in English');
  const used = new Set();
  for (const f of fs.readdirSync(WEB_ROOT).filter((n) => n.endsWith('.html'))) {
    const html = fs.readFileSync(path.join(WEB_ROOT, f), 'utf8');
    for (const m of html.matchAll(/data-i18n(?:-label|-placeholder|-title)?="([\w.]+)"/g)) used.add(m[1]);
  }
  for (const f of fs.readdirSync(path.join(WEB_ROOT, 'js')).filter((n) => n !== 'i18n.js')) {
    const js = fs.readFileSync(path.join(WEB_ROOT, 'js', f), 'utf8');
    // Literal keys only; keys built at run time (`kind.${k}`) are checked by the pages' tests.
    for (const m of js.matchAll(/\bt\('([\w.]+)'/g)) used.add(m[1]);
  }
  assert.deepEqual([...used].filter((k) => !en.has(k)), [], 'keys used but not defined');
});

// CI once saw the status flip back to "off duty" by itself: the page took
// hello's state only after the departments' names came, over a click made
// in between. Here the names come after the click, every time.
test('doctor page: "available" chosen before the department names arrive stays chosen', { timeout: 120000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    let names;
    const page = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', {
      locale: 'zh-CN', beforeGoto: async (p) => { names = await holdResponses(p, '**/api/v1/departments'); },
    });
    // The page asks for the names as it shows the workstation.
    await doctorOnDuty(page);
    names.release();
    await page.waitForSelector('#inv-dept option[value="cardio"]', { state: 'attached' });
    assert.equal(await page.evaluate(() => window.tm.state.status), 'available');
    assert.equal(await page.isChecked('#status-group input[value="available"]'), true);
    assert.equal(await page.textContent('#idle-text'), '正在等待下一位患者…');
    assert.deepEqual(page.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('doctor page: an unverified doctor is told why and keeps the offer; refer needs advice', { timeout: 120000 }, async () => {
  const srv = await startHospital({ doctors: [['d1', 'cardio'], ['d2', 'cardio']] });
  const browser = await launch();
  let patient;
  try {
    // Signed in without a recent identity check (no auth_time in the token).
    const stale = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale: 'zh-CN', extra: { auth_time: undefined } });
    await doctorOnDuty(stale);
    patient = await srv.client('p-refer', 'patient');
    const ci = await patient.request('checkin', { dept: 'cardio', consent: { version: '2026.1', recording: true } });
    await stale.waitForSelector('#offer:not([hidden])');
    await stale.click('#offer-accept');
    await stale.waitForSelector('#toasts .toast-error');
    assert.match(await stale.textContent('#toasts'), /暂不能接诊：您的登录未包含近期身份核验/);
    assert.equal(await stale.isVisible('#offer'), true, 'the offer stays open');
    assert.equal(srv.sql(`SELECT state FROM visits WHERE id = '${ci.visit_id}'`)[0].state, 'offered');
    await stale.context().close();

    // A colleague signed in through the identity check takes the patient,
    // then stops and refers.
    const doc = await openPage(browser, srv, 'doctor.html', 'd2', 'doctor', { locale: 'en-US' });
    await doctorOnDuty(doc);
    await doc.waitForSelector('#offer:not([hidden])');
    await doc.click('#offer-accept');
    await doc.waitForSelector('#visit:not([hidden])');
    assert.equal(srv.sql(`SELECT doctor_verify_method m FROM visits WHERE id = '${ci.visit_id}'`)[0].m, 'token');
    await doc.selectOption('#end-reason', 'terminate_and_refer');
    assert.equal(await doc.isVisible('#end-advice'), true);
    await doc.click('#end-btn');
    await doc.waitForSelector('#toasts .toast-error:has-text("Write your advice")');
    assert.equal(srv.sql(`SELECT state FROM visits WHERE id = '${ci.visit_id}'`)[0].state, 'active');
    await doc.fill('#end-advice', 'Emergency department today: chest pain at rest.');
    await doc.click('#end-btn');
    await confirm(doc);
    const ended = await patient.waitFor('visit.state', (m) => m.state === 'ended');
    assert.equal(ended.end_reason, 'terminate_and_refer');
    assert.equal(ended.referral_advice, 'Emergency department today: chest pain at rest.');
    assert.deepEqual(doc.errors, []);
  } finally {
    if (patient) await patient.close();
    await browser.close();
    await srv.stop();
  }
});
