// web_placement.test.mjs - a visit across two nodes (issue 19, docs/cluster.md
// "One waiting room across nodes"), in headless chromium against two real
// telemed-servers on loopback sharing one test-started PostgreSQL: the
// patient's page checks in on node A, the only doctor's page is on node B.
// B offers A's patient (one offer in the store), the doctor accepts, the
// visit is held by B and the patient's page follows session.move to B
// without an error or a "moved" notice; both pages play the other side's
// video through B, the doctor ends the visit, the patient rates it. The
// visit record is complete and each outbox event of the visit is there
// once. The patient's page loaded again through A (as a load balancer may
// send it) is sent to B (session.move, holder_changed) and goes on with the
// visit there. The patient's page after the move shows no raw code or null in
// English or Chinese. Then, with node B carrying two more live visits than
// A, the visit a doctor on B accepts runs on A, and the doctor's page moves
// there instead (the patient's page in Chinese).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, setupHospital, waitUntil } from '../integration/lib/server.mjs';
import { startPg } from '../integration/lib/pg.mjs';
import { WEB_ROOT, freePort, launch, openPage, patientCheckin, doctorOnDuty, confirm, waitView,
  remoteVideo, rawWords, setLanguage } from '../web/lib.mjs';

const MOVED = /another server|另一台服务器/;

async function node(name, port, otherPort, secret, db) {
  return startServer({ secret, db, consent: true, args: ['--web-root', WEB_ROOT,
    '--port', String(port), '--node-id', name, '--cluster-urls', `https://127.0.0.1:${otherPort}`] });
}

async function videoPlays(page, who) {
  await page.waitForFunction(() => window.tm.call && window.tm.call.remote.videoWidth > 0, null, { timeout: 60000 })
    .catch(async () => assert.fail(`${who}: no remote video (${JSON.stringify(await remoteVideo(page))})`));
  const a = await remoteVideo(page);
  await waitUntil(`${who} decodes frames`, async () => (await remoteVideo(page)).frames > a.frames, 30000);
}

test('a doctor on node B takes a patient who waits on node A; the patient page moves to B', { timeout: 280000 }, async (t) => {
  const pg = startPg();
  const secret = randomBytes(16).toString('hex');
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await node('node-a', portA, portB, secret, pg.url);
  const b = await node('node-b', portB, portA, secret, pg.url);
  // One store: B reads the same hospital, and hears of the shifts made
  // through A's REST API on the bus (shifts:node-a).
  const admin = await setupHospital(a);
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await a.stop().catch(() => {});
    await b.stop().catch(() => {});
    pg.stop();
  });
  const doctor = await openPage(browser, b, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
  const patient = await openPage(browser, a, 'patient.html', 'p-move', 'patient', { viewport: { width: 412, height: 860 } });
  // Every banner text the patient page shows, to find an alarming one.
  await patient.evaluate(() => {
    window.seenBanners = [];
    const conn = document.querySelector('#conn-text');
    new MutationObserver(() => window.seenBanners.push(conn.textContent)).observe(conn, { childList: true, characterData: true, subtree: true });
  });
  let visitId;

  await t.test('B offers the patient waiting on A; the doctor accepts; the page moves to B', async () => {
    await doctorOnDuty(doctor);
    await patientCheckin(patient);
    assert.equal(await patient.evaluate(() => document.body.dataset.node), 'node-a');
    visitId = await patient.evaluate(() => window.tm.state.visitId);
    await doctor.waitForSelector('#offer:not([hidden])');
    assert.equal(a.sql(`SELECT count(*) AS n FROM offers WHERE visit_id = '${visitId}'`)[0].n, 1);
    const clicked = Date.now();
    await doctor.click('#offer-accept');
    await patient.waitForFunction(() => document.body.dataset.node === 'node-b' && document.body.dataset.conn === 'open');
    await waitView(patient, 'visit');
    console.log(`# patient page on node B, in the visit, ${Date.now() - clicked} ms after the accept click`);
    assert.equal(a.sql(`SELECT media_node FROM visits WHERE id = '${visitId}'`)[0].media_node, 'node-b');
    assert.match(b.logs, new RegExp(`ev=cluster.visit_adopted visit=${visitId}`));
    assert.match(a.logs, new RegExp(`ev=cluster.user_moved visit=${visitId} user=patient:p-move to=node-b reason=visit_placed`));
    const banners = await patient.evaluate(() => window.seenBanners.join(' | '));
    assert.doesNotMatch(banners, /maintenance|维护|reconnect|重新连接/i, banners);
    const toasts = await patient.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map((n) => n.textContent).join(' | '));
    assert.doesNotMatch(toasts, MOVED, toasts);
  });

  await t.test('both pages play the other side\'s video through B', async () => {
    await videoPlays(patient, 'patient');
    await videoPlays(doctor, 'doctor');
  });

  await t.test('the patient page loaded again through node A is sent to B and goes on with the visit', async () => {
    // The page was loaded from A: a reload connects to A again.
    assert.equal(new URL(patient.url()).host, `127.0.0.1:${a.port}`);
    await patient.reload();
    await patient.waitForFunction(() => document.body.dataset.node === 'node-b' && document.body.dataset.conn === 'open');
    await waitView(patient, 'visit');
    assert.equal(await patient.evaluate(() => window.tm.state.visitId), visitId);
    await waitUntil('A logs the move', () => new RegExp(`ev=cluster.user_moved visit=${visitId} user=patient:p-move to=node-b reason=holder_changed`).test(a.logs), 10000);
    assert.doesNotMatch(a.logs, /ev=cluster\.hello_elsewhere/);
    const toasts = await patient.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map((n) => n.textContent).join(' | '));
    assert.doesNotMatch(toasts, MOVED, toasts);
    await videoPlays(patient, 'patient after the reload');
    await videoPlays(doctor, 'doctor after the patient\'s reload');
  });

  await t.test('the moved patient page shows no raw code in either language', async () => {
    for (const locale of ['en-US', 'zh-CN']) {
      await setLanguage(patient, locale);
      assert.deepEqual((await rawWords(patient, locale)).bad, [], locale);
    }
    await setLanguage(patient, 'en-US');
  });

  await t.test('the doctor ends the visit on B, the patient rates it; the record is whole', async () => {
    await doctor.fill('#note-text', 'Tension headache, follow-up in two weeks.');
    await doctor.fill('#note-code', 'G44.2');
    await doctor.click('#note-save');
    await doctor.waitForFunction(() => /Draft saved/.test(document.querySelector('#note-status').textContent));
    await doctor.selectOption('#end-reason', 'completed');
    await doctor.click('#end-btn');
    await confirm(doctor);
    await waitView(patient, 'ended');
    await patient.click('.stars label:has(input[value="5"])');
    await patient.click('#rate-form button[type="submit"]');
    await patient.waitForSelector('#rate-thanks:not([hidden])');

    const r = await a.api('GET', `/api/v1/visits/${visitId}`, undefined, admin);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.state, 'ended');
    assert.equal(r.json.doctor_id, 'd1');
    const roles = r.json.participants.map((p) => p.role).sort();
    assert.ok(roles.includes('patient') && roles.includes('doctor'), JSON.stringify(r.json.participants));
    assert.equal(r.json.rating.score, 5);
    const types = a.sql(`SELECT type FROM outbox WHERE visit_id = '${visitId}' ORDER BY seq`).map((x) => x.type);
    assert.ok(types.length >= 3, types.join(','));
    // One recording.available per finished recording (the patient's reload
    // above starts a new one), every other event once.
    const recordings = a.sql(`SELECT id, state FROM recordings WHERE visit_id = '${visitId}' AND state <> 'recording'`);
    assert.equal(types.filter((x) => x === 'recording.available').length, recordings.length,
      `${types.join(',')} for ${JSON.stringify(recordings)}`);
    const once = types.filter((x) => x !== 'recording.available');
    assert.equal(new Set(once).size, once.length, `an event twice: ${types.join(',')}`);
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  });
});

