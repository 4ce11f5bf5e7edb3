// wall.test.mjs - the supervisor's video wall at 1280x800 in Chinese and
// English: two live visits between webrtcbin peers (the reference client,
// real video both ways), shown at once as small silent tiles whose drawn
// size goes to the server (media.view); a click opens one with sound and
// lets the other go; the roster names each doctor's current visit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital } from '../integration/lib/server.mjs';
import { runClient } from '../webrtc/lib_client.mjs';
import { WEB_ROOT, launch, openPage, shot, waitView, rawWords } from './lib.mjs';

const DOCTORS = [['d-li', '李医生 Dr Li'], ['d-wang', '王医生 Dr Wang']];
const PATIENTS = [['p-wall-1', '张三 Zhang San'], ['p-wall-2', '李四 Li Si']];

// Two visits with media flowing: each doctor alone on duty takes the next.
async function twoLiveVisits(srv, peers) {
  for (let i = 0; i < 2; i++) {
    const run = (sub, role, extra, args) => {
      const h = runClient(['--url', srv.url(), '--token', srv.token(sub, role, extra), '--role', role,
        '--duration', '600', ...args], { name: sub });
      peers.push(h);
      return h;
    };
    const doctor = run(DOCTORS[i][0], 'doctor', {}, []);
    await doctor.waitEvent('hello_ok', 60000);
    const patient = run(PATIENTS[i][0], 'patient', { name: PATIENTS[i][1] }, ['--dept', 'cardio']);
    await patient.waitEvent('first_video', 90000);
    await doctor.waitEvent('first_video', 90000);
  }
}

// Every media.view the page sends, recorded as it goes out.
function recordViews(page) {
  return page.evaluate(() => {
    const sig = window.tm.sig;
    const send = sig.request.bind(sig);
    window.viewsSent = [];
    sig.request = (type, body) => {
      if (type === 'media.view') window.viewsSent.push(body);
      return send(type, body);
    };
  });
}

const wallVideos = (page) => page.$$eval('#wall-grid .wall-tile', (tiles) => tiles.map((n) => ({
  visit: n.dataset.visit,
  videos: [...n.querySelectorAll('video')].map((v) => ({ w: v.videoWidth, muted: v.muted, shownW: v.getBoundingClientRect().width })),
})));

