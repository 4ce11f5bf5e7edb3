// party_links.test.mjs - the attending doctor's page makes, lists and
// withdraws one-time guest links for the patient's family, in zh-CN and
// English, against a real server in real Chromiums: a link the doctor makes
// brings the guest into the visit and then shows as used; one the doctor
// withdraws is refused on the guest's screen; the patient sees the doctor's
// links too; a consulting doctor has no such panel and is refused by the
// server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHospital, launch, openPage, shot, waitView, doctorOnDuty, rawWords, setLanguage,
  openGuest, joinGuest, assertRefused,
} from './lib.mjs';
import { waitUntil } from '../integration/lib/server.mjs';

const DESK = { width: 1280, height: 800 };

// The doctor's panel makes a link for name; returns its URL.
async function makeLink(doctor, name) {
  const before = await doctor.inputValue('#fam-url');
  await doctor.fill('#fam-name', name);
  await doctor.click('#fam-form button[type="submit"]');
  await doctor.waitForFunction((old) => !document.querySelector('#fam-new').hidden && document.querySelector('#fam-url').value !== old, before);
  assert.match(await doctor.textContent('#fam-new-text'), new RegExp(name));
  return doctor.inputValue('#fam-url');
}

test('the attending doctor makes, lists and withdraws guest links', { timeout: 300000 }, async (t) => {
  const srv = await startHospital({ depts: ['cardio', 'neuro'], doctors: [['d1', 'cardio'], ['d2', 'neuro']] });
  const browser = await launch();
  let patient;
  let visitId;
  try {
    // In Chinese from the start: what the page announced before a language
    // switch stays in its screen-reader region in the old language.
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { viewport: DESK, locale: 'zh-CN' });
    // Caps for a loaded machine (the suite shares two cores), not latencies.
    doctor.setDefaultTimeout(60000);
    await doctorOnDuty(doctor);
    // The patient without a browser: the links need no media from them.
    patient = await srv.client('p-links', 'patient', { name: '韩梅梅 Han' });
    const consent = await patient.request('consent.get', {});
    visitId = (await patient.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: { version: consent.version, recording: true } })).visit_id;
    await doctor.waitForSelector('#offer:not([hidden])');
    await doctor.click('#offer-accept');
    await doctor.waitForSelector('#visit:not([hidden])');

    await t.test('the panel is there for the attending, in both languages', async () => {
      await doctor.waitForSelector('#family:not([hidden])');
      await doctor.click('#family summary');
      await doctor.waitForSelector('#fam-form', { state: 'visible' });
      assert.equal(await doctor.isVisible('#fam-none'), true);
      assert.match(await doctor.textContent('#family summary'), /邀请患者家属/);
      assert.match(await doctor.textContent('#family .help'), /一次性链接/);
      const zh = await rawWords(doctor, 'zh-CN');
      assert.deepEqual(zh.bad, [], zh.text);
      await setLanguage(doctor, 'en-US');
      assert.match(await doctor.textContent('#family summary'), /Invite the patient's family/);
      assert.deepEqual((await rawWords(doctor, 'en-US')).bad, []);
    });

    let url;
    await t.test('a link the doctor makes brings the guest in, and then shows as used', async () => {
      url = await makeLink(doctor, 'daughter');
      assert.match(url, /\/guest\.html#code=[A-Za-z0-9_-]{16,}$/);
      await doctor.waitForSelector('#fam-links li[data-state="open"]:has-text("daughter")');
      // The patient's own list holds the doctor's link too.
      const theirs = await patient.request('guest.links', { visit_id: visitId });
      assert.ok(theirs.links.some((l) => l.name === 'daughter' && l.state === 'open'), JSON.stringify(theirs));
      const guest = await openGuest(browser, url);
      try {
        await joinGuest(guest);
        await waitView(guest, 'visit', 60000);
        await patient.waitFor('visit.participants', (m) => m.visit_id === visitId && m.participants.some((p) => p.role === 'guest' && p.name === 'daughter'), 60000);
        // The list is read again when the visit's people change.
        await doctor.waitForSelector('#fam-links li[data-state="used"]:has-text("daughter")', { timeout: 30000 });
        await setLanguage(doctor, 'zh-CN');
        assert.match(await doctor.textContent('#fam-links li[data-state="used"]'), /已使用/);
        assert.deepEqual((await rawWords(doctor, 'zh-CN')).bad, []);
        await shot(doctor, 'party-doctor-links-zh');
        await setLanguage(doctor, 'en-US');
        assert.deepEqual(guest.errors, []);
      } finally {
        await guest.context().close();
      }
    });

    await t.test('a link the doctor withdraws is refused on the guest\'s screen', async () => {
      url = await makeLink(doctor, 'son');
      await doctor.click('#fam-links li[data-state="open"]:has-text("son") button');
      await doctor.waitForSelector('#fam-links li[data-state="revoked"]:has-text("son")');
      assert.equal(await doctor.isHidden('#fam-new'), true, 'the withdrawn link is no longer offered for copying');
      await shot(doctor, 'party-doctor-links-en');
      const guest = await openGuest(browser, url, { locale: 'en-US' });
      try {
        // A withdrawn link is refused as the page opens, before any notice.
        await assertRefused(guest, /撤回/, /withdrew/);
      } finally {
        await guest.context().close();
      }
    });

    await t.test('a bad name is refused on the page and nothing is made', async () => {
      const count = await doctor.$$eval('#fam-links li', (n) => n.length);
      await doctor.fill('#fam-name', '   ');
      await doctor.click('#fam-form button[type="submit"]');
      await doctor.waitForSelector('#fam-error:not([hidden])');
      assert.match(await doctor.textContent('#fam-error'), /enter a name/);
      const links = await patient.request('guest.links', { visit_id: visitId });
      assert.equal(links.links.length, count);
    });

    await t.test('a consulting doctor has no panel, and the server refuses them', async () => {
      const colleague = await openPage(browser, srv, 'doctor.html', 'd2', 'doctor', { viewport: DESK });
      try {
        await doctorOnDuty(colleague);
        await doctor.selectOption('#inv-dept', 'neuro');
        await doctor.click('#inv-form button[type="submit"]');
        await doctor.click('#staff-list li[data-staff="d2"] button');
        await colleague.waitForSelector('#invited:not([hidden])');
        await colleague.click('#invited-accept');
        await colleague.waitForSelector('#visit:not([hidden])');
        await waitUntil('the colleague knows their role', () => colleague.evaluate(() => window.tm.state.myRole === 'consulting'), 30000);
        assert.equal(await colleague.isHidden('#family'), true);
        const r = await colleague.evaluate(async (v) => {
          try { await window.tm.sig.request('guest.link_create', { visit_id: v, name: 'x' }); return 'ok'; } catch (e) { return e.code; }
        }, visitId);
        assert.equal(r, 'forbidden');
        assert.deepEqual(colleague.errors, []);
      } finally {
        await colleague.context().close();
      }
    });

    await t.test('the visit ends: the panel goes', async () => {
      await doctor.click('#end-btn');
      await doctor.click('dialog.confirm .confirm-ok');
      await doctor.waitForSelector('#wrap-card:not([hidden])');
      assert.equal(await doctor.isHidden('#family'), true);
    });
    assert.deepEqual(doctor.errors, []);
  } finally {
    if (patient) await patient.close();
    await browser.close();
    await srv.stop();
  }
});
