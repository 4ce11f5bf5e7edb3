// web_watch.test.mjs - a supervisor watches a visit another node holds
// (issue 19, docs/cluster.md "Estimates and the overview across nodes"), in
// headless chromium against two real telemed-servers on loopback sharing one
// test-started PostgreSQL. The visit runs on node B (its patient's and
// doctor's pages are there); the supervisor's page is on node A. A's
// overview row says in words which server holds it, in English and Chinese,
// at 360 and 1280 wide (screenshots), with no raw code or null; its watch
// button moves the page to B (session.move) and the watch plays both
// sides' video there. A logs the move and watches nothing itself. A guest
// link opened through A (where a load balancer may send it) moves the
// guest's page to B, where the link is used and the guest joins.
// A video wall with visits on both nodes stays on the node the page is on
// when the page changes node (it re-watches from that node's overview, and
// a wall tile's watch of the other node's visit moves nothing), while a
// watch of one visit still moves the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, setupHospital, waitUntil } from '../integration/lib/server.mjs';
import { startPg } from '../integration/lib/pg.mjs';
import { WEB_ROOT, freePort, launch, openPage, acceptedVisit, waitView, rawWords, setLanguage, shot, openGuest, joinGuest } from '../web/lib.mjs';

async function node(name, port, otherPort, secret, db) {
  return startServer({ secret, db, consent: true, args: ['--web-root', WEB_ROOT,
    '--port', String(port), '--node-id', name, '--cluster-urls', `https://127.0.0.1:${otherPort}`] });
}

const row = (visitId) => `#live-body tr[data-visit="${visitId}"]`;

