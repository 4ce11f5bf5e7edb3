// feed_http.test.mjs - the feed against the stand-in regulator over HTTPS:
// exactly-once after de-duplication, per-visit order, signatures, faults,
// certificates, dead letters and replay, corrupt rows.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startRegulator } from './regulator.mjs';
import { checkVisits, makePki, runHarness, startHarness, sleep, tmpDir, until } from './lib.mjs';

const SECRET = 'feed-test-secret';
let pki;
let root;

before(() => {
  root = tmpDir();
  pki = makePki(root);
});

function feedArgs(dataDir, reg, extra = []) {
  return [
    '--data-dir', dataDir,
    '--hospital-id', 'hosp-test',
    '--feed-url', reg.url,
    '--feed-secret', SECRET,
    '--feed-ca', pki.caFile,
    '--feed-backoff-base-ms', '50',
    '--feed-backoff-max-ms', '400',
    '--feed-timeout-ms', '2000',
    '--log-level', 'warn',
    ...extra,
  ];
}

let n = 0;
const dataDir = () => path.join(root, `d${++n}`);

test('every event of full visits arrives once, in order per visit, signed, through faults', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  try {
    // 503 twice, a connection closed mid-answer, a 429 with Retry-After: 0.
    reg.failNext(2, 503);
    reg.closeNext(1);
    reg.failNext(1, 429, { retryAfter: 0 });
    const h = await runHarness(feedArgs(dataDir(), reg, ['--feed-batch', '7']), ['visits', '12', 'drain', 'status']);
    assert.equal(h.visits.length, 12);
    const s = reg.stats();
    assert.equal(s.unique, 60);
    assert.equal(s.badSignatures, 0);
    assert.deepEqual(s.orderViolations, []);
    checkVisits(assert, reg.byVisit(), h.visits);
    for (const ev of reg.events) {
      assert.match(ev.id, /^[0-9a-f-]{36}$/);
      assert.equal(ev.schema_version, 1);
      assert.equal(ev.hospital_id, 'hosp-test');
      assert.match(ev.occurred_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(ev.data.visit_id, ev.visit_id);
      assert.equal(ev.data.channel, 'video');
    }
    const rated = reg.events.find((e) => e.type === 'visit.rated');
    assert.ok(rated.data.rating.score >= 1 && rated.data.rating.score <= 5);
    const started = reg.events.find((e) => e.type === 'visit.started');
    assert.equal(started.data.doctor_licence_no, 'LIC-0001');
    assert.equal(h.status.queue_depth, 0);
    assert.equal(h.status.delivered, 60);
    assert.ok(h.status.failed_attempts >= 4, `failed attempts ${h.status.failed_attempts}`);
    assert.equal(h.status.dead, 0);
  } finally {
    await reg.close();
  }
});

test('a failing endpoint is not hammered: new events wait for the hold', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  try {
    reg.failNext(10000, 503);
    // 60 visits over 3 s, each a kick with a new visit whose head is due at once.
    const h = startHarness(
      feedArgs(dataDir(), reg, ['--feed-backoff-base-ms', '200', '--feed-backoff-max-ms', '2000']),
      ['trickle', '60', '50', 'drain', 'status'],
    );
    await h.waitLine(/^ready$/);
    // At least 3.5 s and at least two tries (a loaded machine may need more
    // time for them); the upper bound is the backoff's, and holds either way.
    const t0 = Date.now();
    await until(() => reg.stats().requests >= 2, 'two tries during the failure');
    await sleep(Math.max(0, 3500 - (Date.now() - t0)));
    const during = reg.stats().requests;
    if (process.env.FEED_TEST_VERBOSE) console.log(`requests during the failure: ${during}`);
    assert.ok(during >= 2 && during <= 25, `requests during the failure: ${during}`);
    reg.clearFaults();
    assert.equal(await h.exited, 0, h.stderr);
    assert.equal(reg.stats().unique, 300);
    assert.deepEqual(reg.stats().orderViolations, []);
  } finally {
    await reg.close();
  }
});

test('a request that hangs past feed_timeout_ms is retried', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  try {
    reg.hangNext(1);
    const h = await runHarness(feedArgs(dataDir(), reg, ['--feed-timeout-ms', '300']), ['visits', '2', 'drain', 'status']);
    assert.equal(reg.stats().unique, 10);
    checkVisits(assert, reg.byVisit(), h.visits);
    assert.match(h.status.last_error ?? '', /timed? ?out/i);
  } finally {
    await reg.close();
  }
});

test('429 Retry-After is honoured', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  try {
    reg.failNext(1, 429, { retryAfter: 2 });
    const t0 = Date.now();
    const h = await runHarness(feedArgs(dataDir(), reg), ['visits', '1', 'drain']);
    // A lower bound only: the feed may never come back sooner than asked.
    assert.ok(Date.now() - t0 >= 1900, `came back after ${Date.now() - t0} ms`);
    checkVisits(assert, reg.byVisit(), h.visits);
  } finally {
    await reg.close();
  }
});

