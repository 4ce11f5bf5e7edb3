// congestion.test.mjs - a patient's Chromium fits its sending to a thin
// uplink through the server: the visit negotiates transport-cc, the server
// answers it from the arrival times of the patient's packets, and when the
// patient's uplink is capped to 200 kbit/s with `tc tbf` in the patient's own
// network namespace, what the patient's page sends (its own getStats()) comes
// down under the cap while the doctor keeps getting video and sound. Times are printed; the assertions' caps are
// generous so a loaded machine does not fail them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startImpairedVisit, closeVisit, received, waitFor } from './lib_visit.mjs';

const CAP_KBPS = 200;
const WINDOW_MS = 2000;
const FIT_CAP_MS = 40000;

function tc(ns, args) {
  execFileSync('ip', ['netns', 'exec', ns.name, 'tc', ...args], { stdio: 'pipe' });
}

// The patient's datagrams to the server's media ports (its uplink) through a
// token bucket; everything else on the namespace's loopback, the way back
// included, passes as before (htb sorts, tbf caps: the kernel here has these
// and u32, not prio).
function capUplink(ctx, kbps) {
  tc(ctx.ns, ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '20']);
  for (const id of ['1:10', '1:20']) {
    tc(ctx.ns, ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', id, 'htb', 'rate', '10gbit', 'quantum', '60000']);
  }
  tc(ctx.ns, ['qdisc', 'add', 'dev', 'lo', 'parent', '1:10', 'handle', '10:', 'tbf',
    'rate', `${kbps}kbit`, 'burst', '5kb', 'latency', '200ms']);
  for (let port = ctx.mediaPorts.min; port <= ctx.mediaPorts.max; port++) {
    tc(ctx.ns, ['filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
      'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:10']);
  }
}

// What the patient's page has sent (RTP bytes, headers included, audio and
// video) and its estimate of what the path takes.
async function sent(page) {
  return page.evaluate(async () => {
    let bytes = 0, available = null;
    (await window.tm.call.peer.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp') bytes += (s.bytesSent || 0) + (s.headerBytesSent || 0);
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) available = s.availableOutgoingBitrate;
    });
    return { bytes, available, at: performance.now() };
  });
}

// The patient's send rate over the last WINDOW_MS, kbit/s.
async function sendRate(page) {
  const a = await sent(page);
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const b = await sent(page);
  return { kbps: Math.round(((b.bytes - a.bytes) * 8) / (b.at - a.at)), available: b.available && Math.round(b.available / 1000) };
}

test('a patient on a thin uplink sends what fits, told by the server', { timeout: 300000 }, async (t) => {
  const ctx = await startImpairedVisit({ tag: 'cc', args: ['--media-transport-cc'] });
  if (!ctx) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  try {
    await t.test('the visit negotiates transport-cc', async () => {
      const sdp = await ctx.patient.evaluate(() => window.tm.call.peer.pc.remoteDescription.sdp);
      assert.match(sdp, /a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/);
      assert.match(sdp, /a=rtcp-fb:\d+ transport-cc/);
    });

    await t.test('uncapped, the patient sends more than the cap will allow', async () => {
      const r = await waitFor(async () => {
        const rate = await sendRate(ctx.patient);
        return { ok: rate.kbps > CAP_KBPS * 1.5, ...rate };
      }, 'the patient never sent above the cap to begin with', 60000);
      console.log(`uncapped: patient sends ${r.kbps} kbit/s (estimate ${r.available} kbit/s)`);
    });

    await t.test(`capped to ${CAP_KBPS} kbit/s, the patient's sending fits within seconds`, async () => {
      const before = await Promise.all([received(ctx.doctor), received(ctx.patient)]);
      capUplink(ctx, CAP_KBPS);
      const t0 = Date.now();
      // Fits: two windows in a row at or under the cap (RTP bytes; the
      // bucket also counts SRTP, UDP and IP headers, so this is not loose).
      let fitsSince = null;
      const r = await waitFor(async () => {
        const rate = await sendRate(ctx.patient);
        const fits = rate.kbps <= CAP_KBPS;
        if (!fits) fitsSince = null;
        else if (fitsSince === null) fitsSince = Date.now() - WINDOW_MS - t0;
        return { ok: fits && Date.now() - t0 - fitsSince >= 2 * WINDOW_MS, fitsSince, ...rate };
      }, `the patient's sending did not come under ${CAP_KBPS} kbit/s`, FIT_CAP_MS);
      console.log(`capped: the patient's sending fits ${CAP_KBPS} kbit/s ${r.fitsSince} ms after the cap (${r.kbps} kbit/s, estimate ${r.available} kbit/s)`);
      assert.ok(r.available === null || r.available <= CAP_KBPS * 1.5, `the patient's estimate stayed at ${r.available} kbit/s`);
      // The visit goes on: the doctor still decodes the patient's video and hears them.
      const mid = await received(ctx.doctor);
      await new Promise((res) => setTimeout(res, 3000));
      const after = await received(ctx.doctor);
      assert.ok(after.frames > mid.frames, `the doctor's video of the patient froze: ${JSON.stringify({ mid, after })}`);
      assert.ok(after.audio > mid.audio && after.audio > before[0].audio, 'the doctor no longer hears the patient');
    });

  } finally {
    await closeVisit(ctx);
  }
});
