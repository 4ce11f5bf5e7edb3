// visit_chain.test.mjs - the hash chain over a visit's regulator events in
// the real server: a visit over telemed.v1, its chain checked through REST,
// then an event changed in the database behind the server's back (as a
// person with the sqlite3 shell would) and found.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { startServer, setupHospital, fullVisit } from './lib/server.mjs';

test('a visit\'s event chain verifies, and a changed event is named', { timeout: 60000 }, async () => {
  const srv = await startServer({});
  try {
    const admin = await setupHospital(srv);
    const visit = await fullVisit(srv, 'p1', { reason: 'terminate_and_refer', score: 5 });
    let r = await srv.api('GET', `/api/v1/visits/${visit}/chain`, undefined, admin);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true);
    assert.equal(r.json.events, 5);
    assert.equal(r.json.chained, 5);
    assert.match(r.json.head, /^[0-9a-f]{64}$/);

    execFileSync('sqlite3', [srv.db, `UPDATE outbox SET payload = replace(payload, 'terminate_and_refer', 'completed') WHERE visit_id = '${visit}' AND type = 'visit.ended'`]);
    r = await srv.api('GET', `/api/v1/visits/${visit}/chain`, undefined, admin);
    assert.equal(r.json.ok, false);
    assert.deepEqual(r.json.problems.map((p) => p.type), ['visit.ended']);
    const audit = srv.sql(`SELECT outcome FROM audit_log WHERE action = 'visit.chain' ORDER BY id`);
    assert.deepEqual(audit.map((a) => a.outcome), ['ok', 'failed']);

    const doctor = srv.token('d1', 'doctor');
    assert.equal((await srv.api('GET', `/api/v1/visits/${visit}/chain`, undefined, doctor)).status, 403);
    assert.equal((await srv.api('GET', '/api/v1/visits/nope/chain', undefined, admin)).status, 404);
  } finally {
    await srv.stop();
  }
});
