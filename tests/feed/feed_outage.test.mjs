// feed_outage.test.mjs - the regulator is down for 30 s while visits go on;
// when it comes back everything arrives, once after de-duplication, in order
// per visit.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import fs from 'node:fs';
import { startRegulator } from './regulator.mjs';
import { checkVisits, startHarness, sleep, tmpDir } from './lib.mjs';

const SECRET = 'outage-secret';

test('an outage of 30 s, then recovery, delivers everything in order', { timeout: 120000 }, async () => {
  const root = tmpDir();
  const reg = await startRegulator({ secret: SECRET });
  try {
    const args = [
      '--data-dir', path.join(root, 'd'),
      '--feed-url', reg.url,
      '--feed-secret', SECRET,
      '--feed-batch', '20',
      '--feed-backoff-base-ms', '100',
      '--feed-backoff-max-ms', '2000',
      '--feed-timeout-ms', '1000',
      '--log-level', 'error',
    ];
    // A visit every 500 ms for 40 s: before, during and after the outage.
    const h = startHarness(args, ['trickle', '80', '500', 'drain', 'status']);
    await h.waitLine(/^ready$/);
    await reg.waitFor(() => reg.stats().unique >= 10, 10000, 'first events');
    await reg.down();
    const during = reg.stats().unique;
    await sleep(30000);
    assert.equal(reg.stats().unique, during, 'nothing arrives while down');
    assert.ok(h.visits.length > during / 5 + 30, `visits went on during the outage (${h.visits.length})`);
    await reg.up();
    assert.equal(await h.exited, 0, h.stderr);
    assert.equal(h.visits.length, 80);
    assert.equal(reg.stats().unique, 400);
    assert.deepEqual(reg.stats().orderViolations, []);
    assert.equal(reg.stats().badSignatures, 0);
    checkVisits(assert, reg.byVisit(), h.visits);
    assert.equal(h.status.dead, 0);
    assert.ok(h.status.failed_attempts > 0);
  } finally {
    await reg.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