test('a certificate that does not verify keeps events queued until one does', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.rogue });
  try {
    const h = startHarness(feedArgs(dataDir(), reg), ['visits', '3', 'drain', 'status']);
    await h.waitLine(/^ready$/);
    await until(() => reg.stats().tlsErrors > 0, 'the feed tried and refused the certificate');
    assert.equal(reg.stats().unique, 0);
    reg.setCert(pki.server);
    assert.equal(await h.exited, 0, h.stderr);
    assert.equal(reg.stats().unique, 15);
    checkVisits(assert, reg.byVisit(), h.visits);
    assert.match(h.status.last_error, /certificate|SSL/i);
  } finally {
    await reg.close();
  }
});

test('mutual TLS: the feed presents its client certificate', async () => {
  const reg = await startRegulator({
    secret: SECRET,
    tls: { ...pki.server, ca: pki.clientCa, requestCert: true },
  });
  try {
    const dir = dataDir();
    const h = await runHarness(
      feedArgs(dir, reg, ['--feed-client-cert', pki.clientCert, '--feed-client-key', pki.clientKey]),
      ['visits', '1', 'drain'],
    );
    checkVisits(assert, reg.byVisit(), h.visits);
    // Without the client certificate the endpoint refuses the handshake: queued, not lost.
    const h2 = startHarness(feedArgs(dir, reg), ['visits', '1', 'serve']);
    await h2.waitLine(/^ready$/);
    await sleep(800);
    h2.proc.kill('SIGTERM');
    await h2.exited;
    assert.equal(reg.stats().unique, 5);
    const h3 = await runHarness(
      feedArgs(dir, reg, ['--feed-client-cert', pki.clientCert, '--feed-client-key', pki.clientKey]),
      ['drain'],
    );
    assert.equal(h3.lines.includes('ready'), true);
    assert.equal(reg.stats().unique, 10);
    checkVisits(assert, reg.byVisit(), [...h.visits, ...h2.visits]);
  } finally {
    await reg.close();
  }
});

test('a 400 becomes a dead letter (response kept, others delivered) and replay delivers it', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  try {
    const dir = dataDir();
    reg.reject = (ev) => ev.type === 'visit.note_signed';
    const h = await runHarness(feedArgs(dir, reg), ['visits', '3', 'drain', 'status']);
    // Only the rejected events are dead; every other event went through.
    assert.equal(h.status.dead, 3);
    assert.equal(h.dead.length, 3);
    for (const d of h.dead) {
      assert.equal(d.type, 'visit.note_signed');
      assert.equal(d.last_status, 400);
      assert.match(d.last_response, /rejected/);
    }
    assert.equal(reg.stats().unique, 12);
    assert.equal(reg.events.filter((e) => e.type === 'visit.note_signed').length, 0);
    // The visit's later event (rated) is not held back by a dead letter.
    assert.equal(reg.events.filter((e) => e.type === 'visit.rated').length, 3);

    reg.reject = null;
    const seq = h.dead[0].seq;
    const r = await runHarness(feedArgs(dir, reg), ['replay', String(seq), 'drain', 'status']);
    assert.ok(r.lines.includes('replay 0'));
    assert.equal(r.status.dead, 2);
    const replayed = reg.events.filter((e) => e.seq === seq);
    assert.equal(replayed.length, 1);
    assert.equal(replayed[0].type, 'visit.note_signed');
    // Replaying something that is not a dead letter is refused.
    const again = startHarness(feedArgs(dir, reg), ['replay', String(seq)]);
    assert.notEqual(await again.exited, 0);
  } finally {
    await reg.close();
  }
});

test('a corrupt outbox row is dead-lettered and blocks nothing', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  try {
    const h = await runHarness(feedArgs(dataDir(), reg), ['corrupt', 'visits', '2', 'drain', 'status']);
    assert.equal(reg.stats().unique, 10);
    checkVisits(assert, reg.byVisit(), h.visits);
    assert.equal(h.dead.length, 1);
    assert.match(h.dead[0].last_error, /corrupt/);
  } finally {
    await reg.close();
  }
});

test('a wrong secret is a permanent rejection, not a silent loss', async () => {
  const reg = await startRegulator({ secret: 'the-regulators-idea', tls: pki.server });
  try {
    const h = await runHarness(feedArgs(dataDir(), reg), ['visits', '1', 'drain', 'status']);
    assert.equal(reg.stats().unique, 0);
    assert.ok(reg.stats().badSignatures >= 1);
    assert.equal(h.status.dead, 5);
    assert.ok(h.dead.every((d) => d.last_status === 401));
  } finally {
    await reg.close();
  }
});

after(async () => {
  const { rmSync } = await import('node:fs');
  rmSync(root, { recursive: true, force: true });
});
