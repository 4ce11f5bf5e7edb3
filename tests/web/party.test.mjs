// party.test.mjs - a visit of more than two through the web client, in
// real Chromiums with fake cameras against a real server: the patient
// (phone) and the attending doctor, a consulting doctor the attending
// invites from another department, then the patient's daughter through a
// one-time guest link, who accepts the hospital's own notice (kept on the
// record) before any media. Every page shows a tile per other participant with
// video that keeps decoding, named with the right visit role in zh-CN and
// English; the guest leaves, the attending removes the colleague. The
// guest link refused on screen at once when used twice, expired or revoked, and
// the guest page has no doctor-only controls. At most four browser
// contexts are open at once (the machine is shared).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, confirm,
  rawWords, setLanguage, openGuest, joinGuest as join, assertRefused,
} from './lib.mjs';

const PHONE = { width: 412, height: 860 };
const DESK = { width: 1280, height: 800 };
const ROLE_WORDS = {
  'zh-CN': { patient: '患者', attending: '医生', consulting: '会诊医生', guest: '家属' },
  'en-US': { patient: 'Patient', attending: 'Doctor', consulting: 'Consulting doctor', guest: 'Family' },
};

// The tiles a page shows: who (name, role words) and whether video plays.
const tiles = (page) => page.evaluate(() => [...document.querySelectorAll('.call .tile-p')].map((n) => {
  const v = n.querySelector('video');
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : { totalVideoFrames: 0 };
  return {
    id: n.dataset.participant, role: n.dataset.role,
    name: n.querySelector('.tile-name').textContent, roleText: n.querySelector('.tile-role').textContent,
    width: v.videoWidth, frames: q.totalVideoFrames,
  };
}));

// n remote tiles, each with a decoded picture, and frames keep coming on
// every one of them (waited for with a cap: a loaded machine is slow).
async function assertTilesPlay(page, who, n) {
  try {
    await page.waitForFunction((k) => {
      const t = [...document.querySelectorAll('.call .tile-p')];
      return t.length === k && t.every((x) => x.querySelector('video').videoWidth > 0);
    }, n, { timeout: 60000 });
  } catch {
    assert.fail(`${who}: not ${n} playing tiles: ${JSON.stringify(await tiles(page))}`);
  }
  const a = await tiles(page);
  let b = await tiles(page);
  const grew = () => a.every((x) => { const y = b.find((z) => z.id === x.id); return y && y.frames > x.frames; });
  for (const end = Date.now() + 30000; !grew() && Date.now() < end; b = await tiles(page)) await page.waitForTimeout(250);
  assert.ok(grew(), `${who}: frames did not advance on every tile: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`);
  return b;
}

// Each tile names the right person with their role in the page's language.
async function assertTileNames(page, who, locale, expected) {
  const got = (await tiles(page)).map((x) => [x.name, x.roleText]).sort();
  const want = expected.map(([name, role]) => [name, ROLE_WORDS[locale][role]]).sort();
  assert.deepEqual(got, want, `${who} (${locale}) tiles`);
  const { bad, text } = await rawWords(page, locale);
  assert.deepEqual(bad, [], `${who} (${locale}) shows raw words ${JSON.stringify(bad)} in:\n${text.slice(0, 1500)}`);
}

// Names and roles in both languages, with a screenshot of each.
async function bothLanguages(page, who, expected, shotName = null) {
  for (const locale of ['zh-CN', 'en-US']) {
    await setLanguage(page, locale);
    await assertTileNames(page, who, locale, expected);
    if (shotName) await shot(page, `${shotName}-${locale === 'zh-CN' ? 'zh' : 'en'}`);
  }
}

// The last media.view the page sent for each participant, read off its
// WebSocket as the server receives it.
function watchViews(page) {
  const views = new Map();
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    let m;
    try { m = JSON.parse(f.payload); } catch { return; }
    if (m.type === 'media.view') views.set(m.participant_id, m);
  }));
  return views;
}

