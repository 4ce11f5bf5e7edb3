// restart_pace.test.mjs - the page's recovery paces its ICE restarts. The
// patient's datagrams are all dropped while its signaling stays up (a link
// so saturated that nothing but TCP gets through): the page restarts ICE,
// and again while nothing arrives, each restart at least 2, 4, 8 s after the
// one before (doubling to 10 s), one offer at a time; restarting at once
// again re-keyed every stream with keyframes such a link cannot carry (11
// restarts in 10 s were seen). Once datagrams pass again media flows both
// ways and the pace is back at its first step. The gaps are read from the
// page's own clock, so a loaded machine only makes them longer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startImpairedVisit, closeVisit, flowsBothWays, waitFor } from './lib_visit.mjs';

const RESTARTS = 4;
const MIN_GAPS_MS = [2000, 4000, 8000];
const CAP_MS = 150000;

test('the page paces its ICE restarts while nothing gets through', { timeout: 300000 }, async (t) => {
  const ctx = await startImpairedVisit({ tag: 'pace' });
  if (!ctx) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  try {
    const restarts = []; // {n, at} from the patient page's own clock
    ctx.patient.on('console', (m) => {
      const r = /^telemed: media ice restart (\d+) at=(\d+)/.exec(m.text());
      if (r) restarts.push({ n: Number(r[1]), at: Number(r[2]) });
    });
    const offers = () => ctx.srv.logs.split('\n').filter((l) => l.includes('ev=media.offer ') && l.includes('peer=patient:') && l.includes('kind=ice restart')).length;
    const offersBefore = offers();
    await ctx.relay.cmd('drop 100');
    await waitFor(async () => ({ ok: restarts.length >= RESTARTS, restarts }), `fewer than ${RESTARTS} ICE restarts with nothing getting through`, CAP_MS);
    await ctx.relay.cmd('drop 0');
    const back = await flowsBothWays(ctx, 60000);
    const gaps = restarts.slice(1, RESTARTS).map((r, i) => r.at - restarts[i].at);
    console.log(`restart gaps (ms): ${gaps.join(', ')}; ${offers() - offersBefore} restart offers reached the server; media back ${back} ms after the link`);
    MIN_GAPS_MS.forEach((min, i) => assert.ok(gaps[i] >= min, `restart ${i + 2} came ${gaps[i]} ms after the one before, want >= ${min}`));
    assert.ok(offers() - offersBefore <= restarts.length, 'the server got more restart offers than the page made');
    const pace = await waitFor(async () => {
      const wait = await ctx.patient.evaluate(() => window.tm.call.peer.restartPace.wait);
      return { ok: wait === MIN_GAPS_MS[0], wait };
    }, 'the restart pace did not go back to its first step once connected', 30000);
    assert.equal(pace.wait, MIN_GAPS_MS[0]);
    const pcs = await ctx.patient.evaluate(() => window.tm.call.peer.pc.connectionState);
    assert.equal(pcs, 'connected');
  } finally {
    await closeVisit(ctx);
  }
});
