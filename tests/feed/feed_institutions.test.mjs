// feed_institutions.test.mjs - delivery profiles per institution in the real
// telemed-server: the core uploads to the deployment's webhook, the member
// county-west (institution_feeds) to its own, two stand-in regulators with
// their own secrets. Visits in both institutions, a kill -9 and a restart
// between them: each receiver gets only its institution's visits, every event
// (once before the kill; de-duplicated by id after it), correctly signed; /api/v1/feed/profiles lists both instances with
// their own status and dead letters, /metrics labels the member's. The
// webhook payload lists the visit's participants, naming only doctors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from '../integration/lib/server.mjs';
import { startRegulator } from './regulator.mjs';
import { startPlatform } from './tianjin_platform.mjs';

const CORE_SECRET = 'core-secret';
const WEST_SECRET = 'west-secret';

async function ok(res, status = 200) {
  assert.equal(res.status, status, res.text);
  return res.json;
}

// One visit through the protocol with doctor in dept: check-in, accept,
// signed note, end. Returns the visit id.
async function visit(srv, doctorId, dept, patientId) {
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
  await patient.close();
  await doctor.close();
  return ci.visit_id;
}

const visitsOf = (reg) => new Set(reg.events.map((e) => e.visit_id));
const endedOf = (reg, id) => reg.events.filter((e) => e.visit_id === id && e.type === 'visit.ended').length;

