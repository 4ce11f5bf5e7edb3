// reconnect.test.mjs - failures the pages must survive, in chromium: the
// patient's connection drops mid-visit and the page comes back into the
// same visit (chat and video resume); the server restarts (kill -9) and
// both pages show the reconnecting state, then resume; an expired or
// refused link shows a clear message instead of a blank page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mintToken } from '../integration/lib/server.mjs';
import { startHospital, launch, openPage, waitView, remoteVideo, acceptedVisit } from './lib.mjs';

async function videoFlows(page, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let last = await remoteVideo(page);
  while (Date.now() < deadline) {
    await page.waitForTimeout(1000);
    const now = await remoteVideo(page);
    if (now.width > 0 && now.frames > last.frames && now.state === 'connected') return;
    last = now;
  }
  assert.fail(`video did not resume: ${JSON.stringify(last)}`);
}

async function chatRoundTrip(from, to, text) {
  await from.fill('.chat-input', text);
  await from.press('.chat-input', 'Enter');
  await to.waitForSelector(`.chat-list li:has-text("${text}")`);
}

test('the patient page comes back into the same visit after drops and a server restart', { timeout: 240000 }, async (t) => {
  const srv = await startHospital({ fixedPort: true });
  const browser = await launch();
  try {
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor');
    const patient = await openPage(browser, srv, 'patient.html', 'p-rc', 'patient');
    await acceptedVisit(patient, doctor);
    const visitId = await patient.evaluate(() => window.tm.state.visitId);

    await t.test('connection dropped: reconnecting state, then the same visit', async () => {
      await patient.evaluate(() => window.tm.sig.drop());
      await patient.waitForFunction(() => document.body.dataset.conn === 'reconnecting', null, { timeout: 30000 });
      await patient.waitForFunction(() => document.body.dataset.conn === 'open', null, { timeout: 30000 });
      assert.equal(await patient.evaluate(() => window.tm.state.visitId), visitId);
      assert.equal(await patient.evaluate(() => document.body.dataset.current), 'visit');
      await chatRoundTrip(patient, doctor, 'back after a drop');
      await chatRoundTrip(doctor, patient, 'welcome back');
    });

    await t.test('video resumes after the drop (ICE restart; needs the media core)', async () => {
      await videoFlows(patient);
      await videoFlows(doctor);
    });

    await t.test('server restart: both pages reconnect and resume the visit', async () => {
      await srv.restart({ hard: true });
      // The pages noticed (banner up) or are already back; either way they
      // must end up open, in the same visit.
      await patient.waitForFunction(() => document.body.dataset.conn === 'open' && window.tm.sig.attempt === 0, null, { timeout: 30000 });
      await doctor.waitForFunction(() => document.body.dataset.conn === 'open', null, { timeout: 30000 });
      assert.equal(await patient.evaluate(() => window.tm.state.visitId), visitId);
      assert.equal(await patient.evaluate(() => document.body.dataset.current), 'visit');
      assert.equal(await doctor.evaluate(() => window.tm.state.visitId), visitId);
      await chatRoundTrip(patient, doctor, 'after the restart');
    });

    await t.test('video resumes after the server restart (needs the media core)', async () => {
      await videoFlows(patient, 40000);
      await videoFlows(doctor, 40000);
    });

    await t.test('while the server is down the page says so and keeps the visit on screen', async () => {
      await srv.stop({ keep: true });
      await patient.waitForSelector('#conn:not([hidden])', { timeout: 40000 });
      assert.match(await patient.textContent('#conn-text'), /Reconnecting/);
      assert.equal(await patient.evaluate(() => document.body.dataset.current), 'visit');
      await srv.restart();
      await patient.waitForSelector('#conn', { state: 'hidden', timeout: 30000 });
      assert.equal(await patient.evaluate(() => window.tm.state.visitId), visitId);
    });
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('reloading either page mid-visit lands in the same visit; the other side leaving is shown', { timeout: 180000 }, async (t) => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor');
    const patient = await openPage(browser, srv, 'patient.html', 'p-reload', 'patient');
    await acceptedVisit(patient, doctor);
    const visitId = await patient.evaluate(() => window.tm.state.visitId);
    await doctor.fill('#note-text', 'draft before reload');
    await doctor.click('#note-save');
    await doctor.waitForFunction(() => /Draft saved/.test(document.querySelector('#note-status').textContent));

    await t.test('patient reload: no device check again, straight back into the visit', async () => {
      await patient.reload();
      await waitView(patient, 'visit');
      assert.equal(await patient.evaluate(() => window.tm.state.visitId), visitId);
      await patient.fill('.chat-input', 'reloaded');
      await patient.press('.chat-input', 'Enter');
      await doctor.waitForSelector('.chat-list li:has-text("reloaded")');
    });

    await t.test('doctor reload: the visit, the patient and the saved draft come back', async () => {
      await doctor.reload();
      await doctor.waitForSelector('#visit:not([hidden])');
      assert.equal(await doctor.evaluate(() => window.tm.state.visitId), visitId);
      await doctor.waitForFunction(() => document.querySelector('#note-text').value === 'draft before reload');
      assert.match(await doctor.textContent('#visit-h'), /p-reload/);
    });

    await t.test('video flows again after both reloads (needs the media core)', async () => {
      await videoFlows(patient);
      await videoFlows(doctor);
    });

    await t.test('the patient leaves: the doctor page says so and offers the next patient', async () => {
      await patient.click('.controls .btn-danger');
      await patient.click('dialog.confirm .confirm-ok');
      await waitView(patient, 'ended');
      assert.match(await patient.textContent('#end-reason'), /You left/);
      await doctor.waitForSelector('#wrap-card:not([hidden])');
      assert.match(await doctor.textContent('#wrap-text'), /patient left/i);
      assert.equal(await doctor.isVisible('#next-btn'), true);
    });
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('expired and refused links show a clear message', { timeout: 60000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const now = Math.floor(Date.now() / 1000);
    const expired = mintToken(srv.secret, { sub: 'p-x', role: 'patient', iat: now - 7200, exp: now - 3600 });
    let page = await openPage(browser, srv, 'patient.html', 'p-x', 'patient', { token: expired });
    await page.waitForSelector('.fatal');
    assert.match(await page.textContent('.fatal'), /not valid or has expired/);
    // Signed with another secret: only the server can tell.
    const forged = mintToken('not-the-secret', { sub: 'p-y', role: 'patient' });
    page = await openPage(browser, srv, 'patient.html', 'p-y', 'patient', { token: forged });
    await page.waitForSelector('.fatal');
    assert.match(await page.textContent('.fatal'), /not valid or has expired/);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'zh-CN' });
    page = await ctx.newPage();
    await page.goto(`${srv.base()}/supervisor.html`);
    await page.waitForSelector('.fatal');
    assert.match(await page.textContent('.fatal'), /专属链接/);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
