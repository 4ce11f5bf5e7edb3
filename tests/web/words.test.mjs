// words.test.mjs - what people read on the pages, in zh-CN and in English,
// through a whole visit: no `null`, no `{placeholder}`, no raw server code
// (end reasons, offer outcomes, media kinds) on any screen; the waiting
// room never contradicts itself; a reload mid-visit keeps the chat and the
// patient's name; the doctor's End visit is on screen at 1280×800; the
// supervisor's live table does not break its cells; wrong-role links are
// refused with a way out; a patient without a camera reads what is so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, patientCheckin, doctorOnDuty, confirm } from './lib.mjs';

const PHONE = { width: 360, height: 740 };
const DESK = { width: 1280, height: 800 };
const LOCALES = ['zh-CN', 'en-US'];

// Codes the server sends that must never reach a reader as they are.
const SNAKE = /\b(?:patient_left|doctor_left|grace_expired|terminate_and_refer|no_show|technical_failure|off_duty|follow_up|poor_quality|recording_failed|offer_timeouts?|long_wait|feed_backlog)\b/;
// In the Chinese UI, English code words are raw codes too.
const ZH_RAW = /\b(?:completed|accepted|declined|timeout|withdrawn|cancelled|disconnected|audio|video|waiting|active|ended|offered|available|away|Unmute|Camera|Participant)\b/;

// The words on screen, with the names controls give screen readers.
const screenText = (page) => page.evaluate(() => {
  const labels = [...document.querySelectorAll('[aria-label], [title]')]
    .filter((e) => e.offsetParent !== null)
    .map((e) => `${e.getAttribute('aria-label') || ''} ${e.getAttribute('title') || ''}`);
  return `${document.body.innerText}\n${labels.join('\n')}`;
});

async function assertWords(page, where, locale) {
  const text = await screenText(page);
  const bad = [];
  for (const re of [/\bnull\b/, /\bundefined\b/, /\bNaN\b/, /\{[a-z_]+\}/, SNAKE]) {
    const m = re.exec(text);
    if (m) bad.push(m[0]);
  }
  if (locale === 'zh-CN') {
    const m = ZH_RAW.exec(text);
    if (m) bad.push(m[0]);
  }
  assert.deepEqual(bad, [], `${where} (${locale}) shows raw words ${JSON.stringify(bad)} in:\n${text.slice(0, 1500)}`);
}

const zh = (locale) => locale === 'zh-CN';
const tag = (locale) => (zh(locale) ? 'zh' : 'en');

