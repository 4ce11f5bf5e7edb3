// feed_crash.test.mjs - kill -9 of the process that owns the store and the
// feed, in the middle of delivery, then a restart: nothing is lost, events
// repeat only by id; the NDJSON file sink never keeps a torn line.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startRegulator } from './regulator.mjs';
import { checkVisits, runHarness, startHarness, tmpDir, VISIT_TYPES } from './lib.mjs';

const SECRET = 'crash-secret';

test('kill -9 during HTTP delivery, then restart: nothing lost', { timeout: 120000 }, async () => {
  const root = tmpDir();
  // A slow regulator (each answer 30 ms) so the kill lands mid-stream,
  // sometimes after the regulator recorded a batch but before the feed
  // marked it delivered.
  const reg = await startRegulator({ secret: SECRET, delayMs: 30 });
  try {
    const args = ['--data-dir', path.join(root, 'd'), '--feed-url', reg.url, '--feed-secret', SECRET,
      '--feed-batch', '5', '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '500', '--log-level', 'error'];
    const visits = [];
    for (let round = 0; round < 3; round++) {
      const h = startHarness(args, ['visits', '40', 'serve']);
      await h.waitLine(/^ready$/);
      const before = reg.stats().unique;
      await reg.waitFor(() => reg.stats().unique >= before + 40, 60000, 'some delivery');
      h.proc.kill('SIGKILL');
      assert.equal(await h.exited, 'SIGKILL');
      visits.push(...h.visits);
      assert.ok(reg.stats().unique < visits.length * 5, 'killed before the queue drained');
    }
    reg.delayMs = 0;
    const h = await runHarness(args, ['drain', 'status']);
    assert.equal(visits.length, 120);
    assert.equal(reg.stats().unique, 600);
    assert.deepEqual(reg.stats().orderViolations, []);
    checkVisits(assert, reg.byVisit(), visits);
    assert.equal(h.status.queue_depth, 0);
    assert.equal(h.status.delivered, 600);
  } finally {
    await reg.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

function readNdjson(dir) {
  const files = fs.readdirSync(dir).filter((f) => /^events-\d{4}-\d\d-\d\d\.ndjson$/.test(f));
  const events = [];
  for (const f of files) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    assert.ok(text === '' || text.endsWith('\n'), `${f} ends with a complete line`);
    for (const line of text.split('\n').slice(0, -1)) events.push(JSON.parse(line)); // throws on a torn line
  }
  return events;
}

test('NDJSON sink: every event, no torn line, across kill -9', { timeout: 120000 }, async () => {
  const root = tmpDir();
  const dataDir = path.join(root, 'd');
  try {
    const args = ['--data-dir', dataDir, '--feed-batch', '3', '--log-level', 'error'];
    const visits = [];
    for (let round = 0; round < 3; round++) {
      const h = startHarness(args, ['trickle', '1000', '1', 'serve']);
      await h.waitLine(/^ready$/);
      // A count of visits, not a time: a loaded machine makes fewer per second.
      // The count differs per round so the kills land at different depths.
      await h.waitVisits(4 + 2 * round);
      h.proc.kill('SIGKILL');
      await h.exited;
      visits.push(...h.visits);
    }
    // What a kill inside write() would leave: half a line at the end.
    const feedDir = path.join(dataDir, 'feed');
    const today = fs.readdirSync(feedDir).filter((f) => f.endsWith('.ndjson')).sort().pop();
    fs.appendFileSync(path.join(feedDir, today), '{"id":"torn-line","seq":99');
    await runHarness(args, ['drain']);

    const events = readNdjson(feedDir);
    const byId = new Map();
    for (const ev of events) byId.set(ev.id, ev);
    assert.ok(!byId.has('torn-line'));
    const byVisit = new Map();
    for (const ev of byId.values()) {
      if (!byVisit.has(ev.visit_id)) byVisit.set(ev.visit_id, []);
      byVisit.get(ev.visit_id).push(ev);
    }
    for (const evs of byVisit.values()) evs.sort((a, b) => a.seq - b.seq);
    assert.ok(visits.length > 10, `visits made: ${visits.length}`);
    // Every visit the harness reported is complete. A visit the kill cut
    // short has the steps it committed: a prefix of the five, in order.
    checkVisits(assert, byVisit, visits);
    for (const [id, evs] of byVisit)
      assert.deepEqual(evs.map((e) => e.type), VISIT_TYPES.slice(0, evs.length), id);
    // File order per visit: a visit's first appearance of each event is in seq order.
    const maxSeq = new Map();
    const seenIds = new Set();
    for (const ev of events) {
      const last = maxSeq.get(ev.visit_id) ?? 0;
      if (ev.seq > last) maxSeq.set(ev.visit_id, ev.seq);
      else assert.ok(seenIds.has(ev.id), `event ${ev.seq} of ${ev.visit_id} came after ${last} and is not a repeat`);
      seenIds.add(ev.id);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
