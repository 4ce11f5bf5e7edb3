// A queue change pushed to many waiting patients at once: large enough that
// the server writes the pushes on its fan-out threads (forced to two, so the
// parallel path runs on any machine). Every patient must get exactly its new
// position, in order with the rest of its messages, and the server's own
// push-latency histogram must count them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital } from './lib/server.mjs';

const PATIENTS = 150;
let srv;

before(async () => {
  srv = await startServer({ args: ['--fanout-threads', '2'] });
  await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio']] });
});
after(async () => { await srv.stop(); });

async function checkInMany(n) {
  const patients = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(Array.from({ length: Math.min(25, n - i) }, async (_, k) => {
      const c = await srv.client(`fan-${i + k}`, 'patient');
      c.visit = await c.request('checkin', { dept: 'cardio' });
      return c;
    }));
    patients.push(...batch);
  }
  return patients;
}

function metric(text, name) {
  const m = new RegExp(`^${name}\\{node="[^"]*"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

test('one accept moves every waiting patient up, each told its own new position', async () => {
  const patients = await checkInMany(PATIENTS);
  const positions = patients.map((p) => p.visit.position).sort((a, b) => a - b);
  assert.deepEqual(positions, Array.from({ length: PATIENTS }, (_, i) => i + 1));
  const before = metric((await srv.api('GET', '/metrics')).text, 'telemed_queue_push_seconds_count');

  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const offer = await doctor.waitFor('visit.offer');
  const head = patients.find((p) => p.visit.position === 1);
  assert.equal(offer.visit_id, head.visit.visit_id);
  await doctor.request('visit.accept', { visit_id: offer.visit_id });

  const rest = patients.filter((p) => p !== head);
  const pushes = await Promise.all(rest.map((p) =>
    p.waitFor('queue.position', (m) => m.position === p.visit.position - 1, 20000)));
  for (const [i, m] of pushes.entries()) {
    assert.equal(m.visit_id, rest[i].visit.visit_id);
    assert.equal(m.waiting, PATIENTS - 1);
  }
  // Nobody was told a position it never had.
  for (const p of rest) {
    const seen = p.pushes.filter((m) => m.type === 'queue.position').map((m) => m.position);
    assert.ok(seen.every((x) => x === p.visit.position || x === p.visit.position - 1), `${seen}`);
  }
  const after = metric((await srv.api('GET', '/metrics')).text, 'telemed_queue_push_seconds_count');
  assert.ok(after - before >= PATIENTS - 1, `push latency counted ${after - before}`);

  await Promise.all(patients.map((p) => p.close()));
  await doctor.close();
});
