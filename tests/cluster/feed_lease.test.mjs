// feed_lease.test.mjs - the regulator feed across two nodes (issue 19,
// docs/cluster.md "Delivery across nodes"): two real telemed-servers on one
// test-started PostgreSQL, each with its own feed posting to one real HTTP
// receiver (each node to its own path, so the receiver knows who sent what).
// Visits run on both nodes while the receiver answers 503, so every event
// waits in the outbox; then the receiver holds its answers, and node-a is
// killed (-9) while a batch of its own is in flight. node-b delivers
// everything: each event reaches the receiver, none is lost, and the only
// events it sees twice are exactly those of node-a's aborted batch (received,
// then node-a died before it could record the delivery: the documented
// window the event id makes harmless), which node-b sends again once node-a's
// lease has expired. Before that, both nodes run the Tianjin nightly batch
// for the day at once: the platform gets each record and the day's check-in
// once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { startServer, setupHospital, waitUntil } from '../integration/lib/server.mjs';
import { startPg } from '../integration/lib/pg.mjs';
import { startPlatform } from '../feed/tianjin_platform.mjs';

const FEED_TIMEOUT_MS = 4000; // the lease is twice this
const TIANJIN = { appKey: 'lease-key', appSecret: '0123456789abcdef0123456789abcdef', organId: '12120000MB0000001Y' };

// The receiver. mode: 'down' answers 503 (nothing delivered); 'hold' keeps
// every answer back (the events count as received: a regulator that stored
// them and is slow to answer); 'open' answers 200 at once.
async function startReceiver() {
  const rec = { mode: 'down', arrivals: [], held: [], aborted: new Set() };
  const answer = (entry) => {
    entry.answered = true;
    entry.res.writeHead(200, { 'content-type': 'application/json' });
    entry.res.end('{"accepted":true}');
  };
  rec.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (rec.mode === 'down') {
        res.writeHead(503);
        res.end();
        return;
      }
      const node = req.url.split('/').pop();
      const events = JSON.parse(Buffer.concat(chunks).toString()).events;
      for (const e of events) rec.arrivals.push({ id: e.id, seq: e.seq, visit: e.visit_id, node });
      const entry = { res, node, ids: events.map((e) => e.id), answered: false };
      // The sender went away before its answer: received, never acknowledged.
      res.on('close', () => { if (!entry.answered) for (const id of entry.ids) rec.aborted.add(id); });
      if (rec.mode === 'hold') rec.held.push(entry);
      else answer(entry);
    });
  });
  rec.open = () => {
    rec.mode = 'open';
    for (const entry of rec.held.splice(0)) if (!entry.res.destroyed) answer(entry);
  };
  await new Promise((r) => rec.server.listen(0, '127.0.0.1', r));
  rec.url = (node) => `http://127.0.0.1:${rec.server.address().port}/events/${node}`;
  rec.close = () => { rec.server.closeAllConnections(); return new Promise((r) => rec.server.close(r)); };
  return rec;
}

async function visit(srv, dept, doctorId, patientId) {
  const doctor = await srv.client(doctorId, 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept, kind: 'follow_up' });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  await doctor.request('visit.note', { visit_id: ci.visit_id, text: 'n', diagnosis_code: 'I10', sign: true });
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  await patient.request('visit.rate', { visit_id: ci.visit_id, score: 5 });
  await patient.close();
  await doctor.close();
}

