// web_failover.test.mjs - the pages move to another node (issue 19,
// docs/protocol.md "Several nodes"), in headless chromium against two real
// telemed-servers on loopback, each on its own SQLite file, sharing the
// token secret and naming each other in cluster_urls:
// - node A is drained while two patients wait on it (one page in English,
//   one in Chinese): both pages connect to node B by themselves, say so in
//   their language (no raw code), and offer the check-in again there;
// - node B is killed (kill -9) under a page: the page fails to come back
//   to B, tries A (restarted meanwhile) and says it moved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, setupHospital } from '../integration/lib/server.mjs';
import { WEB_ROOT, freePort, launch, openPage, patientCheckin, waitView } from '../web/lib.mjs';

const MOVED = {
  'en-US': 'You are now connected to another server of the hospital.',
  'zh-CN': '您已连接到医院的另一台服务器。',
};

async function node(name, port, otherPort, secret) {
  const srv = await startServer({ secret, consent: true, args: ['--web-root', WEB_ROOT,
    '--port', String(port), '--node-id', name, '--cluster-urls', `https://127.0.0.1:${otherPort}`] });
  srv.admin = await setupHospital(srv);
  return srv;
}

async function movedTo(page, nodeName, locale) {
  await page.waitForFunction((n) => document.body.dataset.node === n && document.body.dataset.conn === 'open',
    nodeName, { timeout: 60000 });
  await page.waitForFunction((text) => [...document.querySelectorAll('#toasts .toast')]
    .some((n) => n.textContent === text), MOVED[locale], { timeout: 20000 });
  const shown = await page.textContent('body');
  assert.doesNotMatch(shown, /node_draining|server\.draining|4503/);
}

test('pages move to the other node when theirs drains or dies', { timeout: 280000 }, async (t) => {
  const secret = randomBytes(16).toString('hex');
  const [portA, portB] = [await freePort(), await freePort()];
  let a = await node('node-a', portA, portB, secret);
  const b = await node('node-b', portB, portA, secret);
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await a.stop().catch(() => {});
    await b.stop().catch(() => {});
  });
  const en = await openPage(browser, a, 'patient.html', 'p-en', 'patient');
  const zh = await openPage(browser, a, 'patient.html', 'p-zh', 'patient', { locale: 'zh-CN' });
  await patientCheckin(en);
  await patientCheckin(zh);
  assert.equal(await en.evaluate(() => document.body.dataset.node), 'node-a');

  await t.test('node A drains: both pages move to B and say so in their language', async () => {
    const r = await a.api('POST', '/api/v1/admin/drain', {}, a.admin);
    assert.equal(r.status, 202, r.text);
    await movedTo(en, 'node-b', 'en-US');
    await movedTo(zh, 'node-b', 'zh-CN');
    // B has no record of the wait on A (its own SQLite file): check in there.
    await waitView(en, 'checkin');
    await waitView(zh, 'checkin');
    assert.equal((await a.exited).code, 0, 'A exits 0 once drained (no live visit)');
  });

  await t.test('node B is killed: the page tries A again and says it moved', async () => {
    await a.stop();
    a = await node('node-a', portA, portB, secret); // A back after its upgrade
    await b.stop({ hard: true });
    await movedTo(en, 'node-a', 'en-US');
    await waitView(en, 'checkin');
    assert.deepEqual(en.errors, []);
  });
});