async function guestLink(patient, name) {
  await patient.click('#fam-open');
  const before = await patient.inputValue('#fam-url');
  await patient.fill('#fam-name', name);
  await patient.click('#fam-form button[type="submit"]');
  // The link just made, not the one shown before it.
  await patient.waitForFunction((old) => !document.querySelector('#fam-new').hidden && document.querySelector('#fam-url').value !== old, before);
  assert.match(await patient.textContent('#fam-new-text'), new RegExp(name));
  return patient.inputValue('#fam-url');
}

test('a visit of three and four people across the pages', { timeout: 420000 }, async (t) => {
  const srv = await startHospital({ depts: ['cardio', 'neuro'], doctors: [['d1', 'cardio'], ['d2', 'neuro']] });
  const browser = await launch();
  let patient, doctor, colleague, guest, visitId, guestUrl;
  try {
    doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { viewport: DESK });
    colleague = await openPage(browser, srv, 'doctor.html', 'd2', 'doctor', { viewport: DESK });
    patient = await openPage(browser, srv, 'patient.html', 'p-party', 'patient', { viewport: PHONE, extra: { name: '王芳 Wang Fang' } });
    const views = watchViews(patient);

    await t.test('a 1:1 visit starts as always', async () => {
      await doctorOnDuty(colleague);
      await doctorOnDuty(doctor);
      await patientCheckin(patient);
      visitId = await patient.evaluate(() => window.tm.state.visitId);
      await doctor.waitForSelector('#offer:not([hidden])');
      await doctor.click('#offer-accept');
      await waitView(patient, 'visit');
      await doctor.waitForSelector('#visit:not([hidden])');
      await assertTilesPlay(patient, 'patient', 1);
      await assertTilesPlay(doctor, 'doctor', 1);
    });

    await t.test('the attending finds a colleague of another department and invites them', async () => {
      await doctor.waitForSelector('#invite-box:not([hidden])');
      await doctor.selectOption('#inv-dept', 'neuro');
      await doctor.selectOption('#inv-kind', 'doctor');
      await doctor.click('#inv-form button[type="submit"]');
      await doctor.waitForSelector('#staff-list li[data-staff="d2"]');
      assert.match(await doctor.textContent('#staff-list li[data-staff="d2"]'), /Dr d2.*Doctor.*Available/s);
      await doctor.click('#staff-list li[data-staff="d2"] button');
      await doctor.waitForSelector('#inv-pending li');
      assert.match(await doctor.textContent('#inv-pending li'), /Dr d2 \(Consulting doctor\).* \d+ s left/);
      await colleague.waitForSelector('#invited:not([hidden])');
      assert.match(await colleague.textContent('#invited-desc'), /Dr d1 invites you to join a visit as a consulting doctor/);
      assert.match(await colleague.textContent('#invited-countdown'), /\d+ s left/);
      await shot(colleague, 'party-invited-en');
      await colleague.click('#invited-accept');
      await colleague.waitForSelector('#visit:not([hidden])');
      await doctor.waitForSelector('#inv-pending li', { state: 'detached' });
    });

    await t.test('three people: each sees two playing tiles with the right names and roles', async () => {
      await assertTilesPlay(patient, 'patient', 2);
      await assertTilesPlay(doctor, 'doctor', 2);
      await assertTilesPlay(colleague, 'colleague', 2);
      await bothLanguages(patient, 'patient', [['Dr d1', 'attending'], ['Dr d2', 'consulting']], 'party3-patient');
      await bothLanguages(doctor, 'doctor', [['王芳 Wang Fang', 'patient'], ['Dr d2', 'consulting']], 'party3-doctor');
      await bothLanguages(colleague, 'colleague', [['王芳 Wang Fang', 'patient'], ['Dr d1', 'attending']]);
      // The phone draws the speaker large and the other as a thumbnail, and
      // tells the server each size (media.view), in device pixels.
      await patient.waitForFunction(() => document.querySelectorAll('.tiles-thumbs .tile-p').length === 1);
      const big = await patient.$eval('.tiles-main .tile-p video', (v) => ({ id: v.closest('.tile-p').dataset.participant, w: Math.round(v.getBoundingClientRect().width * devicePixelRatio) }));
      const small = await patient.$eval('.tiles-thumbs .tile-p video', (v) => ({ id: v.closest('.tile-p').dataset.participant, w: Math.round(v.getBoundingClientRect().width * devicePixelRatio) }));
      for (let end = Date.now() + 10000; Date.now() < end && !(views.get(big.id) && views.get(small.id)); ) await patient.waitForTimeout(200);
      assert.equal(views.get(big.id)?.width, big.w, `media.view for the large tile: ${JSON.stringify([...views])}`);
      assert.equal(views.get(small.id)?.width, small.w, `media.view for the thumbnail: ${JSON.stringify([...views])}`);
      assert.ok(small.w < big.w / 2, `thumbnail ${small.w} vs large ${big.w}`);
      // The colleague takes part but does not end the visit or invite.
      assert.equal(await colleague.isHidden('#end-card'), true);
      assert.equal(await colleague.isVisible('#leave-btn'), true);
      assert.equal(await colleague.isHidden('#invite-box'), true);
      assert.equal(await colleague.$$eval('#people-list button', (b) => b.length), 0);
    });

    await t.test('the patient invites their daughter; the guest joins and four see three tiles', async () => {
      guestUrl = await guestLink(patient, '女儿 Daughter');
      assert.match(guestUrl, /\/guest\.html#code=[A-Za-z0-9_-]{16,}$/);
      await patient.waitForSelector('#fam-links li[data-state="open"]');
      guest = await openGuest(browser, guestUrl);
      await waitView(guest, 'notice');
      const { bad } = await rawWords(guest, 'zh-CN');
      assert.deepEqual(bad, []);
      // The hospital's own notice from the server (consent.get), in both languages.
      assert.match(await guest.textContent('#gn-text'), /参与视频问诊须知.*录像/s);
      await setLanguage(guest, 'en-US');
      assert.match(await guest.textContent('#gn-text'), /Notice for guests and interpreters/);
      await setLanguage(guest, 'zh-CN');
      // The notice must be accepted before any media: nothing is on the record yet.
      await guest.click('#gn-join');
      await guest.waitForSelector('#gn-error:not([hidden])');
      await shot(guest, 'party-guest-notice-zh');
      assert.equal(srv.sql(`SELECT count(*) n FROM consents WHERE visit_id = '${visitId}' AND kind = 'guest'`)[0].n, 0);
      await join(guest);
      await waitView(guest, 'visit');
      const [accepted] = srv.sql(`SELECT role, version, session_id FROM consents WHERE visit_id = '${visitId}' AND kind = 'guest'`);
      assert.equal(accepted.role, 'guest');
      assert.match(accepted.version, /\S/);
      assert.match(accepted.session_id, /\S/);
      await assertTilesPlay(guest, 'guest', 3);
      await assertTilesPlay(patient, 'patient', 3);
      await assertTilesPlay(doctor, 'doctor', 3);
      await assertTilesPlay(colleague, 'colleague', 3);
      await bothLanguages(guest, 'guest', [['王芳 Wang Fang', 'patient'], ['Dr d1', 'attending'], ['Dr d2', 'consulting']], 'party4-guest');
      await bothLanguages(patient, 'patient', [['Dr d1', 'attending'], ['Dr d2', 'consulting'], ['女儿 Daughter', 'guest']], 'party4-patient');
      await bothLanguages(doctor, 'doctor', [['王芳 Wang Fang', 'patient'], ['Dr d2', 'consulting'], ['女儿 Daughter', 'guest']], 'party4-doctor');
      await patient.waitForSelector('#fam-links li[data-state="used"]');
    });

    await t.test('the guest comes back with the resume secret: after a dropped connection and a reload', async () => {
      await guest.evaluate(() => window.tm.sig.drop());
      await guest.waitForFunction(() => document.body.dataset.conn === 'open', null, { timeout: 30000 });
      await guest.reload();
      await waitView(guest, 'visit');
      await assertTilesPlay(guest, 'guest after a reload', 3);
      await assertTilesPlay(patient, 'patient after the guest came back', 3);
    });

    await t.test('the guest page has no doctor-only controls; the server refuses doctor-only messages', async () => {
      for (const sel of ['#end-btn', '#invite-box', '#inv-form', '#people-list', '#note-text', '#family']) {
        assert.equal(await guest.$(sel), null, `guest page has ${sel}`);
      }
      const r = await guest.evaluate(async (v) => {
        try { await window.tm.sig.request('visit.invite', { visit_id: v, user_id: 'd2', role: 'consulting' }); return 'ok'; } catch (e) { return e.code; }
      }, visitId);
      assert.equal(r, 'forbidden');
    });

    await t.test('the guest leaves; everyone else is back to two tiles', async () => {
      await setLanguage(guest, 'en-US');
      await guest.click('.controls button:has-text("Leave visit")');
      await confirm(guest);
      await waitView(guest, 'ended');
      assert.match(await guest.textContent('#ge-text'), /You left the visit/);
      await assertTilesPlay(patient, 'patient', 2);
      await assertTilesPlay(doctor, 'doctor', 2);
      await assertTilesPlay(colleague, 'colleague', 2);
      await guest.context().close();
      guest = null;
    });

    await t.test('the guest link used a second time is refused on screen', async () => {
      const again = await openGuest(browser, guestUrl, { locale: 'en-US' });
      try {
        await assertRefused(again, /已被使用/, /already used/);
        await shot(again, 'party-guest-refused-en');
      } finally {
        await again.context().close();
      }
    });

    await t.test('a supervisor watches the three of them: a named tile for each', async () => {
      const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { viewport: DESK });
      try {
        await waitView(sup, 'sup');
        // The live table names the colleague under the attending doctor.
        // (by name once the page has read the staff registry)
        await sup.waitForFunction((v) => /Dr d2 · Consulting doctor/.test(document.querySelector(`#live-body tr[data-visit="${v}"] .party-lines`)?.textContent || ''), visitId);
        await sup.click(`#live-body button[data-visit="${visitId}"]`);
        await sup.waitForSelector('#watch:not([hidden])');
        await sup.waitForFunction(() => {
          const t = [...document.querySelectorAll('#watch-grid .tile-p')];
          return t.length === 3 && t.every((x) => x.querySelector('video').videoWidth > 0);
        }, null, { timeout: 60000 });
        for (const locale of ['zh-CN', 'en-US']) {
          await setLanguage(sup, locale);
          const got = await sup.$$eval('#watch-grid .tile-p', (n) => n.map((x) => [x.querySelector('.tile-name').textContent, x.querySelector('.tile-role').textContent]).sort());
          const w = ROLE_WORDS[locale];
          assert.deepEqual(got, [['Dr d1', w.attending], ['Dr d2', w.consulting], ['王芳 Wang Fang', w.patient]].sort());
          assert.deepEqual((await rawWords(sup, locale)).bad, []);
          await shot(sup, `party3-supervisor-${locale === 'zh-CN' ? 'zh' : 'en'}`);
        }
        assert.deepEqual(sup.errors, []);
      } finally {
        await sup.context().close();
      }
    });

    await t.test('the attending removes the colleague', async () => {
      await setLanguage(doctor, 'en-US');
      await doctor.click('#people-list li[data-participant="d2"] button');
      await confirm(doctor);
      await colleague.waitForSelector('#wrap-card:not([hidden])');
      assert.match(await colleague.textContent('#wrap-text'), /removed from the visit/);
      await assertTilesPlay(patient, 'patient', 1);
      await assertTilesPlay(doctor, 'doctor', 1);
    });

    await t.test('an expired link and a withdrawn one are refused on screen', async () => {
      const expired = await patient.evaluate((v) => window.tm.sig.request('guest.link_create', { visit_id: v, name: 'son', ttl_s: 1 }), visitId);
      await new Promise((r) => setTimeout(r, 2500));
      let g = await openGuest(browser, new URL(expired.url, srv.base()).href);
      try {
        await assertRefused(g, /已过期/, /expired/);
      } finally {
        await g.context().close();
      }
      await setLanguage(patient, 'en-US');
      const url = await guestLink(patient, 'neighbour');
      await patient.click('#fam-links li[data-state="open"]:has-text("neighbour") button');
      await patient.waitForSelector('#fam-links li[data-state="revoked"]:has-text("neighbour")');
      await patient.waitForSelector('#fam-links li[data-state="expired"]:has-text("son")');
      g = await openGuest(browser, url);
      try {
        await assertRefused(g, /撤回/, /withdrew/);
      } finally {
        await g.context().close();
      }
    });

    await t.test('the doctor ends the visit', async () => {
      await doctor.click('#end-btn');
      await confirm(doctor);
      await waitView(patient, 'ended');
    });

    for (const p of [patient, doctor, colleague]) if (p) assert.deepEqual(p.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

// Staff of a kind, registered through the REST API.
async function addStaff(srv, id, name, dept, kind) {
  const r = await srv.api('POST', '/api/v1/doctors', { id, name, dept_id: dept, licence_no: `LIC-${id}`, kind }, srv.admin);
  assert.equal(r.status, 201, r.text);
}

test('inviting an interpreter and a nurse: declined, cancelled, accepted, left', { timeout: 300000 }, async (t) => {
  const srv = await startHospital();
  await addStaff(srv, 'i1', '翻译小周 Zhou', 'cardio', 'interpreter');
  await addStaff(srv, 'n1', '护士小林 Lin', 'cardio', 'nurse');
  const browser = await launch();
  let doctor, interp, nurse, patient;
  try {
    doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { viewport: DESK });
    interp = await openPage(browser, srv, 'doctor.html', 'i1', 'doctor', { viewport: DESK, locale: 'zh-CN' });
    nurse = await openPage(browser, srv, 'doctor.html', 'n1', 'doctor', { viewport: DESK });
    await doctorOnDuty(doctor);
    await doctorOnDuty(interp);
    await doctorOnDuty(nurse);
    // The patient without a browser: the invitations need no media.
    patient = await srv.client('p-inv', 'patient', { name: '赵六 Zhao' });
    const consent = await patient.request('consent.get', {});
    const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: { version: consent.version, recording: true } });
    await doctor.waitForSelector('#offer:not([hidden])');
    await doctor.click('#offer-accept');
    await doctor.waitForSelector('#invite-box:not([hidden])');

    const invite = async (kind, id) => {
      await doctor.selectOption('#inv-kind', kind);
      await doctor.click('#inv-form button[type="submit"]');
      await doctor.waitForSelector(`#staff-list li[data-staff="${id}"] button:not([disabled])`);
      await doctor.click(`#staff-list li[data-staff="${id}"] button`);
      await doctor.waitForSelector(`#inv-pending li`);
    };

    await t.test('the interpreter declines: the doctor is told', async () => {
      await invite('interpreter', 'i1');
      assert.match(await doctor.textContent('#staff-list li[data-staff="i1"]'), /Interpreter/);
      await interp.waitForSelector('#invited:not([hidden])');
      assert.match(await interp.textContent('#invited-desc'), /邀请您以翻译身份加入问诊/);
      assert.match(await interp.textContent('#invited-countdown'), /剩余 \d+ 秒应答/);
      assert.deepEqual((await rawWords(interp, 'zh-CN')).bad, []);
      await shot(interp, 'party-invited-interpreter-zh');
      await interp.click('#invited-decline');
      await doctor.waitForSelector('.toast:has-text("declined the invitation")');
      await doctor.waitForSelector('#inv-pending li', { state: 'detached' });
    });

    await t.test('the doctor cancels the nurse\'s invitation: the nurse\'s card goes, saying so', async () => {
      await invite('nurse', 'n1');
      await nurse.waitForSelector('#invited:not([hidden])');
      assert.match(await nurse.textContent('#invited-desc'), /as a nurse/);
      await doctor.click('#inv-pending li button');
      await nurse.waitForSelector('#invited', { state: 'hidden' });
      await nurse.waitForSelector('.toast:has-text("withdrawn by the doctor")');
      await doctor.waitForSelector('.toast:has-text("cancelled")');
      assert.deepEqual((await rawWords(nurse, 'en-US')).bad, []);
    });

    await t.test('the interpreter accepts, takes part in their role and leaves without ending the visit', async () => {
      await invite('interpreter', 'i1');
      await interp.waitForSelector('#invited:not([hidden])');
      await interp.click('#invited-accept');
      await interp.waitForSelector('#visit:not([hidden])');
      // Their own notice first, the hospital's text from the server, before any media.
      await interp.waitForSelector('dialog.confirm[open]');
      assert.match(await interp.textContent('#confirm-text'), /参与视频问诊须知.*录像/s);
      const notices = () => srv.sql(`SELECT role, version, session_id FROM consents WHERE visit_id = '${ci.visit_id}' AND kind = 'interpreter'`);
      assert.deepEqual(notices(), []);
      await shot(interp, 'party-interpreter-notice-zh');
      await confirm(interp);
      for (let i = 0; i < 100 && !notices().length; i++) await interp.waitForTimeout(100);
      const [accepted] = notices();
      assert.equal(accepted.role, 'interpreter');
      assert.equal(accepted.version, consent.version);
      assert.match(accepted.session_id, /\S/);
      await interp.waitForFunction(() => document.querySelectorAll('#people-list li').length === 3);
      assert.equal(await interp.textContent('#my-role'), '我的身份：翻译');
      assert.equal(await interp.isHidden('#end-card'), true);
      assert.equal(await interp.isHidden('#note-card'), true);
      assert.equal(await interp.isVisible('#leave-btn'), true);
      assert.equal(await interp.$$eval('#people-list button', (b) => b.length), 0);
      const people = await interp.textContent('#people-list');
      assert.match(people, /赵六 Zhao.*患者/s);
      assert.match(people, /Dr d1.*医生/s);
      assert.match(people, /翻译小周 Zhou（我）.*翻译/s);
      assert.deepEqual((await rawWords(interp, 'zh-CN')).bad, []);
      await shot(interp, 'party-interpreter-visit-zh');
      await doctor.waitForFunction(() => document.querySelectorAll('#people-list li').length === 3);
      await doctor.waitForSelector('#people-list li[data-participant="i1"] button');
      await shot(doctor, 'party-doctor-people-en');
      await interp.click('#leave-btn');
      await confirm(interp);
      await interp.waitForSelector('#wrap-card:not([hidden])');
      assert.match(await interp.textContent('#wrap-text'), /您已退出问诊/);
      await doctor.waitForFunction(() => document.querySelectorAll('#people-list li').length === 2);
      assert.equal(await doctor.isVisible('#end-btn'), true);
      await patient.waitFor('visit.participants', (m) => m.visit_id === ci.visit_id && m.participants.length === 2 && !m.participants.some((p) => p.id === 'i1'));
    });

    for (const p of [doctor, interp, nurse]) assert.deepEqual(p.errors, []);
  } finally {
    if (patient) await patient.close();
    await browser.close();
    await srv.stop();
  }
});
