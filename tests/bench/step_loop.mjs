// step_loop.mjs - how long the control loop keeps a cheap request waiting
// while visits run their steps on PostgreSQL (issue 19). Run by hand:
//
//   node tests/bench/step_loop.mjs --bin build-rel/telemed-server --pg-delay-ms 1
//
// A test-started PostgreSQL (tests/support/pg.sh) sits behind a loopback
// relay of this script's that holds every chunk --pg-delay-ms each way
// (1: a 2 ms round trip, another rack; 5: another building). --visits
// patient/doctor pairs run visits back to back (check-in, offer, accept,
// end, rating) for --seconds, while one more client sends `ping` (answered
// by the loop alone, no store), one at a time and at most one every
// --ping-every-ms (20), and times each answer.
// Prints the pings' p50/p99/max and the visits done. Everything on
// 127.0.0.1; the server gets SIGINT at the end.
import { parseArgs } from 'node:util';
import net from 'node:net';

const { values: opt } = parseArgs({
  options: {
    bin: { type: 'string' },
    'pg-delay-ms': { type: 'string', default: '1' },
    visits: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '30' },
    'ping-every-ms': { type: 'string', default: '20' },
  },
});
if (opt.bin) process.env.TELEMED_BIN = opt.bin;
const { startServer, setupHospital } = await import('../integration/lib/server.mjs');
const { startPg } = await import('../integration/lib/pg.mjs');

const delayMs = Number(opt['pg-delay-ms']);
const pairs = Number(opt.visits);
const seconds = Number(opt.seconds);
const pingEvery = Number(opt['ping-every-ms']);

// Holds every chunk delayMs in each direction, in order.
async function delayRelay(port) {
  const server = net.createServer((client) => {
    const pg = net.connect(port, '127.0.0.1');
    const later = (to) => (d) => setTimeout(() => to.write(d), delayMs);
    client.on('data', later(pg));
    pg.on('data', later(client));
    const end = () => { client.destroy(); pg.destroy(); };
    for (const s of [client, pg]) { s.on('error', end); s.on('close', end); }
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return server;
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

const pg = startPg();
const url = new URL(pg.url);
const relay = await delayRelay(Number(url.port));
url.port = String(relay.address().port);
const srv = await startServer({ db: url.toString(),
  args: ['--no-recording', '--rate-msgs-per-s', '10000', '--rate-burst', '100000'] });
try {
  const doctors = Array.from({ length: pairs }, (_, i) => [`d${i + 1}`, 'cardio']);
  await setupHospital(srv, { doctors });
  const docs = await Promise.all(doctors.map(([id]) => srv.client(id, 'doctor')));
  for (const d of docs) await d.request('doctor.status', { status: 'available' });
  // Each doctor accepts whatever it is offered, and ends it at once.
  const steps = { visits: 0 };
  for (const d of docs) {
    d.onOffer = async () => {
      for (;;) {
        const offer = await d.waitFor('visit.offer', () => true, 600000);
        d.pushes.splice(d.pushes.indexOf(offer), 1);
        await d.request('visit.accept', { visit_id: offer.visit_id }, 120000);
        await d.request('visit.end', { visit_id: offer.visit_id, reason: 'completed' }, 120000);
      }
    };
    d.onOffer().catch(() => {});
  }
  const end = Date.now() + seconds * 1000;
  const patient = async (i) => {
    const p = await srv.client(`p${i}`, 'patient');
    while (Date.now() < end) {
      const ci = await p.request('checkin', { dept: 'cardio', kind: 'follow_up' }, 120000);
      await p.waitFor('visit.state', (m) => m.visit_id === ci.visit_id && m.state === 'ended', 120000);
      p.pushes.length = 0;
      await p.request('visit.rate', { visit_id: ci.visit_id, score: 5 }, 120000);
      steps.visits++;
    }
    await p.close();
  };
  const pinger = await srv.client('p-ping', 'patient');
  const rtts = [];
  const pinging = (async () => {
    // One every --ping-every-ms at most, so a stalled loop and a free one
    // give comparable numbers of samples.
    while (Date.now() < end) {
      const next = Date.now() + pingEvery;
      const t = process.hrtime.bigint();
      const pong = await pinger.request('ping', {}, 120000);
      if (typeof pong.server_time !== 'string') throw new Error(`not a pong: ${JSON.stringify(pong)}`);
      rtts.push(Number(process.hrtime.bigint() - t) / 1e6);
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
  })();
  await Promise.all([pinging, ...Array.from({ length: pairs }, (_, i) => patient(i))]);
  rtts.sort((a, b) => a - b);
  const f = (v) => v.toFixed(1);
  console.log(`pg_delay_ms_each_way=${delayMs} pairs=${pairs} seconds=${seconds} visits=${steps.visits}` +
    ` pings=${rtts.length} ping_p50_ms=${f(pct(rtts, 0.5))} ping_p99_ms=${f(pct(rtts, 0.99))}` +
    ` ping_max_ms=${f(rtts[rtts.length - 1])}`);
  await pinger.close();
  for (const d of docs) await d.close().catch(() => {});
} finally {
  await srv.stop();
  relay.close();
  pg.stop();
}
process.exit(0);
