// outage.test.mjs - a visit survives the patient's network going away: after
// blackouts of 5, 10 and 30 s (every datagram dropped both ways, TCP held)
// and after the patient's address changes (the server sees the patient
// from a new IP and port, as after a Wi-Fi to 4G handover), audio and
// video flow again both ways, as each page's getStats() counts them, and
// the server's figures for supervisors show the patient's video frozen
// (frozen_ms) while the network is out and flowing again after.
// Recovery times are printed; the target is 3 s after the return, the
// assertion a generous cap so a loaded machine does not fail it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startImpairedVisit, closeVisit, outage, flowsBothWays, patientVideoFrozenMs, waitFor } from './lib_visit.mjs';

const OUTAGES = (process.env.TM_NET_OUTAGES || '5,10,30').split(',').filter(Boolean).map(Number);
const CAP_MS = 20000;

test('media comes back both ways after outages and an address change', { timeout: 600000 }, async (t) => {
  const ctx = await startImpairedVisit({ tag: 'outage' });
  if (!ctx) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  try {
    for (const s of OUTAGES) {
      await t.test(`${s} s outage`, async () => {
        // The server sees the patient's video freeze from what it forwards.
        const during = s >= 5 ? () => waitFor(async () => {
          const frozen = await patientVideoFrozenMs(ctx);
          return { ok: frozen >= 2000, frozen };
        }, 'the server did not see the video freeze', (s - 1) * 1000) : null;
        const ms = await outage(ctx, s, { capMs: CAP_MS, during });
        console.log(`recovery after a ${s} s outage: ${ms} ms`);
        await waitFor(async () => {
          const frozen = await patientVideoFrozenMs(ctx);
          return { ok: frozen === 0, frozen };
        }, 'the server still sees the video frozen', 10000);
      });
    }

    await t.test('address change mid-visit', async () => {
      await ctx.relay.cmd('rebind');
      const ms = await flowsBothWays(ctx, CAP_MS);
      console.log(`recovery after an address change: ${ms} ms`);
    });

    await t.test('the visit is still the same one, on both pages', async () => {
      assert.equal(await ctx.patient.evaluate(() => window.tm.state.visitId), ctx.visitId);
      assert.equal(await ctx.doctor.evaluate(() => window.tm.state.visitId), ctx.visitId);
      assert.deepEqual(ctx.patient.errors, []);
      assert.deepEqual(ctx.doctor.errors, []);
    });
  } finally {
    await closeVisit(ctx);
  }
});
