// Remote ICE candidates are addresses the server sends STUN to, named by a
// participant (issue 12 item 6). UDP listeners on 127.0.0.1 count the binding
// requests that arrive while a peer trickles 100, and another 400, candidates
// pointing at them: at most media_max_candidates (20) listeners are checked,
// each a bounded number of times, and every candidate past the cap is refused
// with a clear error. Addresses the server does not serve (it serves loopback
// here) are refused and cost nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, setupHospital, sleep } from './lib/server.mjs';

const SRC = process.env.TELEMED_SRC_DIR || '.';
const CAP = 20;
// libnice sends a check and up to 3 retransmissions per pair (stun-max-retransmissions).
const PER_PAIR = 4;

let srv;
before(async () => {
  // Signaling's own rate limit set out of the way: this is about media's.
  srv = await startServer({ args: ['--rate-msgs-per-s', '10000', '--rate-burst', '100000',
    '--media-max-candidates', String(CAP)] });
  await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio'], ['d2', 'cardio'], ['d3', 'cardio']] });
});
after(async () => { await srv.stop(); });

// UDP listeners on free loopback ports, counting STUN binding requests.
async function listeners(n) {
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.stun = [];
    s.on('message', (b) => {
      if (b.length >= 20 && b[0] === 0x00 && b[1] === 0x01) s.stun.push(Date.now());
    });
    s.bind(0, '127.0.0.1', () => resolve(s));
  })));
  return {
    socks,
    total: () => socks.reduce((a, s) => a + s.stun.length, 0),
    hit: () => socks.filter((s) => s.stun.length > 0).length,
    times: () => socks.flatMap((s) => s.stun).sort((a, b) => a - b),
    close: () => socks.forEach((s) => s.close()),
  };
}

const cand = (i, addr, port) => `candidate:${1000 + i} 1 udp ${2122260223 - i} ${addr} ${port} typ host`;

// An active visit; the participant's offer answered. Returns its client.
async function visitWithOffer(patientId, doctorId) {
  const doctor = await srv.client(doctorId, 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio' });
  await doctor.waitFor('visit.offer', () => true, 30000);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active', 30000);
  await offer(patient, ci.visit_id, 'Kq3L');
  return { doctor, patient, visitId: ci.visit_id };
}

// The browser's offer; a new ufrag is an ICE restart.
async function offer(client, visitId, ufrag) {
  const sdp = readFileSync(join(SRC, 'tests/media/data/chrome_offer.sdp'), 'utf8')
    .replaceAll('a=ice-ufrag:Kq3L', `a=ice-ufrag:${ufrag}`);
  await client.request('media.offer', { visit_id: visitId, sdp });
  await client.waitFor('media.answer', () => true, 30000);
}

// Trickles one candidate per listener (then end-of-candidates); returns how
// many were accepted and the refusals' messages.
async function trickle(client, visitId, l) {
  const outcomes = await Promise.all(l.socks.map((s, i) =>
    client.request('media.candidate', { visit_id: visitId, sdpMid: '0',
      candidate: cand(i, '127.0.0.1', s.address().port) }, 60000)
      .then(() => null, (e) => e.message)));
  await client.request('media.candidate', { visit_id: visitId, sdpMid: '0', candidate: '' });
  return { ok: outcomes.filter((o) => o === null).length, refused: outcomes.filter((o) => o !== null) };
}

// The peer's ICE fails once every pair has failed (end-of-candidates given):
// then no more checks come. Wait for that, with a generous cap, and a while more.
async function checksOver(client, l) {
  await client.waitFor('media.state', (m) => m.state === 'failed', 120000);
  const n = l.total();
  await sleep(3000);
  assert.equal(l.total(), n, 'checks went on after ICE failed');
}

function busiestSecond(times) {
  let best = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while (times[j] - times[i] >= 1000) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

test('candidates the deployment does not serve are refused with a clear error', async () => {
  const { doctor, patient, visitId } = await visitWithOffer('p-ice-1', 'd1');
  const refused = ['10.1.2.3', '192.168.1.7', '172.20.0.5', '100.64.0.1', '169.254.9.9', '224.0.0.251',
    '255.255.255.255', '0.0.0.0', '::1', 'fe80::1', 'fd00::5', 'ff02::1', '4f0e2a1b-aaaa.local'];
  for (const [i, addr] of refused.entries()) {
    await assert.rejects(patient.request('media.candidate', { visit_id: visitId, sdpMid: '0',
      candidate: cand(i, addr, 40000 + i) }),
    (e) => e.code === 'bad_request' && /candidate refused: the server sends no checks/.test(e.message), addr);
  }
  await assert.rejects(patient.request('media.candidate', { visit_id: visitId, sdpMid: '0',
    candidate: 'candidate:garbage' }), /bad_request: candidate refused: not a valid ICE candidate/);
  // They used none of the peer's budget: CAP loopback candidates still go in.
  const l = await listeners(CAP);
  const r = await trickle(patient, visitId, l);
  assert.equal(r.ok, CAP);
  await checksOver(patient, l);
  assert.ok(l.hit() > 0, 'loopback (served here) is checked');
  l.close();
  await doctor.request('visit.end', { visit_id: visitId, reason: 'completed' });
  await patient.close();
  await doctor.close();
});

for (const n of [100, 400]) {
  test(`${n} trickled candidates: at most ${CAP} get checks, the rest are refused`, async () => {
    const { doctor, patient, visitId } = await visitWithOffer(`p-ice-${n}`, n === 100 ? 'd2' : 'd3');
    const l = await listeners(n);
    const r = await trickle(patient, visitId, l);
    assert.equal(r.ok, CAP);
    assert.equal(r.refused.length, n - CAP);
    for (const m of r.refused) assert.match(m, /bad_request: candidate refused: this peer has given the most candidates/);
    await checksOver(patient, l);
    const times = l.times();
    console.log(`${n} candidates: ${l.total()} binding requests to ${l.hit()} ports; busiest second ${busiestSecond(times)}`);
    assert.ok(l.hit() > 0 && l.hit() <= CAP, `ports checked: ${l.hit()}`);
    assert.ok(l.total() <= CAP * PER_PAIR, `binding requests: ${l.total()}`);
    l.close();
    if (n === 100) {
      // An ICE restart is a new session with a budget of its own.
      await offer(patient, visitId, 'Rs7T');
      const again = await listeners(1);
      assert.equal((await trickle(patient, visitId, again)).ok, 1);
      again.close();
    }
    await doctor.request('visit.end', { visit_id: visitId, reason: 'completed' });
    await patient.close();
    await doctor.close();
  });
}