for (const locale of LOCALES) {
  test(`the words of a whole visit (${locale}): waiting room, offer, reload, end, records`, { timeout: 300000 }, async () => {
    const srv = await startHospital({ args: ['--offer-timeout-s', '5'] });
    const r = await srv.api('POST', '/api/v1/doctors', { id: 'd1', name: '李医生 Dr Li', dept_id: 'cardio', licence_no: 'LIC-d1', title: '主治医师 Attending' }, srv.admin);
    assert.equal(r.status, 201);
    const browser = await launch();
    try {
      const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { locale, viewport: DESK });
      await waitView(sup, 'sup');
      const patient = await openPage(browser, srv, 'patient.html', 'p-words', 'patient', { locale, viewport: PHONE, extra: { name: '张三丰 Zhang Sanfeng-Longname' } });
      // The device check measures the way to the hospital and gives a verdict.
      await patient.waitForSelector('#dev-net[data-verdict]', { timeout: 30000 });
      assert.match(await patient.textContent('#dev-net'), zh(locale) ? /到医院的网络：(良好|一般|较差)（往返 \d+ 毫秒/ : /Network to the hospital: (Good|Fair|Poor) \(round trip \d+ ms/);
      await assertWords(patient, 'device check', locale);
      await shot(patient, `patient-device-${tag(locale)}`);
      await patientCheckin(patient);

      // Nobody on duty: no figure pretending to be an estimate, and what to do.
      await patient.waitForSelector('#wait-nodoc:not([hidden])');
      assert.equal(await patient.textContent('#wait-estimate'), zh(locale) ? '暂时无法估计' : 'Not known yet');
      assert.match(await patient.textContent('#wait-nodoc'), zh(locale) ? /保留您的位置/ : /keep your place/);
      assert.match(await patient.textContent('#wait-elapsed'), zh(locale) ? /已等待 \d+:\d\d/ : /Waiting for \d+:\d\d/);
      await assertWords(patient, 'waiting room, nobody on duty', locale);
      // The whole name fits on a phone's top bar.
      const who = await patient.$eval('#who', (e) => ({ sw: e.scrollWidth, cw: e.clientWidth, text: e.textContent }));
      assert.equal(who.text, '张三丰 Zhang Sanfeng-Longname');
      assert.ok(who.sw <= who.cw, `name cut off: ${who.sw} > ${who.cw}`);
      await shot(patient, `patient-waiting-nodoc-${tag(locale)}`);

      // Offered: the card has no stray words; the patient is told who comes.
      const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale, viewport: DESK });
      await doctorOnDuty(doctor);
      await doctor.waitForSelector('#offer:not([hidden])');
      const tags = await doctor.textContent('#offer-tags');
      assert.doesNotMatch(tags, /null/);
      assert.match(tags, zh(locale) ? /无预约/ : /Walk-in/);
      await assertWords(doctor, 'offer card', locale);
      await shot(doctor, `doctor-offer-${tag(locale)}`);
      await patient.waitForSelector('#wait-offered:not([hidden])');
      assert.equal(await patient.textContent('#wait-estimate'), zh(locale) ? '即将开始' : 'Now');
      assert.match(await patient.textContent('#wait-offered'), zh(locale) ? /李医生 Dr Li（主治医师 Attending）即将为您接诊/ : /李医生 Dr Li \(主治医师 Attending\) is about to see you/);
      assert.equal(await patient.isHidden('#wait-nodoc'), true);
      await assertWords(patient, 'waiting room, offered', locale);
      await shot(patient, `patient-offered-${tag(locale)}`);

      // Not answered: the doctor reads why, in words.
      await doctor.waitForSelector(`.toast:has-text("${zh(locale) ? '超时未应答' : 'not answered in time'}")`, { timeout: 30000 });
      await assertWords(doctor, 'offer lapsed', locale);

      await doctor.click('#status-group label:has(input[value="available"])');
      await doctor.waitForSelector('#offer:not([hidden])', { timeout: 20000 });
      await doctor.click('#offer-accept');
      await waitView(patient, 'visit');
      await patient.waitForSelector('#visit-with:not([hidden])');
      assert.match(await patient.textContent('#visit-with'), /李医生 Dr Li/);

      // Chat, then both reload: the history and the patient's name stay.
      await patient.fill('.chat-input', 'words one');
      await patient.press('.chat-input', 'Enter');
      await doctor.waitForSelector('.chat-list li:has-text("words one")');
      await doctor.fill('.chat-input', 'words two');
      await doctor.press('.chat-input', 'Enter');
      await patient.waitForSelector('.chat-list li:has-text("words two")');
      await doctor.reload();
      await waitView(doctor, 'ws');
      await doctor.waitForSelector('.chat-list li:has-text("words two")');
      await doctor.waitForSelector('.chat-list li:has-text("words one")');
      assert.equal(await doctor.isHidden('.chat-empty'), true);
      await doctor.waitForFunction(() => /Zhang Sanfeng/.test(document.querySelector('#visit-h').textContent));
      await patient.reload();
      await waitView(patient, 'visit');
      await patient.waitForSelector('.chat-list li:has-text("words one")');
      await patient.waitForSelector('.chat-list li:has-text("words two")');
      assert.equal(await patient.isHidden('.chat-empty'), true);

      // The doctor's workstation in a visit: busy, timed, End visit in view.
      await doctor.waitForSelector('#status-busy:not([hidden])');
      assert.equal(await doctor.textContent('#status-busy'), zh(locale) ? '问诊中' : 'In a visit');
      await doctor.waitForSelector('#visit-timer:not([hidden])');
      // The visit timer runs from the accept, also after the reload.
      await doctor.waitForFunction(() => /\d\d:(0[2-9]|[1-5]\d)$/.test(document.querySelector('#visit-timer').textContent), null, { timeout: 30000 });
      await doctor.waitForSelector('#patient-card:not([hidden])');
      assert.match(await doctor.textContent('#patient-card'), zh(locale) ? /此前没有在您这里就诊/ : /No earlier visit with you/);
      // On the phone: the doctor's video can fill the screen.
      assert.equal(await patient.textContent('.controls button:has-text("全屏"), .controls button:has-text("Full screen")'), zh(locale) ? '全屏' : 'Full screen');
      const end = await doctor.$eval('#end-btn', (e) => e.getBoundingClientRect().toJSON());
      assert.ok(end.bottom <= 800 && end.top >= 0, `End visit is off screen at 1280×800: ${JSON.stringify(end)}`);
      // and stays there while the doctor scrolls down to the note.
      await doctor.evaluate(() => document.querySelector('#note-code').scrollIntoView({ block: 'end' }));
      const endScrolled = await doctor.$eval('#end-btn', (e) => e.getBoundingClientRect().toJSON());
      assert.ok(endScrolled.bottom <= 800 && endScrolled.top >= 0, `End visit scrolled away: ${JSON.stringify(endScrolled)}`);
      await doctor.evaluate(() => window.scrollTo(0, 0));
      await doctor.waitForFunction(() => document.querySelector('.stage-msg').hidden || document.querySelector('.stage-msg').textContent !== '');
      // A note template in the doctor's language.
      await doctor.selectOption('#note-template', 'soap');
      assert.match(await doctor.inputValue('#note-text'), zh(locale) ? /^主诉：\n客观所见/ : /^Subjective: \nObjective/);
      await assertWords(doctor, 'doctor in a visit', locale);
      await assertWords(patient, 'patient in a visit', locale);
      await shot(doctor, `doctor-visit-${tag(locale)}`);
      await shot(patient, `patient-visit-${tag(locale)}`);

      // The supervisor's live table at 1280 px: names, short ids, one line.
      await sup.waitForSelector('#live-body tr[data-state="active"] .watch-btn');
      const row = await sup.$eval('#live-body tr[data-state="active"]', (tr) => ({
        text: tr.innerText,
        btn: tr.querySelector('.watch-btn').getBoundingClientRect().height,
        state: tr.children[4].getBoundingClientRect().height,
        line: parseFloat(getComputedStyle(tr).lineHeight) || 24,
      }));
      assert.match(row.text, /李医生 Dr Li/);
      assert.doesNotMatch(row.text, /v-[0-9a-f]{8}-[0-9a-f]{4}/, 'full visit UUID in the table');
      assert.ok(row.btn <= 44, `watch button text wraps: ${row.btn}px`);
      assert.ok(row.state <= 2 * row.line + 16, `state cell wraps: ${row.state}px`);
      // Who is on duty, by name and in words.
      const roster = await sup.textContent('#roster-body');
      assert.match(roster, /李医生 Dr Li/);
      assert.match(roster, zh(locale) ? /可接诊|暂离/ : /Available|Away/);
      // Watching: the chat from before the watch is there, sound can be muted.
      await sup.click('#live-body tr[data-state="active"] .watch-btn');
      await sup.waitForSelector('#watch-chat li:has-text("words one")');
      await sup.waitForSelector('#watch-chat li:has-text("words two")');
      assert.match(await sup.textContent('#watch-h'), /李医生 Dr Li/);
      assert.equal(await sup.textContent('#watch-sound'), zh(locale) ? '关闭声音' : 'Mute sound');
      await sup.click('#watch-sound');
      assert.equal(await sup.getAttribute('#watch-sound', 'aria-pressed'), 'true');
      await sup.waitForSelector('#watch-grid video', { timeout: 30000 });
      await assertWords(sup, 'supervisor watching', locale);
      await shot(sup, `supervisor-watch-${tag(locale)}`);
      await sup.click('#unwatch');
      await sup.waitForSelector('#watch', { state: 'hidden' });
      // Alerts as the server sends them (protocol.md, overview) read as words.
      const alerts = await sup.evaluate(() => {
        const ov = { ...window.tm.state.overview };
        const v = ov.visits[0].id;
        ov.alerts = [{ kind: 'poor_quality', visit_id: v, stream_kind: 'video', loss_pct: 12.5, frozen: true },
          { kind: 'recording_failed', visit_id: v, reason: 'disk full' },
          { kind: 'feed_backlog', queue_depth: 7, oldest_undelivered_age_s: 90 }];
        window.tm.sig.dispatchEvent(new CustomEvent('overview', { detail: ov }));
        return document.querySelector('#alerts').innerText;
      });
      assert.match(alerts, zh(locale) ? /视频卡顿，视频丢包 12\.5%/ : /video froze, video loss 12\.5%/);
      assert.match(alerts, /7/);
      await assertWords(sup, 'supervisor live', locale);
      await shot(sup, `supervisor-live-${tag(locale)}`);

      // The follow-up the hospital books during the visit shows in the summary.
      const booked = await srv.api('POST', '/api/v1/appointments', { patient_id: 'p-words', dept_id: 'cardio', slot: new Date(Date.now() + 7 * 86400e3).toISOString() }, srv.admin);
      assert.equal(booked.status, 201);
      // End: the doctor's wrap-up and the patient's summary, rating skipped.
      await doctor.selectOption('#end-reason', 'completed');
      await doctor.click('#end-btn');
      await confirm(doctor);
      await doctor.waitForSelector('#wrap-card:not([hidden])');
      await waitView(patient, 'ended');
      await patient.waitForSelector('#end-summary:not([hidden])');
      const sum = await patient.textContent('#end-summary');
      assert.match(sum, /李医生 Dr Li/);
      assert.match(sum, zh(locale) ? /时长/ : /Duration/);
      await patient.waitForFunction(() => /Dept cardio/.test(document.querySelector('#end-summary').textContent) && document.querySelectorAll('#end-summary dt').length >= 5);
      assert.match(await patient.textContent('#end-summary'), zh(locale) ? /下次预约Dept cardio，/ : /Next appointmentDept cardio, /);
      await assertWords(doctor, 'doctor wrap-up', locale);
      await assertWords(patient, 'patient summary', locale);
      await shot(patient, `patient-ended-${tag(locale)}`);
      await patient.click('#rate-skip');
      await patient.waitForSelector('#rate-again:not([hidden])');
      await patient.click('#rate-again');
      await waitView(patient, 'checkin');

      // The review copy is made in the background after the visit; once it
      // is, the record plays it first.
      const last = (await srv.api('GET', '/api/v1/visits?limit=1', undefined, srv.admin)).json.visits[0];
      let record = null;
      for (const end = Date.now() + 180000; Date.now() < end;) {
        record = (await srv.api('GET', `/api/v1/visits/${last.id}`, undefined, srv.admin)).json;
        if (record.renditions?.some((x) => x.state === 'complete' || x.state === 'failed')) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(record.renditions[0]?.state, 'complete', JSON.stringify(record.renditions));
      // As long as the recording parts it was made from, laid end to end by
      // their start times.
      const parts = record.recordings.filter((r) => r.state === 'complete' || r.state === 'incomplete');
      const first = Math.min(...parts.map((r) => Date.parse(r.started_at)));
      const span = Math.max(...parts.map((r) => Date.parse(r.started_at) - first + r.duration_ms));
      assert.ok(Math.abs(record.renditions[0].duration_ms - span) < 1500,
        `rendition ${record.renditions[0].duration_ms} ms, recording parts span ${span} ms`);
      // The record: timeline, outcome, end reason, media in words.
      await sup.click('#tab-records');
      await sup.waitForSelector('#results-body tr');
      await sup.click('#results-body tr button');
      await sup.waitForSelector('#detail:not([hidden])');
      await sup.waitForFunction(() => !/Loading|加载中/.test(document.querySelector('#d-recording').textContent));
      // The review copy plays (the browser reads its length); the recording
      // is one click away.
      await sup.waitForFunction(() => document.querySelector('#d-review')?.duration > 0).catch(async (e) => {
        throw new Error(`no review copy playing for ${last.id}: ${await sup.innerHTML('#d-recording')}\n${e.message}`);
      });
      await assertWords(sup, 'review copy', locale);
      await sup.click('#d-evidence-play');
      await sup.waitForSelector('#d-recording-save');
      // The recording can be saved; the fetch behind it is in the audit log.
      assert.equal(await sup.textContent('#d-recording-save'), zh(locale) ? '下载录像' : 'Download recording');
      const [download] = await Promise.all([sup.waitForEvent('download'), sup.click('#d-recording-save')]);
      assert.match(download.suggestedFilename(), /^v-.*\.mkv$/);
      const audit = await srv.api('GET', '/api/v1/audit?actor=s1', undefined, srv.admin);
      assert.ok(audit.json.audit.some((e) => e.action === 'recording.fetch' && e.outcome === 'ok'), audit.text.slice(0, 300));
      const tl = await sup.textContent('#d-timeline');
      assert.match(tl, zh(locale) ? /超时未应答/ : /not answered in time/);
      assert.match(tl, zh(locale) ? /结束：已完成/ : /Ended: completed/);
      await assertWords(sup, 'visit record', locale);
      await shot(sup, `supervisor-record-${tag(locale)}`);
      for (const p of [patient, doctor, sup]) assert.deepEqual(p.errors, []);
    } finally {
      await browser.close();
      await srv.stop();
    }
  });
}

