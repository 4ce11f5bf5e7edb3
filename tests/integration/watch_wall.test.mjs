// watch_wall.test.mjs - a supervisor watches several live visits at once
// (the video wall): each watch is its own, audited, with its participants
// told; unwatching one leaves the others; a tenth is refused; a drop ends
// them all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital } from './lib/server.mjs';

const N = 10; // one more than a supervisor may watch at once
let srv;
before(async () => {
  srv = await startServer();
  const doctors = Array.from({ length: N }, (_, i) => [`dw${i}`, 'cardio']);
  await setupHospital(srv, { depts: ['cardio'], doctors });
});
after(async () => { await srv.stop(); });

// N active visits, one per doctor: the doctor alone on duty takes the offer.
async function liveVisits(clients) {
  const visits = [];
  for (let i = 0; i < N; i++) {
    const doctor = await srv.client(`dw${i}`, 'doctor');
    const patient = await srv.client(`pw${i}`, 'patient');
    clients.push(doctor, patient);
    await doctor.request('doctor.status', { status: 'available' });
    const ci = await patient.request('checkin', { dept: 'cardio' });
    await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
    await doctor.request('visit.accept', { visit_id: ci.visit_id });
    await patient.waitFor('visit.state', (m) => m.state === 'active');
    visits.push({ id: ci.visit_id, doctor, patient });
  }
  return visits;
}

test('a supervisor watches nine visits at once, unwatches one, and is refused a tenth', { timeout: 120000 }, async () => {
  const clients = [];
  try {
    const visits = await liveVisits(clients);
    const sup = await srv.client('s-wall', 'supervisor');
    clients.push(sup);
    for (const v of visits.slice(0, 9)) {
      const r = await sup.request('visit.watch', { visit_id: v.id });
      assert.equal(r.visit_id, v.id);
      const told = await v.patient.waitFor('visit.supervisor', (m) => m.visit_id === v.id && m.present);
      assert.equal(told.count, 1);
    }
    // Watching one of them again changes nothing; a tenth is one too many.
    await sup.request('visit.watch', { visit_id: visits[0].id });
    await assert.rejects(sup.request('visit.watch', { visit_id: visits[9].id }), /conflict.*too many|too many/);

    // The supervisor's media is allowed for a watched visit only.
    await assert.rejects(sup.request('media.offer', { visit_id: visits[9].id, sdp: 'v=0\r\n' }), /watch the visit first/);

    // Unwatching one by id tells its participants; the others stay watched.
    await sup.request('visit.unwatch', { visit_id: visits[1].id });
    const gone = await visits[1].patient.waitFor('visit.supervisor', (m) => m.present === false);
    assert.equal(gone.count, 0);
    await assert.rejects(sup.request('visit.unwatch', { visit_id: visits[1].id }), /not watching/);
    await assert.rejects(sup.request('media.offer', { visit_id: visits[1].id, sdp: 'v=0\r\n' }), /watch the visit first/);
    const ov = await sup.request('overview.subscribe', {});
    assert.ok(ov !== undefined);
    const push = await sup.waitFor('overview', (m) => (m.visits || []).length === N);
    const watched = push.visits.filter((v) => v.watchers === 1).map((v) => v.id).sort();
    assert.deepEqual(watched, visits.filter((_, i) => i < 9 && i !== 1).map((v) => v.id).sort());

    // The freed place takes the tenth.
    await sup.request('visit.watch', { visit_id: visits[9].id });

    // A drop ends every watch, each on the audit log and told to its visit.
    await sup.drop();
    for (const i of [0, 8, 9]) {
      const off = await visits[i].patient.waitFor('visit.supervisor', (m) => m.present === false);
      assert.equal(off.visit_id, visits[i].id);
    }
    const rows = srv.sql(`SELECT action, count(*) n FROM audit_log WHERE actor_id='s-wall' AND action LIKE 'visit.%watch' GROUP BY action ORDER BY action`);
    assert.deepEqual(rows, [{ action: 'visit.unwatch', n: 10 }, { action: 'visit.watch', n: 10 }]);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
  }
});