test('a visit runs on the patient\'s less loaded node; the doctor page moves there', { timeout: 280000 }, async (t) => {
  const pg = startPg();
  const secret = randomBytes(16).toString('hex');
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await node('node-a', portA, portB, secret, pg.url);
  await setupHospital(a, { doctors: [['d1', 'cardio'], ['d2', 'cardio'], ['d3', 'cardio']] });
  const b = await node('node-b', portB, portA, secret, pg.url);
  const browser = await launch();
  const clients = [];
  t.after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await browser.close();
    await a.stop().catch(() => {});
    await b.stop().catch(() => {});
    pg.stop();
  });
  // Two visits live on B (protocol clients: this part is about the pages below).
  for (const [d, p] of [['d2', 'p-x'], ['d3', 'p-y']]) {
    const doc = await b.client(d, 'doctor');
    const pat = await b.client(p, 'patient');
    clients.push(doc, pat);
    await doc.request('doctor.status', { status: 'available' });
    const { version } = await pat.request('consent.get', {});
    const ci = await pat.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: { version, recording: true } });
    await doc.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
    await doc.request('visit.accept', { visit_id: ci.visit_id });
  }
  await waitUntil('B\'s heartbeat counts its two visits',
    () => a.sql("SELECT visits FROM nodes WHERE id = 'node-b'")[0]?.visits === 2, 30000);

  const doctor = await openPage(browser, b, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
  const patient = await openPage(browser, a, 'patient.html', 'p-zh', 'patient', { locale: 'zh-CN' });
  await doctorOnDuty(doctor);
  await patientCheckin(patient);
  const visitId = await patient.evaluate(() => window.tm.state.visitId);
  await doctor.waitForSelector('#offer:not([hidden])');
  await doctor.click('#offer-accept');
  await doctor.waitForFunction(() => document.body.dataset.node === 'node-a' && document.body.dataset.conn === 'open');
  await waitView(patient, 'visit');
  await doctor.waitForSelector('#visit:not([hidden])');
  assert.equal(a.sql(`SELECT media_node FROM visits WHERE id = '${visitId}'`)[0].media_node, 'node-a');
  assert.match(a.logs, new RegExp(`ev=cluster.visit_started_here visit=${visitId} doctor=d1 node=node-a`));
  assert.match(b.logs, new RegExp(`ev=cluster.user_moved visit=${visitId} user=doctor:d1 to=node-a reason=visit_placed`));
  assert.equal(await patient.evaluate(() => document.body.dataset.node), 'node-a');
  await videoPlays(patient, 'patient');
  await videoPlays(doctor, 'doctor');
  assert.deepEqual((await rawWords(patient, 'zh-CN')).bad, []);
  assert.deepEqual((await rawWords(doctor, 'en-US')).bad, []);
  const toasts = await doctor.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map((n) => n.textContent).join(' | '));
  assert.doesNotMatch(toasts, MOVED, toasts);

  await doctor.selectOption('#end-reason', 'completed');
  await doctor.click('#end-btn');
  await confirm(doctor);
  await waitView(patient, 'ended');
  assert.equal(a.sql(`SELECT state FROM visits WHERE id = '${visitId}'`)[0].state, 'ended');
  assert.deepEqual(patient.errors, []);
  assert.deepEqual(doctor.errors, []);
});
