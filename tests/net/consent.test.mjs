// consent.test.mjs - a patient on a lossy link keeps its ICE session. With a
// quarter of the datagrams lost each way, some of the server's consent checks
// to the patient (one datagram each, about 5 s apart) or their answers are
// lost while the patient's media keeps arriving. The server must not declare
// the patient failed for that (media.ice_failed): the page then restarted ICE
// and every stream waited for keyframes, which on a thin link froze the
// video for seconds. The loss stays on until CHECKS of the server's checks
// have crossed the relay (about a minute), capped generously; then both pages
// must still be on their first connection, connected, hearing each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startImpairedVisit, closeVisit, received, waitFor } from './lib_visit.mjs';

const LOSS_PCT = 25;
const CHECKS = 20;
const CAP_MS = 180000;

const count = (logs, ev) => logs.split('\n').filter((l) => l.includes(`ev=${ev} `)).length;
const restarts = (page) => page.evaluate(() => window.tm.call.peer.restarts || 0);

test(`a patient losing ${LOSS_PCT} % of datagrams each way keeps its ICE session`, { timeout: 300000 }, async (t) => {
  const ctx = await startImpairedVisit({ tag: 'consent' });
  if (!ctx) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  try {
    const failedBefore = count(ctx.srv.logs, 'media.ice_failed');
    const renewedBefore = count(ctx.srv.logs, 'media.consent_renewed');
    const before = await Promise.all([received(ctx.patient), received(ctx.doctor)]);
    const restartsBefore = await Promise.all([restarts(ctx.patient), restarts(ctx.doctor)]);
    const stats0 = await ctx.relay.stats();
    await ctx.relay.cmd(`drop ${LOSS_PCT}`);
    const t0 = Date.now();
    const r = await waitFor(async () => {
      const st = await ctx.relay.stats();
      const failed = count(ctx.srv.logs, 'media.ice_failed') - failedBefore;
      return { ok: failed > 0 || st.down_checks - stats0.down_checks >= CHECKS, failed, checks: st.down_checks - stats0.down_checks, st };
    }, `fewer than ${CHECKS} consent checks crossed the relay`, CAP_MS);
    await ctx.relay.cmd('drop 0');
    const after = await Promise.all([received(ctx.patient), received(ctx.doctor)]);
    const renewed = count(ctx.srv.logs, 'media.consent_renewed') - renewedBefore;
    const restarted = (await Promise.all([restarts(ctx.patient), restarts(ctx.doctor)])).map((n, i) => n - restartsBefore[i]);
    const lost = r.st.down_dropped - stats0.down_dropped + r.st.up_dropped - stats0.up_dropped;
    console.log(`${r.checks} consent checks in ${Date.now() - t0} ms at ${LOSS_PCT} % loss (${lost} datagrams dropped): ` +
      `${r.failed} ICE failures, ${renewed} consent renewals, ICE restarts by the pages ${restarted.join('/')}; patient ${JSON.stringify(after[0])}, doctor ${JSON.stringify(after[1])}`);
    assert.equal(r.failed, 0, 'the server declared the patient failed although its media kept arriving');
    for (const [who, b, a] of [['patient', before[0], after[0]], ['doctor', before[1], after[1]]]) {
      assert.equal(a.pcs, b.pcs, `the ${who}'s page made a new connection`);
      assert.equal(a.state, 'connected', `the ${who}'s connection is ${a.state}`);
      assert.ok(a.audio > b.audio, `the ${who} stopped hearing the other side`);
    }
  } finally {
    await closeVisit(ctx);
  }
});
