// tianjin.test.mjs - the tianjin delivery profile (server/feed_tianjin.c)
// against the stand-in platform (tianjin_platform.mjs): the real store and
// the real profile in tianjin_harness, SM4-encrypted, SM3-signed requests
// over HTTP on 127.0.0.1. The nightly run is started by the harness's `run`
// step (an admin's "run now") or by an upload time a few seconds ahead.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startPlatform } from './tianjin_platform.mjs';
import { runHarness, startHarness, tmpDir } from './lib.mjs';

const APP_KEY = 'telemed-test-key';
const APP_SECRET = 'bbf1dd188b8b4629853f06f118d11e4a';
const ORGAN_ID = '12120000MB0000000X';

function harnessBin() {
  const build = process.env.TELEMED_BUILD_DIR;
  if (!build) throw new Error('set TELEMED_BUILD_DIR (ctest does)');
  return path.join(build, 'tianjin_harness');
}

// The platform's clock (UTC+8) `s` seconds from now, as HH:MM:SS.
function platformClock(s) {
  return new Date(Date.now() + s * 1000 + 8 * 3600 * 1000).toISOString().slice(11, 19);
}

function args(root, platform, extra = []) {
  return ['--data-dir', path.join(root, 'd'), '--feed-profiles', 'tianjin', '--tianjin-url', platform.url,
    '--tianjin-app-key', APP_KEY, '--tianjin-app-secret', APP_SECRET, '--tianjin-organ-id', ORGAN_ID,
    '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '400', '--log-level', 'error', ...extra];
}

async function withPlatform(fn) {
  const root = tmpDir('tm-tianjin-');
  const platform = await startPlatform({ appKey: APP_KEY, appSecret: APP_SECRET, organId: ORGAN_ID });
  try {
    await fn(root, platform);
  } finally {
    await platform.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

// Every visit went out under its own id as a business id, and nothing else did.
function sameIds(map, ids, what) {
  assert.deepEqual([...map.keys()].sort(), [...ids].sort(), what);
}

test('a night of visits: every record accepted once, ratings after their visit, a check-in',
  { timeout: 60000 }, async () => {
    await withPlatform(async (root, platform) => {
      const h = await runHarness(args(root, platform, ['--tianjin-batch', '4', '--tianjin-upload-at', '23:59:59']),
        ['visits', '9', 'run', 'drain', 'status'], harnessBin());
      assert.equal(h.visits.length, 9);
      sameIds(platform.state.visits, h.visits, 'visit records');
      sameIds(platform.state.ratings, h.visits, 'rating records');
      for (const id of h.visits) {
        assert.equal(platform.state.visits.get(id), 1, `visit ${id} once`);
        assert.equal(platform.state.ratings.get(id), 1, `rating ${id} once`);
      }
      assert.equal(platform.state.ratingBeforeVisit, 0);
      assert.deepEqual(platform.state.authFailures, []);
      assert.deepEqual(platform.state.rejectedBatches, []);
      assert.ok(platform.state.checkins.length >= 1, 'checked in');
      assert.equal(h.status.delivered, 18);
      assert.equal(h.status.dead, 0);
      assert.equal(h.status.checkins, h.status.days);
      // A second run of the same night sends nothing again.
      const again = await runHarness(args(root, platform), ['run', 'drain', 'status'], harnessBin());
      assert.ok(again.lines.includes('run 0'), 'nothing new staged');
      for (const id of h.visits) assert.equal(platform.state.visits.get(id), 1, `still once: ${id}`);
    });
  });

test('a bad record is isolated: dead letter names the field, the rest delivered', { timeout: 60000 }, async () => {
  await withPlatform(async (root, platform) => {
    const h = await runHarness(args(root, platform, ['--tianjin-upload-at', '23:59:59']),
      ['visits', '5', 'badvisit', 'denied', 'visits', '3', 'run', 'drain', 'status'], harnessBin());
    const bad = h.lines.find((l) => l.startsWith('badvisit ')).slice(9);
    const denied = h.lines.find((l) => l.startsWith('denied ')).slice(7);
    assert.equal(h.visits.length, 8);
    sameIds(platform.state.visits, h.visits, 'good visits delivered, and only they');
    sameIds(platform.state.ratings, h.visits, 'their ratings');
    // Caught locally: never sent.
    const local = h.dead.find((d) => d.buss_id === bad);
    assert.match(local.last_error, /missing field mainDiagnoseCode/);
    // Refused by the platform inside a batch: found by splitting the batch.
    const refused = h.dead.find((d) => d.buss_id === denied);
    assert.match(refused.last_error, /patientCertID is not registered/);
    assert.equal(h.dead.length, 2);
    const sizes = platform.state.rejectedBatches.map((b) => b.size);
    assert.ok(sizes[0] > 1 && sizes.at(-1) === 1, `rejected batches shrink to the one record: ${sizes}`);
    assert.equal(h.status.held, 2, 'ratings of the two dead visits wait for them');
    assert.equal(platform.state.ratingBeforeVisit, 0);
  });
});

test('an outage across the upload time: sent when the platform is back, still once', { timeout: 90000 }, async () => {
  await withPlatform(async (root, platform) => {
    platform.mode = 'down';
    const h = startHarness(args(root, platform, ['--tianjin-upload-at', platformClock(3)]),
      ['visits', '4', 'drain', 'status'], harnessBin());
    await h.waitLine(/^ready$/);
    const before = platform.state.requests;
    // The upload time passes while the platform is down: a few probes, nothing accepted.
    await platform.waitFor(() => platform.state.requests >= before + 3, 30000, 'probes during the outage');
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(platform.state.visits.size, 0);
    platform.mode = 'ok';
    assert.equal(await h.exited, 0, h.stderr);
    sameIds(platform.state.visits, h.visits, 'visit records');
    sameIds(platform.state.ratings, h.visits, 'rating records');
    for (const id of h.visits) assert.equal(platform.state.visits.get(id), 1, `once: ${id}`);
    assert.equal(h.status.delivered, 8);
    assert.equal(h.status.checkins, h.status.days);
  });
});

test('kill -9 during a batch: nothing lost, no record under a new business id', { timeout: 90000 }, async () => {
  await withPlatform(async (root, platform) => {
    // The platform keeps the first batch but never answers: the sender dies
    // not knowing whether it arrived.
    platform.hangNextRecords = true;
    const a = args(root, platform, ['--tianjin-batch', '4', '--tianjin-upload-at', '23:59:59']);
    const h = startHarness(a, ['visits', '10', 'run', 'serve'], harnessBin());
    await platform.waitFor(() => platform.state.hung === 1, 30000, 'the batch in flight');
    h.proc.kill('SIGKILL');
    assert.equal(await h.exited, 'SIGKILL');
    const resent = [...platform.state.visits.keys()];
    assert.equal(resent.length, 4);
    const h2 = await runHarness(a, ['drain', 'status'], harnessBin());
    sameIds(platform.state.visits, h.visits, 'every visit, under its own business id');
    sameIds(platform.state.ratings, h.visits, 'every rating');
    for (const id of h.visits) {
      const times = platform.state.visits.get(id);
      assert.equal(times, resent.includes(id) ? 2 : 1, `visit ${id}: the unanswered batch is sent again`);
      assert.equal(platform.state.ratings.get(id), 1);
    }
    assert.equal(h2.status.delivered, 20);
    assert.equal(h2.status.pending, 0);
  });
});

test('after a stop over several upload times the missed days are staged and checked in, once each',
  { timeout: 60000 }, async () => {
    await withPlatform(async (root, platform) => {
      // A day staged long ago, then nothing: the next start catches up the
      // last tianjin_catchup_days days, not every day since.
      const old = new Date(Date.now() + 8 * 3600e3 - 20 * 86400e3).toISOString().slice(0, 10);
      const h = await runHarness(args(root, platform, ['--tianjin-upload-at', '00:00:00', '--tianjin-catchup-days', '3']),
        ['visits', '2', 'run', old, 'drain', 'status'], harnessBin());
      assert.equal(h.status.days, 1 + 3, 'the old day and the three latest');
      assert.equal(h.status.checkins, 4);
      assert.equal(platform.state.checkins.length, 4);
      sameIds(platform.state.visits, h.visits, 'yesterday\'s visits');
      const again = await runHarness(args(root, platform, ['--tianjin-upload-at', '00:00:00', '--tianjin-catchup-days', '3']),
        ['drain', 'status'], harnessBin());
      assert.equal(again.status.days, 4, 'nothing staged twice');
      assert.equal(platform.state.checkins.length, 4, 'no second check-in');
    });
  });