test('kill -9 of a node mid-delivery: every event delivered, twice only for its aborted batch', { timeout: 300000 }, async (t) => {
  const pg = startPg();
  const rec = await startReceiver();
  const platform = await startPlatform(TIANJIN);
  const secret = randomBytes(16).toString('hex');
  const node = (id) => startServer({ db: pg.url, secret, args: ['--node-id', id,
    '--feed-url', rec.url(id), '--feed-batch', '4', '--feed-timeout-ms', String(FEED_TIMEOUT_MS),
    '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '300',
    '--feed-profiles', 'webhook,tianjin', '--tianjin-url', platform.url, '--tianjin-app-key', TIANJIN.appKey,
    '--tianjin-app-secret', TIANJIN.appSecret, '--tianjin-organ-id', TIANJIN.organId,
    '--tianjin-upload-at', '23:59:59'] });
  const a = await node('node-a');
  let b = null;
  t.after(async () => {
    await a.stop({ hard: true }).catch(() => {});
    if (b) await b.stop().catch(() => {});
    await rec.close();
    await platform.close();
    pg.stop();
  });
  // A department per node: a doctor is offered the patients of their own
  // node only (docs/cluster.md, "Not yet").
  const admin = await setupHospital(a, { depts: ['cardio', 'derm'], doctors: [['d1', 'cardio'], ['d2', 'derm']] });
  const ids = [['doctor', 'd1'], ['doctor', 'd2'], ['dept', 'cardio'], ['dept', 'derm'],
    ...['pa', 'pb'].flatMap((p) => [0, 1, 2].map((i) => ['patient', `${p}-${i}`]))];
  for (const [n, [kind, id]] of ids.entries()) {
    const r = await a.api('PUT', `/api/v1/regulator-ids/${kind}/${id}`,
      { code: `12010119900101${String(n).padStart(4, '0')}`, cert_type: '1' }, admin);
    assert.equal(r.status, 200, r.text);
  }
  b = await node('node-b'); // after the roster: a node loads the shifts when it starts

  // Three visits on each node at once.
  const onNode = async (srv, dept, doctor, prefix) => {
    for (let i = 0; i < 3; i++) await visit(srv, dept, doctor, `${prefix}-${i}`);
  };
  await Promise.all([onNode(a, 'cardio', 'd1', 'pa'), onNode(b, 'derm', 'd2', 'pb')]);
  const all = b.sql('SELECT event_id, visit_id, seq FROM outbox ORDER BY seq');
  assert.ok(all.length >= 30, `events written: ${all.length}`);
  assert.equal(rec.arrivals.length, 0, 'nothing delivered while the receiver answered 503');

  // The nightly batch, started on both nodes at once: staged once, each
  // record and the check-in sent by one node.
  const today = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
  const runs = await Promise.all([a, b].map((n) =>
    n.api('POST', '/api/v1/feed/profiles/tianjin/run', { day: today }, admin)));
  for (const r of runs) assert.equal(r.status, 200, r.text);
  assert.equal(runs[0].json.staged + runs[1].json.staged, 12, 'six visits and six ratings, staged once');
  await waitUntil('every record accepted and every day checked in', () =>
    platform.state.visits.size === 6 && platform.state.ratings.size === 6 &&
    b.sql(`SELECT count(*) AS n FROM upload_records WHERE state <> 'delivered'`)[0].n === 0 &&
    b.sql("SELECT count(*) AS n FROM upload_days WHERE checkin_at IS NULL")[0].n === 0, 120000);
  assert.equal(platform.state.visits.size, 6);
  assert.equal(platform.state.ratings.size, 6);
  for (const m of [platform.state.visits, platform.state.ratings])
    for (const [id, n] of m) assert.equal(n, 1, `record ${id} sent once`);
  // A node's first start stages yesterday too (empty here): one check-in per day.
  const days = b.sql("SELECT day FROM upload_days WHERE profile = 'tianjin'");
  assert.ok(days.some((d) => d.day === today));
  assert.equal(platform.state.checkins.length, days.length, 'one check-in per staged day');

  // Deliveries start and are held; node-a dies with a batch of its own in flight.
  rec.mode = 'hold';
  const inFlight = await waitUntil('a batch from node-a',
    () => rec.held.find((e) => e.node === 'node-a' && e.ids.length > 0), 120000);
  const leased = a.sql("SELECT event_id FROM outbox WHERE leased_by = 'node-a' AND state = 'pending'")
    .map((r) => r.event_id);
  assert.deepEqual(leased.sort(), [...inFlight.ids].sort(), 'node-a leases exactly the batch it sends');
  await a.stop({ hard: true });
  await waitUntil('the receiver sees node-a gone', () => rec.aborted.size === inFlight.ids.length);
  rec.open();

  // node-b delivers the rest, node-a's batch once its lease has expired.
  await waitUntil('every event delivered and recorded', () => {
    const ids = new Set(rec.arrivals.map((x) => x.id));
    if (!all.every((e) => ids.has(e.event_id))) return false;
    return b.sql("SELECT count(*) AS n FROM outbox WHERE state <> 'delivered'")[0].n === 0;
  }, 180000);

  const times = new Map();
  for (const x of rec.arrivals) times.set(x.id, (times.get(x.id) || 0) + 1);
  assert.deepEqual([...times.keys()].sort(), all.map((e) => e.event_id).sort(), 'every event, nothing else');
  const twice = [...times].filter(([, n]) => n > 1).map(([id]) => id).sort();
  assert.deepEqual(twice, [...inFlight.ids].sort(), 'repeated: exactly the batch node-a died with');
  for (const id of twice) assert.equal(times.get(id), 2);
  const again = rec.arrivals.filter((x) => inFlight.ids.includes(x.id) && x.node === 'node-b');
  assert.equal(again.length, inFlight.ids.length, 'node-b sent node-a\'s batch again');
  // In order per visit, counting each event where it first arrived.
  const seen = new Set();
  const last = new Map();
  for (const x of rec.arrivals) {
    if (seen.has(x.id)) continue;
    seen.add(x.id);
    assert.ok(x.seq > (last.get(x.visit) ?? 0), `visit ${x.visit}: ${x.seq} after ${last.get(x.visit)}`);
    last.set(x.visit, x.seq);
  }
  const marks = b.sql('SELECT count(*) AS n FROM outbox WHERE leased_by IS NOT NULL')[0].n;
  assert.equal(marks, 0, 'no lease is left behind');
  console.log(`# ${all.length} events, node-a sent ${rec.arrivals.filter((x) => x.node === 'node-a').length}` +
    ` (${inFlight.ids.length} aborted), node-b ${rec.arrivals.filter((x) => x.node === 'node-b').length}`);
});