test('supervisor video wall: live visits in small tiles, one opened with sound', { timeout: 300000 }, async () => {
  // The reference peers send no informed consent: the server does not ask.
  const srv = await startServer({ args: ['--web-root', WEB_ROOT] });
  const admin = await setupHospital(srv, { depts: ['cardio'], doctors: [] });
  const now = Date.now();
  for (const [id, name] of DOCTORS) {
    await srv.api('POST', '/api/v1/doctors', { id, name, dept_id: 'cardio', licence_no: `LIC-${id}` }, admin);
    const r = await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: 'cardio', capacity: 1,
      start: new Date(now - 3600e3).toISOString(), end: new Date(now + 3600e3).toISOString() }, admin);
    assert.equal(r.status, 201, r.text);
  }
  const peers = [];
  const browser = await launch();
  try {
    await twoLiveVisits(srv, peers);
    for (const locale of ['zh-CN', 'en-US']) {
      const zh = locale === 'zh-CN';
      const sub = `s-wall-${zh ? 'zh' : 'en'}`;
      const sup = await openPage(browser, srv, 'supervisor.html', sub, 'supervisor', { locale });
      await waitView(sup, 'sup');
      await recordViews(sup);

      // The roster: each doctor with the visit they are in now (the
      // overview names nobody: the patient by id until a watch names them).
      await sup.waitForSelector('#roster-body tr[data-doctor="d-li"] .roster-visits li');
      assert.match(await sup.textContent('#roster-body tr[data-doctor="d-li"]'), /李医生 Dr Li.*p-wall-1 · /);
      assert.match(await sup.textContent('#roster-body tr[data-doctor="d-wang"]'), /王医生 Dr Wang.*p-wall-2 · /);

      // The wall: both visits, every video decoding, all silent.
      await sup.waitForFunction(() => !document.querySelector('#wall-toggle').disabled);
      assert.equal(await sup.textContent('#wall-toggle'), zh ? '显示 2 个进行中的问诊' : 'Show 2 live visit(s)');
      await sup.click('#wall-toggle');
      await sup.waitForFunction(() => {
        const v = [...document.querySelectorAll('#wall-grid .wall-tile video')];
        return v.length === 4 && v.every((x) => x.videoWidth > 0);
      }, null, { timeout: 60000 });
      const tiles = await wallVideos(sup);
      assert.equal(tiles.length, 2);
      for (const tile of tiles) for (const v of tile.videos) {
        assert.equal(v.muted, true, 'the wall is silent');
        assert.ok(v.shownW > 0 && v.shownW < 400, `a wall video is small: ${v.shownW}px`);
      }
      // Each person's drawn size went to the server, small, for both visits.
      await sup.waitForFunction(() => new Set(window.viewsSent.filter((v) => v.width > 0).map((v) => `${v.visit_id} ${v.participant_id}`)).size === 4);
      const views = await sup.evaluate(() => window.viewsSent);
      for (const v of views) assert.ok(v.width <= 480 && v.height <= 360, `a small view: ${JSON.stringify(v)}`);
      assert.deepEqual(new Set(views.map((v) => v.visit_id)), new Set(tiles.map((x) => x.visit)));
      await sup.waitForFunction(() => /李医生 Dr Li · 张三 Zhang San/.test(document.querySelector('#wall-grid').textContent));
      await sup.waitForFunction(() => /李四 Li Si/.test(document.querySelector('#roster-body tr[data-doctor="d-wang"]').textContent));
      const audit = srv.sql(`SELECT target FROM audit_log WHERE actor_id='${sub}' AND action='visit.watch' AND outcome='ok'`);
      assert.deepEqual(new Set(audit.map((r) => r.target)), new Set(tiles.map((x) => x.visit)));
      const words = await rawWords(sup, locale);
      assert.deepEqual(words.bad, [], words.text);
      await shot(sup, `supervisor-wall-${zh ? 'zh' : 'en'}`);

      // A tile opened: that visit large with sound; the other one let go.
      const [open] = tiles;
      const other = tiles.find((x) => x.visit !== open.visit);
      await sup.click(`#wall-grid .wall-tile[data-visit="${open.visit}"] .wall-open`);
      await sup.waitForSelector('#watch:not([hidden])');
      await sup.waitForSelector('#watch-wall:not([hidden])');
      await sup.waitForFunction(() => {
        const v = [...document.querySelectorAll('#watch-grid video')];
        return v.length >= 2 && v.every((x) => x.videoWidth > 0 && !x.muted);
      }, null, { timeout: 60000 });
      assert.equal(await sup.$$eval('#wall-grid .wall-tile', (n) => n.length), 0);
      const unwatched = srv.sql(`SELECT target FROM audit_log WHERE actor_id='${sub}' AND action='visit.unwatch'`).map((r) => r.target);
      assert.deepEqual(unwatched, [other.visit], 'only the visit not opened is let go');
      if (zh) await shot(sup, 'supervisor-wall-open-zh');

      // And back to the wall.
      await sup.click('#watch-wall');
      await sup.waitForSelector('#watch', { state: 'hidden' });
      await sup.waitForFunction(() => document.querySelectorAll('#wall-grid .wall-tile').length === 2, null, { timeout: 30000 });
      await sup.click('#wall-toggle');
      await sup.waitForFunction(() => document.querySelectorAll('#wall-grid .wall-tile').length === 0);
      assert.deepEqual(sup.errors, []);
      await sup.context().close();
    }
  } finally {
    for (const p of peers) p.kill();
    await browser.close();
    await srv.stop();
  }
});
