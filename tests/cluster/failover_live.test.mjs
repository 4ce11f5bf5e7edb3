// failover_live.test.mjs - a node dies during live visits (issue 19,
// docs/cluster.md "What happens on failure"). Two real telemed-servers on
// loopback share a test-started PostgreSQL and name each other in
// cluster_urls. On node A: two live visits between headless-chromium pages
// (real camera and microphone from chromium's fake devices, real media
// through A's SFU) and ten patients waiting behind them. A is killed with
// kill -9. Then:
// - the four pages reconnect by themselves, to B, into the same visits, and
//   video flows again both ways (frames counted from each page's getStats);
// - the ten waiting patients, back through B, keep their order;
// - each visit's record lists two recording segments, A's (closed by B's
//   takeover: incomplete, hashed) and B's (complete once the visit ends),
//   each with its node and time span, both files on disk with the hash the
//   record says; the review rendition is made of both.
// Feed events are counted, not checked for duplicates (outbox leasing is
// another part of issue 19).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, setupHospital, Client, waitUntil } from '../integration/lib/server.mjs';
import { startPg } from '../integration/lib/pg.mjs';
import { WEB_ROOT, freePort, launch, openPage, acceptedVisit, remoteVideo } from '../web/lib.mjs';

const CONSENT = { version: '2026.1', recording: true };
const WAITING = 10;

async function node(name, port, otherPort, secret, pg, keyFile) {
  return startServer({ secret, consent: true, db: pg.url, args: ['--web-root', WEB_ROOT,
    '--port', String(port), '--node-id', name, '--cluster-urls', `https://127.0.0.1:${otherPort}`,
    '--grace-s', '300', '--recording-key-file', keyFile, '--review-render-max', '2'] });
}

// The other side's video decodes new frames on the page (a cap, not a target).
async function videoFlows(page, capMs = 90000) {
  const end = Date.now() + capMs;
  let last = await remoteVideo(page);
  while (Date.now() < end) {
    await page.waitForTimeout(1000);
    const now = await remoteVideo(page);
    if (now.width > 0 && now.frames > last.frames && now.state === 'connected') return now.frames;
    last = now;
  }
  const why = await page.evaluate(() => ({ view: document.body.dataset.current, node: document.body.dataset.node,
    visit: window.tm.state.visitId, peer: window.tm.call && window.tm.call.peer
      ? { pc: window.tm.call.peer.pc && window.tm.call.peer.pc.connectionState, recovering: !!window.tm.call.peer.recovery,
        server: window.tm.call.peer.serverState } : null }));
  assert.fail(`video does not flow: ${JSON.stringify(last)} ${JSON.stringify(why)}`);
}

async function liveVisit(browser, srv, doctorId, patientId) {
  const doctor = await openPage(browser, srv, 'doctor.html', doctorId, 'doctor');
  const patient = await openPage(browser, srv, 'patient.html', patientId, 'patient');
  await acceptedVisit(patient, doctor);
  const visitId = await patient.evaluate(() => window.tm.state.visitId);
  return { doctor, patient, visitId, doctorId };
}