test('each institution\'s receiver gets only its own visits, each event once, across a kill -9',
  { timeout: 180000 }, async () => {
    const core = await startRegulator({ secret: CORE_SECRET });
    const west = await startRegulator({ secret: WEST_SECRET });
    const srv = await startServer({
      args: ['--feed-url', core.url, '--feed-profiles', 'webhook',
        '--institutions', 'county-west|County West Hospital|ORG-WEST|2A|hospital',
        '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '500'],
      // Secrets go in the environment, as a deployment would put them.
      env: { TELEMED_FEED_SECRET: CORE_SECRET,
        TELEMED_INSTITUTION_FEEDS: `county-west|webhook|${west.url}|${WEST_SECRET}` },
    });
    try {
      const admin = srv.token('admin-1', 'admin');
      await ok(await srv.api('POST', '/api/v1/departments', { id: 'cardio', name: 'Cardiology' }, admin), 201);
      await ok(await srv.api('POST', '/api/v1/departments',
        { id: 'west-im', name: 'Internal Medicine', institution_id: 'county-west' }, admin), 201);
      const now = Date.now();
      for (const [id, dept] of [['d1', 'cardio'], ['dw', 'west-im']]) {
        await ok(await srv.api('POST', '/api/v1/doctors', { id, name: `Dr ${id}`, dept_id: dept, licence_no: `LIC-${id}` }, admin), 201);
        await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: dept,
          start: new Date(now - 3600e3).toISOString(), end: new Date(now + 3600e3).toISOString() }, admin), 201);
      }

      const coreVisit = await visit(srv, 'd1', 'cardio', 'p1');
      const westVisit = await visit(srv, 'dw', 'west-im', 'p2');
      await core.waitFor(() => endedOf(core, coreVisit) === 1, 30000, 'the core visit at the core');
      await west.waitFor(() => endedOf(west, westVisit) === 1, 30000, 'the west visit at west');

      // Every event the server wrote for a visit reaches its receiver once,
      // each receiver with its own secret (a wrong one is a bad signature).
      // Waited for: the seal of a finished record may still be on its way.
      const written = (id) => srv.sql(`SELECT count(*) AS n FROM outbox WHERE visit_id = '${id}'`)[0].n;
      const received = (reg, id) => reg.events.filter((e) => e.visit_id === id).length;
      const allThere = async (reg, ids) =>
        reg.waitFor(() => ids.every((id) => received(reg, id) === written(id)), 30000, 'every event written');
      await allThere(core, [coreVisit]);
      await allThere(west, [westVisit]);
      assert.equal(core.stats().duplicates + west.stats().duplicates, 0);

      // A kill -9, then one more visit in each institution. Delivery is at
      // least once: an answer the kill cut off may come again, and the
      // receiver knows it by its event id.
      await srv.restart({ hard: true });
      const coreVisit2 = await visit(srv, 'd1', 'cardio', 'p3');
      const westVisit2 = await visit(srv, 'dw', 'west-im', 'p4');
      await core.waitFor(() => endedOf(core, coreVisit2) === 1, 30000, 'the second core visit');
      await west.waitFor(() => endedOf(west, westVisit2) === 1, 30000, 'the second west visit');

      assert.deepEqual([...visitsOf(core)].sort(), [coreVisit, coreVisit2].sort());
      assert.deepEqual([...visitsOf(west)].sort(), [westVisit, westVisit2].sort());
      for (const e of west.events) assert.equal(e.data.institution.id, 'county-west');
      for (const e of core.events) assert.notEqual(e.data.institution.id, 'county-west');
      for (const [reg, ids] of [[core, [coreVisit, coreVisit2]], [west, [westVisit, westVisit2]]]) {
        await allThere(reg, ids);
        const s = reg.stats();
        assert.equal(s.badSignatures, 0);
        assert.deepEqual(s.orderViolations, []);
      }

      // The participants: the patient by role alone, the doctor by id and licence.
      const ended = west.events.find((e) => e.visit_id === westVisit && e.type === 'visit.ended');
      assert.deepEqual(ended.data.participants.map((p) => Object.keys(p).sort()),
        [['joined_at', 'left_at', 'role'], ['doctor_id', 'joined_at', 'left_at', 'licence_no', 'role']]);
      assert.deepEqual(ended.data.participants.map((p) => [p.role, p.doctor_id, p.licence_no]),
        [['patient', undefined, undefined], ['attending', 'dw', 'LIC-dw']]);
      assert.ok(ended.data.participants.every((p) => p.left_at !== null));
      assert.doesNotMatch(JSON.stringify(ended.data.participants), /p2|name-of/);

      // Both instances behind the one profile interface.
      const list = await ok(await srv.api('GET', '/api/v1/feed/profiles', undefined, admin));
      assert.deepEqual(list.profiles, ['webhook', 'webhook@county-west']);
      assert.deepEqual(list.instances, [
        { name: 'webhook', profile: 'webhook', institution_id: null },
        { name: 'webhook@county-west', profile: 'webhook', institution_id: 'county-west' }]);
      const stWest = await ok(await srv.api('GET', '/api/v1/feed/profiles/webhook@county-west', undefined, admin));
      assert.equal(stWest.profile, 'webhook@county-west');
      assert.equal(stWest.institution_id, 'county-west');
      assert.equal(stWest.delivered, west.events.length);
      assert.equal(stWest.queue_depth, 0);
      assert.deepEqual(stWest.dead_letters, []);
      const stCore = await ok(await srv.api('GET', '/api/v1/feed/profiles/webhook', undefined, admin));
      assert.equal(stCore.profile, 'webhook');
      assert.equal(stCore.institution_id, null);
      assert.equal(stCore.queue_depth, 0);
      // The old route still answers for the deployment's webhook.
      assert.equal((await ok(await srv.api('GET', '/api/v1/feed', undefined, admin))).queue_depth, 0);
      const metrics = (await srv.api('GET', '/metrics')).text;
      assert.match(metrics, new RegExp(`^telemed_feed_delivered_total\\{node="[^"]*",institution="county-west"\\} ${stWest.delivered}$`, 'm'));
      assert.match(metrics, /^telemed_feed_queue_depth\{node="[^"]*"\} 0$/m);
      // A member's replay route refuses a seq that is not its own.
      const coreSeq = srv.sql(`SELECT min(seq) AS s FROM outbox WHERE visit_id = '${coreVisit}'`)[0].s;
      assert.equal((await srv.api('POST', `/api/v1/feed/profiles/webhook@county-west/dead-letters/${coreSeq}/replay`, {}, admin)).status, 404);
    } finally {
      await srv.stop();
      await core.close();
      await west.close();
    }
  });

