// feed_server.test.mjs - the regulator feed of the real telemed-server: full
// visits over telemed.v1 reach the stand-in regulator over HTTPS, signed and
// in order; /api/v1/feed and /metrics show it; a 400 becomes a dead letter
// that the REST replay delivers; kill -9 with a request in flight loses
// nothing; the NDJSON default sink survives kill -9.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, setupHospital, fullVisit } from '../integration/lib/server.mjs';
import { startRegulator } from './regulator.mjs';
import { makePki, sleep, tmpDir } from './lib.mjs';

const SECRET = 'server-feed-secret';
let pki;
let root;

before(() => {
  root = tmpDir();
  pki = makePki(root);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

function feedArgs(reg) {
  return ['--feed-url', reg.url, '--feed-secret', SECRET, '--feed-ca', pki.caFile,
    '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '500', '--feed-timeout-ms', '1500',
    '--hospital-id', 'hosp-srv'];
}

// The regulator holds exactly the server's outbox rows of these visits' five
// steps, in seq order. A visit's seal (visit.sealed, tests/integration/
// visit_seal) may follow once a restart's recovery closes its recording row.
function checkAgainstOutbox(srv, reg, visitIds) {
  const byVisit = reg.byVisit();
  for (const id of visitIds) {
    const rows = srv.sql(`SELECT event_id, seq, type FROM outbox WHERE visit_id='${id}' AND type != 'visit.sealed' ORDER BY seq`);
    assert.equal(rows.length, 5, `outbox rows of ${id}`);
    const got = (byVisit.get(id) ?? []).filter((e) => e.type !== 'visit.sealed').map((e) => [e.id, e.seq, e.type]);
    assert.deepEqual(got, rows.map((r) => [r.event_id, r.seq, r.type]), `events of ${id}`);
  }
}

test('full visits reach the regulator signed, once, in order; status and metrics show it', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  const srv = await startServer({ args: feedArgs(reg) });
  try {
    const admin = await setupHospital(srv);
    const visits = [await fullVisit(srv, 'p1'), await fullVisit(srv, 'p2')];
    await reg.waitFor(() => reg.stats().unique >= 10, 15000, '10 events');
    checkAgainstOutbox(srv, reg, visits);
    assert.equal(reg.stats().badSignatures, 0);
    assert.deepEqual(reg.stats().orderViolations, []);
    const ev = reg.events.find((e) => e.type === 'visit.started');
    assert.equal(ev.hospital_id, 'hosp-srv');
    assert.equal(ev.data.doctor_licence_no, 'LIC-d1');
    assert.ok(!JSON.stringify(reg.events).includes('name-of-'), 'no names in the feed');

    // Status through REST (marks may trail the regulator's receipt by a moment).
    let st;
    for (let i = 0; i < 50; i++) {
      st = await srv.api('GET', '/api/v1/feed', undefined, admin);
      if (st.json?.delivered >= 10) break;
      await sleep(100);
    }
    assert.equal(st.status, 200);
    assert.equal(st.json.sink, 'http');
    assert.equal(st.json.endpoint, reg.url);
    assert.equal(st.json.queue_depth, 0);
    assert.equal(st.json.delivered, 10);
    assert.deepEqual(st.json.dead_letters, []);
    const m = await srv.api('GET', '/metrics');
    assert.match(m.text, /^telemed_feed_delivered_total\{node="[^"]*"\} 10$/m);
    assert.match(m.text, /^telemed_feed_queue_depth\{node="[^"]*"\} 0$/m);
    assert.match(m.text, /^telemed_feed_dead_letters\{node="[^"]*"\} 0$/m);
  } finally {
    await srv.stop();
    await reg.close();
  }
});

test('a 400 becomes a dead letter; the REST replay delivers it', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  reg.reject = (ev) => ev.type === 'visit.rated';
  const srv = await startServer({ args: feedArgs(reg) });
  try {
    const admin = await setupHospital(srv);
    const visit = await fullVisit(srv, 'p1');
    let st;
    for (let i = 0; i < 100; i++) {
      st = await srv.api('GET', '/api/v1/feed', undefined, admin);
      if (st.json?.dead >= 1) break;
      await sleep(100);
    }
    assert.equal(st.json.dead, 1);
    const dead = st.json.dead_letters[0];
    assert.equal(dead.type, 'visit.rated');
    assert.equal(dead.visit_id, visit);
    assert.equal(dead.last_status, 400);
    assert.match(dead.last_response, /rejected/);
    assert.equal(reg.stats().unique, 4);

    // A doctor may not replay; an admin may, once.
    const doc = await srv.api('POST', `/api/v1/feed/dead-letters/${dead.seq}/replay`, undefined, srv.token('d1', 'doctor'));
    assert.equal(doc.status, 403);
    reg.reject = null;
    const r = await srv.api('POST', `/api/v1/feed/dead-letters/${dead.seq}/replay`, undefined, admin);
    assert.equal(r.status, 200, r.text);
    await reg.waitFor(() => reg.stats().unique === 5, 10000, 'the replayed event');
    assert.equal(reg.events.at(-1).seq, dead.seq);
    const again = await srv.api('POST', `/api/v1/feed/dead-letters/${dead.seq}/replay`, undefined, admin);
    assert.equal(again.status, 409);
  } finally {
    await srv.stop();
    await reg.close();
  }
});

test('kill -9 with a delivery in flight, then restart: nothing lost', async () => {
  const reg = await startRegulator({ secret: SECRET, tls: pki.server });
  const srv = await startServer({ args: feedArgs(reg) });
  try {
    await setupHospital(srv);
    reg.hangNext(100); // every request hangs: deliveries are in flight when the kill comes
    const visits = [await fullVisit(srv, 'p1'), await fullVisit(srv, 'p2')];
    await sleep(300);
    assert.equal(reg.stats().unique, 0);
    assert.ok(reg.stats().requests >= 1, 'a request was in flight');
    await srv.restart({ hard: true });
    reg.clearFaults();
    await reg.waitFor(() => reg.stats().unique >= 10, 15000, 'all events after restart');
    checkAgainstOutbox(srv, reg, visits);
    assert.deepEqual(reg.stats().orderViolations, []);
  } finally {
    await srv.stop();
    await reg.close();
  }
});

test('NDJSON default sink: every event, no torn line after kill -9', async () => {
  const srv = await startServer({ args: ['--hospital-id', 'hosp-file'] });
  try {
    await setupHospital(srv);
    const visits = [await fullVisit(srv, 'p1')];
    const feedDir = path.join(srv.dataDir, 'feed');
    const lines = () =>
      fs.readdirSync(feedDir).filter((f) => f.endsWith('.ndjson'))
        .flatMap((f) => fs.readFileSync(path.join(feedDir, f), 'utf8').split('\n').filter(Boolean));
    for (let i = 0; i < 100 && lines().length < 5; i++) await sleep(50);
    assert.equal(lines().length, 5);
    await srv.restart({ hard: true });
    visits.push(await fullVisit(srv, 'p2'));
    for (let i = 0; i < 100 && lines().length < 10; i++) await sleep(50);
    for (const f of fs.readdirSync(feedDir)) {
      const text = fs.readFileSync(path.join(feedDir, f), 'utf8');
      assert.ok(text.endsWith('\n'), `${f} ends with a whole line`);
    }
    const events = lines().map((l) => JSON.parse(l));
    const ids = new Set(events.map((e) => e.id));
    for (const v of visits) {
      const rows = srv.sql(`SELECT event_id FROM outbox WHERE visit_id='${v}' AND state='delivered' AND type != 'visit.sealed'`);
      assert.equal(rows.length, 5);
      for (const r of rows) assert.ok(ids.has(r.event_id));
    }
    assert.ok(events.every((e) => e.hospital_id === 'hosp-file' && e.schema_version === 1));
  } finally {
    await srv.stop();
  }
});