test('a link for another role is refused with a way to the right page, in both languages', { timeout: 120000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const cases = [['patient.html', 'd1', 'doctor', 'doctor.html'], ['doctor.html', 'p-x', 'patient', 'patient.html'],
      ['supervisor.html', 'p-x', 'patient', 'patient.html'], ['patient.html', 's1', 'supervisor', 'supervisor.html']];
    for (const locale of LOCALES) {
      for (const [file, sub, role, right] of cases) {
        const page = await openPage(browser, srv, file, sub, role, { locale, viewport: PHONE });
        await waitView(page, 'wrong-role');
        const text = await page.textContent('.fatal');
        assert.match(text, zh(locale) ? /此链接不能打开本页面/ : /does not open this page/);
        assert.match(text, new RegExp(zh(locale) ? { doctor: '医生', patient: '患者', supervisor: '督导' }[role] : role));
        assert.match(await page.getAttribute('#wrong-role-go', 'href'), new RegExp(`^${right}#token=`));
        await assertWords(page, `${role} link on ${file}`, locale);
        if (file === 'patient.html' && role === 'doctor') {
          await shot(page, `wrong-role-${tag(locale)}`);
          // Nothing was sent: no check-in happened with the doctor's link.
          assert.deepEqual(srv.sql('SELECT id FROM visits'), []);
          await page.click('#wrong-role-go');
          await waitView(page, 'ws');
        }
        assert.deepEqual(page.errors, []);
        await page.context().close();
      }
    }
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('a patient with a microphone but no camera: buttons and the doctor say so, in both languages', { timeout: 150000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'zh-CN', viewport: PHONE });
    await ctx.addInitScript(() => {
      const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = (c) => (c && c.video ? Promise.reject(new DOMException('no camera', 'NotFoundError')) : real({ audio: true }));
    });
    const patient = await ctx.newPage();
    patient.errors = [];
    patient.on('pageerror', (e) => patient.errors.push(String(e)));
    await patient.goto(`${srv.base()}/patient.html#token=${srv.token('p-voice', 'patient')}`);
    await patientCheckin(patient);
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale: 'zh-CN', viewport: DESK });
    await doctorOnDuty(doctor);
    await doctor.waitForSelector('#offer:not([hidden])');
    await doctor.click('#offer-accept');
    await waitView(patient, 'visit');
    const cam = '.controls button >> nth=1';
    assert.equal(await patient.isDisabled(cam), true);
    assert.equal(await patient.textContent(cam), '无摄像头');
    // The doctor is told the patient is on voice, not left "waiting for video".
    await doctor.waitForFunction(() => /仅语音/.test(document.querySelector('.stage-msg').textContent), null, { timeout: 60000 });
    // ... and the server, from what it receives, says so over the picture.
    await doctor.waitForSelector('.media-state[data-video="off"]:not([hidden]):has-text("仅语音")', { timeout: 30000 });
    await assertWords(patient, 'voice-only patient', 'zh-CN');
    await assertWords(doctor, 'doctor of a voice-only patient', 'zh-CN');
    // The supervisor's live table says so too.
    const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { locale: 'zh-CN', viewport: DESK });
    await waitView(sup, 'sup');
    await sup.waitForSelector('#live-body .q-cell [data-peer="patient"] .tag:has-text("仅语音")', { timeout: 30000 });
    assert.equal(await sup.$('#live-body .q-cell [data-peer="doctor"] .tag'), null);
    // An alert names the patient as audio-only, and only the patient.
    await sup.waitForSelector('#alerts li[data-kind="audio_only"]:has-text("患者")', { timeout: 30000 });
    assert.equal(await sup.$$eval('#alerts li[data-kind="audio_only"]', (l) => l.length), 1);
    await assertWords(sup, 'supervisor, voice-only patient', 'zh-CN');
    await shot(doctor, 'doctor-voice-only-zh');
    await patient.click('#lang-switch');
    await doctor.click('#lang-switch');
    assert.equal(await patient.textContent(cam), 'No camera');
    assert.match(await doctor.textContent('.stage-msg'), /voice only/);
    assert.equal(await doctor.textContent('.media-state'), 'Audio only');
    await sup.click('#lang-switch');
    await sup.waitForSelector('#alerts li[data-kind="audio_only"]:has-text("Patient: audio only")');
    await assertWords(sup, 'supervisor, voice-only patient', 'en-US');
    // A doctor who reloads is told again: the server repeats it to new media.
    await doctor.reload();
    await doctor.waitForSelector('.media-state[data-video="off"]:not([hidden]):has-text("Audio only")', { timeout: 30000 });
    await assertWords(patient, 'voice-only patient', 'en-US');
    assert.deepEqual(patient.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