const ms = (at) => (typeof at === 'number' ? at : Date.parse(at));
const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('a node dies during live visits: they resume on the other node, the recording in a second segment', { timeout: 900000 }, async (t) => {
  const pg = startPg();
  const keys = mkdtempSync(join(tmpdir(), 'telemed-keys-'));
  const keyFile = join(keys, 'recording.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 }); // the same on every node
  const secret = randomBytes(16).toString('hex');
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await node('node-a', portA, portB, secret, pg, keyFile);
  await setupHospital(a, { doctors: [['d1', 'cardio'], ['d2', 'cardio']] });
  const b = await node('node-b', portB, portA, secret, pg, keyFile);
  const browser = await launch();
  const waiting = [];
  t.after(async () => {
    for (const c of waiting) c.ws.terminate();
    await browser.close();
    await a.stop().catch(() => {});
    await b.stop().catch(() => {});
    if (existsSync(a.dataDir)) rmSync(a.dataDir, { recursive: true, force: true });
    pg.stop();
    rmSync(keys, { recursive: true, force: true });
  });

  const visits = [await liveVisit(browser, a, 'd1', 'p-live-1'), await liveVisit(browser, a, 'd2', 'p-live-2')];
  for (const v of visits) {
    await videoFlows(v.patient);
    await videoFlows(v.doctor);
  }
  const order = [];
  for (let i = 0; i < WAITING; i++) {
    const c = await a.client(`p-wait-${i}`, 'patient');
    const ci = await c.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: CONSENT });
    waiting.push(c);
    order.push(ci.visit_id);
  }
  const held = () => a.sql(`SELECT id, media_node FROM visits WHERE state IN ('waiting','active') ORDER BY id`);
  assert.ok(held().every((r) => r.media_node === 'node-a'), JSON.stringify(held()));
  const firstSegments = a.sql(`SELECT visit_id, node_id, segment, state FROM recordings ORDER BY visit_id`);
  assert.deepEqual(firstSegments.map((r) => [r.node_id, r.segment, r.state]),
    [['node-a', 1, 'recording'], ['node-a', 1, 'recording']]);

  await a.stop({ hard: true, keep: true });
  const killedAt = Date.now();

  await t.test('the waiting patients come back through B in the same order', async () => {
    for (const c of waiting) c.ws.terminate();
    waiting.length = 0;
    for (let i = 0; i < WAITING; i++) {
      const c = new Client(b.url());
      await c.open();
      c.hello = await c.request('hello', { token: b.token(`p-wait-${i}`, 'patient'), ua: 'node-test/1' });
      waiting.push(c);
      assert.equal(c.hello.resumed, true);
      assert.equal(c.hello.state.visit.visit_id, order[i]);
    }
    // Every one counts the same nine or fewer ahead of them, whichever node
    // they were on: the queue is the store's.
    for (let i = 0; i < WAITING; i++) {
      await waitUntil(`position ${i + 1} of p-wait-${i}`, () => {
        const c = waiting[i];
        const pushed = c.pushes.filter((m) => m.type === 'queue.position').pop();
        return (pushed ? pushed.position : c.hello.state.position) === i + 1;
      }, 60000);
    }
  });

  await t.test('the live visits resume on B: the pages reconnect there, video flows both ways', async () => {
    for (const v of visits) {
      for (const page of [v.patient, v.doctor]) {
        await page.waitForFunction(() => document.body.dataset.node === 'node-b' && document.body.dataset.conn === 'open',
          null, { timeout: 120000 });
        assert.equal(await page.evaluate(() => window.tm.state.visitId), v.visitId);
      }
      assert.equal(await v.patient.evaluate(() => document.body.dataset.current), 'visit');
    }
    const resumedAfterMs = Date.now() - killedAt;
    for (const v of visits) {
      await videoFlows(v.patient);
      await videoFlows(v.doctor);
    }
    console.log(`# pages back on node B within ${resumedAfterMs} ms of the kill; video flows again`);
    const rows = b.sql(`SELECT id, state, media_node FROM visits WHERE id IN ('${visits[0].visitId}','${visits[1].visitId}') ORDER BY id`);
    assert.deepEqual(rows.map((r) => [r.state, r.media_node]), [['active', 'node-b'], ['active', 'node-b']]);
  });

  await t.test('each visit ends on B with two recording segments, both files hashed as recorded', async () => {
    for (const v of visits) {
      const doctor = await b.client(v.doctorId, 'doctor'); // takes over the page's session
      await doctor.request('visit.note', { visit_id: v.visitId, text: 'n', diagnosis_code: 'I10', sign: true });
      await doctor.request('visit.end', { visit_id: v.visitId, reason: 'completed' });
      await doctor.close();
    }
    for (const v of visits) {
      // A segment may have more than one part (a sender whose streams came
      // after its file started gets the next part, media.h): every row of
      // segment 1 is A's, every row of segment 2 is B's.
      const rows = await waitUntil(`closed segments of ${v.visitId}`, async () => {
        const r = await b.api('GET', `/api/v1/visits/${v.visitId}`, undefined, b.token('sup-1', 'supervisor'));
        assert.equal(r.status, 200, r.text);
        const recs = JSON.parse(r.text).recordings;
        return recs.some((x) => x.segment === 2) && recs.every((x) => x.sha256) ? recs : null;
      }, 120000);
      const seg1 = rows.filter((x) => x.segment === 1), seg2 = rows.filter((x) => x.segment === 2);
      assert.equal(seg1.length + seg2.length, rows.length, JSON.stringify(rows));
      assert.ok(seg1.length >= 1 && seg1.every((x) => x.node_id === 'node-a' && x.state === 'incomplete'), JSON.stringify(seg1));
      assert.ok(seg2.length >= 1 && seg2.every((x) => x.node_id === 'node-b' && x.state === 'complete'), JSON.stringify(seg2));
      const seg1End = Math.max(...seg1.map((x) => ms(x.finished_at)));
      const seg2Start = Math.min(...seg2.map((x) => ms(x.started_at)));
      assert.ok(seg1End <= seg2Start, `segment 1 ends ${seg1End}, segment 2 starts ${seg2Start}`);
      for (const x of rows) {
        assert.ok(existsSync(x.path), x.path);
        assert.equal(sha256(x.path), x.sha256, `segment ${x.segment} part ${x.part} of ${v.visitId}`);
        assert.ok(x.size_bytes > 0);
      }
      assert.equal(new Set(rows.map((x) => x.path)).size, rows.length);
      v.recordings = rows.length;
    }
  });

  await t.test('the review rendition is made of both segments', async () => {
    // Its job holds every part of every segment (the render itself, parts
    // placed on one timeline, is the review tests'): a render under the
    // sanitizers at SCHED_IDLE takes minutes, so this waits for it to start.
    for (const v of visits) {
      const rend = await waitUntil(`rendition of ${v.visitId} started`, () => {
        const r = b.sql(`SELECT state, parts, error FROM renditions WHERE visit_id = '${v.visitId}' AND state <> 'queued' ORDER BY queued_at DESC`);
        return r.length ? r[0] : null;
      }, 300000);
      assert.ok(['rendering', 'complete'].includes(rend.state), JSON.stringify(rend));
      assert.equal(rend.parts, v.recordings);
    }
    const feed = b.sql(`SELECT type, count(*) AS n FROM outbox WHERE visit_id IN ('${visits[0].visitId}','${visits[1].visitId}') GROUP BY type ORDER BY type`);
    console.log(`# feed events of the two visits: ${feed.map((r) => `${r.type}=${r.n}`).join(' ')}`);
  });
});