test('a supervisor on node A sees where a visit of node B runs and watches it there', { timeout: 280000 }, async (t) => {
  const pg = startPg();
  const secret = randomBytes(16).toString('hex');
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await node('node-a', portA, portB, secret, pg.url);
  const b = await node('node-b', portB, portA, secret, pg.url);
  await setupHospital(a, { doctors: [['d1', 'cardio'], ['d2', 'cardio']] });
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await a.stop().catch(() => {});
    await b.stop().catch(() => {});
    pg.stop();
  });
  const doctor = await openPage(browser, b, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
  const patient = await openPage(browser, b, 'patient.html', 'p-watched', 'patient', { viewport: { width: 412, height: 860 } });
  let visitId;
  let sup;

  await t.test('the visit starts on node B', async () => {
    await acceptedVisit(patient, doctor);
    visitId = await patient.evaluate(() => window.tm.state.visitId);
    assert.equal(a.sql(`SELECT media_node FROM visits WHERE id = '${visitId}'`)[0].media_node, 'node-b');
  });

  await t.test('a guest link opened through node A brings the guest into the visit on B', async () => {
    const { code } = await patient.evaluate((id) => window.tm.sig.request('guest.link_create', { visit_id: id, name: 'daughter' }), visitId);
    const guest = await openGuest(browser, `${a.base()}/guest.html#code=${code}`);
    t.after(() => guest.context().close().catch(() => {}));
    await joinGuest(guest);
    await waitView(guest, 'visit', 60000);
    if (process.env.DEBUG_LOGS) console.log(a.logs.split('\n').filter((l) => /cluster|guest|hello|party/.test(l)).join('\n'), '\n----B\n', b.logs.split('\n').filter((l) => /cluster|guest|hello|party/.test(l)).join('\n'));
    assert.equal(await guest.evaluate(() => document.body.dataset.node), 'node-b');
    await waitUntil('A logs the guest\'s move', () => new RegExp(`ev=cluster.user_moved visit=${visitId} user=guest:- to=node-b reason=holder_changed`).test(a.logs), 10000);
    assert.equal(a.sql(`SELECT state FROM guest_links WHERE visit_id = '${visitId}'`)[0].state, 'used');
    assert.deepEqual((await rawWords(guest, 'zh-CN')).bad, []);
    assert.deepEqual(guest.errors, []);
  });

  await t.test('A\'s overview row says which server holds it, in both languages', async () => {
    sup = await openPage(browser, a, 'supervisor.html', 'sup-1', 'supervisor');
    await waitView(sup, 'sup', 60000);
    await sup.waitForSelector(`${row(visitId)} .node-tag[data-node="node-b"]`);
    for (const locale of ['en-US', 'zh-CN']) {
      await setLanguage(sup, locale);
      const text = await sup.textContent(`${row(visitId)} .node-tag`);
      assert.match(text, locale === 'zh-CN' ? /^在 node-b 节点$/ : /^on server node-b$/, text);
      // Its times are the visit's (not since 1970), as the store has them.
      const cells = await sup.locator(`${row(visitId)} td`).allTextContents();
      assert.doesNotMatch(cells.join(' | '), /\d{3,} h|\d{3,} 小时/, cells.join(' | '));
      const title = await sup.getAttribute(`${row(visitId)} .watch-btn`, 'title');
      assert.match(title, locale === 'zh-CN' ? /服务器 node-b/ : /server node-b/, title);
      for (const width of [360, 1280]) {
        await sup.setViewportSize({ width, height: 800 });
        await shot(sup, `cluster-watch-remote-${locale === 'zh-CN' ? 'zh' : 'en'}-${width}`);
        assert.deepEqual((await rawWords(sup, locale)).bad, [], `${locale} ${width}`);
      }
    }
    await setLanguage(sup, 'en-US');
    await sup.setViewportSize({ width: 1280, height: 800 });
  });

  await t.test('its watch button moves the page to B and plays both sides there', async () => {
    assert.equal(await sup.evaluate(() => document.body.dataset.node), 'node-a');
    // The table is drawn again every second: a click through the DOM does
    // not wait for a row that is never still on a loaded machine.
    await sup.evaluate((sel) => document.querySelector(sel).click(), `${row(visitId)} .watch-btn`);
    await sup.waitForFunction(() => document.body.dataset.node === 'node-b' && document.body.dataset.conn === 'open');
    await sup.waitForFunction((id) => window.tm.state.watching === id, visitId);
    await sup.waitForFunction(() => [...document.querySelectorAll('#watch-grid video')].filter((v) => v.videoWidth > 0).length >= 2, null, { timeout: 60000 });
    await waitUntil('A logs the move', () => new RegExp(`ev=cluster.user_moved visit=${visitId} user=supervisor:sup-1 to=node-b`).test(a.logs), 10000);
    assert.match(b.logs, new RegExp(`ev=visit.watch visit=${visitId} supervisor=sup-1`));
    assert.doesNotMatch(a.logs, new RegExp(`ev=visit.watch visit=${visitId}`));
    // On B the visit is its own: a plain watch button, no server named.
    await sup.waitForSelector(`${row(visitId)} .watch-btn[disabled]`);
    assert.equal(await sup.locator(`${row(visitId)} .node-tag`).count(), 0);
    await shot(sup, 'cluster-watch-moved-en-1280');
    for (const locale of ['en-US', 'zh-CN']) {
      await setLanguage(sup, locale);
      assert.deepEqual((await rawWords(sup, locale)).bad, [], locale);
    }
    const toasts = await sup.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map((n) => n.textContent).join(' | '));
    assert.doesNotMatch(toasts, /Cannot watch|无法旁听/, toasts);
    assert.deepEqual(sup.errors, []);
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  });

  await t.test('a wall with visits on both nodes stays on its node; a watch of one still moves', async () => {
    // A second visit, on A, through the protocol: its doctor and patient are there.
    const d2 = await a.client('d2', 'doctor');
    await d2.request('doctor.status', { status: 'available' });
    const p2 = await a.client('p-wall', 'patient');
    const { version } = await p2.request('consent.get', { kind: 'patient' });
    const ci = await p2.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: { version, recording: true } });
    await d2.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
    await d2.request('visit.accept', { visit_id: ci.visit_id });
    await p2.waitFor('visit.state', (m) => m.state === 'active');
    const onA = ci.visit_id;
    assert.equal(a.sql(`SELECT media_node FROM visits WHERE id = '${onA}'`)[0].media_node, 'node-a');

    // The page, on B, turns the wall on: B's own visit has a tile, A's not.
    await sup.waitForSelector(`${row(onA)} .node-tag[data-node="node-a"]`);
    await sup.evaluate(() => document.querySelector('#wall-toggle').click());
    await sup.waitForSelector(`.wall-tile[data-visit="${visitId}"]`);
    assert.equal(await sup.locator(`.wall-tile[data-visit="${onA}"]`).count(), 0);
    await sup.evaluate(() => {
      window.nodesSeen = [document.body.dataset.node];
      new MutationObserver(() => {
        const n = document.body.dataset.node;
        if (n !== window.nodesSeen.at(-1)) window.nodesSeen.push(n);
      }).observe(document.body, { attributes: true, attributeFilter: ['data-node'] });
    });
    const watchMoves = () => (a.logs.match(new RegExp(`ev=cluster.user_moved visit=${visitId} user=supervisor:sup-1 `, 'g')) || []).length;
    const movesBefore = watchMoves();

    // The page leaves B as on a drain notice (a drain of B itself keeps a
    // supervisor who watches until the visits end) and comes to A.
    await sup.evaluate(() => window.tm.sig.leave());
    await sup.waitForFunction(() => document.body.dataset.node === 'node-a' && document.body.dataset.conn === 'open');
    // The wall starts again from A's overview: A's visit has a tile, B's none.
    await sup.waitForSelector(`.wall-tile[data-visit="${onA}"]`);
    // A fresh overview, and every watch the wall asked for answered: a move
    // of any of them would have come before its answer.
    await sup.evaluate(async () => {
      const before = window.tm.state.overview;
      await window.tm.sig.request('overview.subscribe', {});
      while (window.tm.state.overview === before || window.tm.state.wall.pending.size > 0) await new Promise((r) => setTimeout(r, 50));
    });
    assert.deepEqual(await sup.evaluate(() => window.nodesSeen), ['node-b', 'node-a']);
    assert.equal(await sup.locator(`.wall-tile[data-visit="${visitId}"]`).count(), 0);
    assert.equal(watchMoves(), movesBefore, 'A sent the wall nowhere');

    // The watch of B's one visit from A still moves the page there.
    await sup.evaluate((sel) => document.querySelector(sel).click(), `${row(visitId)} .watch-btn`);
    await sup.waitForFunction((id) => document.body.dataset.node === 'node-b' && window.tm.state.watching === id, visitId);
    assert.deepEqual(await sup.evaluate(() => window.nodesSeen), ['node-b', 'node-a', 'node-b']);
    assert.equal(watchMoves(), movesBefore + 1);
    assert.deepEqual(sup.errors, []);
    await p2.close();
    await d2.close();
  });
});