test('county-west uploads to tianjin, the core to the webhook: each platform gets only its own visits',
  { timeout: 180000 }, async () => {
    const APP_SECRET = '0123456789abcdef0123456789abcdef';
    const core = await startRegulator({ secret: CORE_SECRET });
    const platform = await startPlatform({ appKey: 'west-key', appSecret: APP_SECRET, organId: 'ORG-WEST' });
    const srv = await startServer({
      args: ['--feed-url', core.url, '--feed-profiles', 'webhook',
        '--institutions', 'county-west|County West Hospital|ORG-WEST|2A|hospital',
        '--tianjin-organ-id', 'ORG-CORE', '--tianjin-upload-at', '23:59:59',
        '--feed-backoff-base-ms', '50', '--feed-backoff-max-ms', '500'],
      env: { TELEMED_FEED_SECRET: CORE_SECRET,
        TELEMED_INSTITUTION_FEEDS: `county-west|tianjin|${platform.url}|${APP_SECRET}|west-key` },
    });
    try {
      const admin = srv.token('admin-1', 'admin');
      await ok(await srv.api('POST', '/api/v1/departments', { id: 'cardio', name: 'Cardiology' }, admin), 201);
      await ok(await srv.api('POST', '/api/v1/departments',
        { id: 'west-im', name: 'Internal Medicine', institution_id: 'county-west' }, admin), 201);
      const now = Date.now();
      for (const [id, dept] of [['d1', 'cardio'], ['dw', 'west-im']]) {
        await ok(await srv.api('POST', '/api/v1/doctors', { id, name: `Dr ${id}`, dept_id: dept, licence_no: `LIC-${id}` }, admin), 201);
        await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: dept,
          start: new Date(now - 3600e3).toISOString(), end: new Date(now + 3600e3).toISOString() }, admin), 201);
      }
      for (const [kind, id, body] of [['doctor', 'dw', { code: '120101198001010011' }], ['dept', 'west-im', { code: '03.01' }],
        ['doctor', 'd1', { code: '120101198001010012' }], ['dept', 'cardio', { code: '03.02' }],
        ['patient', 'p1', { code: '120101199001010021', cert_type: '1' }], ['patient', 'p2', { code: '120101199001010022', cert_type: '1' }]])
        await ok(await srv.api('PUT', `/api/v1/regulator-ids/${kind}/${id}`, body, admin));

      const westVisit = await visit(srv, 'dw', 'west-im', 'p2');
      const coreVisit = await visit(srv, 'd1', 'cardio', 'p1');
      await core.waitFor(() => endedOf(core, coreVisit) === 1, 30000, 'the core visit at the core');
      // In seq order the west visit's events came first: none went to the core.
      assert.deepEqual([...visitsOf(core)], [coreVisit]);

      // The Tianjin day (Asia/Shanghai) the west visit ended on, not the
      // clock's now: around 16:00 UTC the two are different days.
      const endedAt = srv.sql(`SELECT ended_at AS t FROM visits WHERE id = '${westVisit}'`)[0].t;
      const today = new Date(endedAt + 8 * 3600e3).toISOString().slice(0, 10);
      const run = await ok(await srv.api('POST', '/api/v1/feed/profiles/tianjin@county-west/run', { day: today }, admin));
      assert.equal(run.staged, 1); // the west visit; the core's is not this instance's
      await platform.waitFor(() => platform.state.visits.has(westVisit), 30000, 'the west visit at tianjin');
      assert.equal(platform.state.visits.get(westVisit), 1);
      assert.equal(platform.state.visits.has(coreVisit), false);
      assert.deepEqual(platform.state.authFailures, []);

      const list = await ok(await srv.api('GET', '/api/v1/feed/profiles', undefined, admin));
      assert.deepEqual(list.profiles, ['webhook', 'tianjin@county-west']);
      const compliance = await ok(await srv.api('GET', '/api/v1/feed/compliance?days=2', undefined, admin));
      assert.deepEqual(compliance.profiles.map((p) => p.profile), ['tianjin@county-west']);
      const metrics = (await srv.api('GET', '/metrics')).text;
      assert.match(metrics, /^telemed_upload_delivered_total\{node="[^"]*",profile="tianjin@county-west"\} 1$/m);
    } finally {
      await srv.stop();
      await core.close();
      await platform.close();
    }
  });

test('institution_feeds is checked at start: an undeclared member, a bad profile, tianjin without its key',
  { timeout: 60000 }, async () => {
    for (const [feeds, why] of [
      ['clinic-east|webhook|https://127.0.0.1:9/x|s', /every institution must be declared/],
      ['county-west|fax|https://127.0.0.1:9/x|s', /profile 'fax' is not webhook or tianjin/],
      ['county-west|tianjin|https://127.0.0.1:9/x|0123', /tianjin needs its app secret/],
      ['county-west|webhook|ftp://x|s', /the url is not https/]]) {
      const srv = await startServer({ args: ['--institutions', 'county-west|County West|ORG-WEST|2A|hospital'],
        env: { TELEMED_INSTITUTION_FEEDS: feeds } }).catch((e) => e);
      if (!(srv instanceof Error)) await srv.stop();
      assert.ok(srv instanceof Error, `started with ${feeds}`);
      assert.match(srv.message, why);
      assert.doesNotMatch(srv.message, /https:\/\/127\.0\.0\.1:9/);
    }
  });
