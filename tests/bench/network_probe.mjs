// network_probe.mjs - by hand, not under ctest: one visit with the patient's
// Chromium behind net_relay (tests/net), and for each impairment of the
// patient's network, both ways, 20 s of what each page received by its own
// getStats(): decoded frames, freezes and their length, lost packets, and
// the share of audio concealed. A first look at thin and lossy links; the
// issue 14 benchmark (against peer-to-peer) is still to come.
//
//   TELEMED_BUILD_DIR=$PWD/build-test TELEMED_BIN=$PWD/build-test/telemed-server \
//     node tests/bench/network_probe.mjs ['drop 5' 'rate 300' ...]
import { startImpairedVisit, closeVisit } from '../net/lib_visit.mjs';

const CELLS = process.argv.length > 2 ? process.argv.slice(2) : ['drop 5', 'drop 10', 'rate 1000', 'rate 300', 'delay 100 30'];
const WINDOW_MS = 20000;
const UNDO = { drop: 'drop 0', rate: 'rate 0', delay: 'delay 0 0', reorder: 'reorder 0' };

const received = (page) => page.evaluate(async () => {
  const out = {};
  (await window.tm.call.peer.pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    out[s.kind] = { frames: s.framesDecoded || 0, freezes: s.freezeCount || 0, freeze_s: s.totalFreezesDuration || 0,
      lost: s.packetsLost || 0, packets: s.packetsReceived || 0, concealed: s.concealedSamples || 0, samples: s.totalSamplesReceived || 0 };
  });
  return out;
});

function row(cell, who, a, b) {
  const v = (k, f) => (b[k]?.[f] || 0) - (a[k]?.[f] || 0);
  const conceal = v('audio', 'samples') ? (100 * v('audio', 'concealed')) / v('audio', 'samples') : 0;
  return `| ${cell} | ${who} | ${(v('video', 'frames') / (WINDOW_MS / 1000)).toFixed(1)} | ${v('video', 'freezes')} | ${v('video', 'freeze_s').toFixed(2)} | ${v('video', 'lost')} | ${v('audio', 'lost')} | ${conceal.toFixed(1)} % |`;
}

const ctx = await startImpairedVisit({ tag: 'probe' });
if (!ctx) throw new Error('cannot make a network namespace (needs root)');
try {
  console.log('| patient network | received by | video fps | freezes | frozen s | video lost | audio lost | audio concealed |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const cell of CELLS) {
    await ctx.relay.cmd(cell);
    const a = [await received(ctx.patient), await received(ctx.doctor)];
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const b = [await received(ctx.patient), await received(ctx.doctor)];
    console.log(row(cell, 'patient', a[0], b[0]));
    console.log(row(cell, 'doctor', a[1], b[1]));
    await ctx.relay.cmd(UNDO[cell.split(' ')[0]] || 'up');
    await new Promise((r) => setTimeout(r, 5000));
  }
} finally {
  await closeVisit(ctx);
}
