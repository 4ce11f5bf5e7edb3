// network_quality.mjs - by hand, not under ctest: the issue 14 benchmark. The
// same two Chromiums (the patient's in a network namespace behind net_relay,
// the doctor's on loopback) once connected peer-to-peer (the anchor: what the
// browsers do with no server) and once through telemed; for each impairment
// of the patient's network, what each page received by its own getStats():
// recovery after an outage (first decoded frame and first audio packet after
// the network's return), freezes and frozen seconds per minute, frame rate,
// bitrate and the share of audio concealed.
//
//   TELEMED_BUILD_DIR=$PWD/build-test TELEMED_BIN=$PWD/build-test/telemed-server \
//     node tests/bench/network_quality.mjs ['outage 10' 'rate 300' 'drop 5' ...] \
//     [--setup=remb: --setup=twcc:--media-transport-cc ...]
//
// TM_BENCH_LOGS=DIR keeps each setup's server log there as NAME.log.
// Each --setup=NAME:ARGS runs the cells through telemed once more with the
// server started with ARGS (space-separated), named NAME in the table; none
// is one run with the server's defaults, named "telemed".
//
// Peer-to-peer through the relay: the doctor's Chromium takes its ICE ports
// from a range the relay serves (the webrtc.udp_port_range preference of its
// own profile), so the patient's checks reach it only across the relay, and
// it learns the patient's address from them (peer-reflexive).
import http from 'node:http';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startImpairedVisit, closeVisit } from '../net/lib_visit.mjs';
import { startRelay, freeUdpRange, makeNetns } from '../net/lib_net.mjs';
import { CHROMIUM_ARGS } from '../web/lib.mjs';

const ARGS = process.argv.slice(2);
const SETUPS = ARGS.filter((a) => a.startsWith('--setup=')).map((a) => {
  const [name, ...rest] = a.slice('--setup='.length).split(':');
  return { name, args: rest.join(':').split(' ').filter(Boolean) };
});
if (!SETUPS.length) SETUPS.push({ name: 'telemed', args: [] });
const CELL_ARGS = ARGS.filter((a) => !a.startsWith('--'));
const CELLS = CELL_ARGS.length ? CELL_ARGS : ['outage 10', 'rate 300', 'drop 5'];
const WINDOW_MS = Number(process.env.TM_BENCH_WINDOW_MS) || 30000;
const SETTLE_MS = 8000;
const UNDO = { drop: 'drop 0', rate: 'rate 0', delay: 'delay 0 0', reorder: 'reorder 0' };

// What a page received so far on its PeerConnection: the telemed page's
// (pcOf 'tm'), or the bare one of the peer-to-peer page.
function counters(page, pcOf) {
  return page.evaluate(async (of) => {
    const pc = of === 'tm' ? window.tm.call && window.tm.call.peer && window.tm.call.peer.pc : window.pc;
    const out = { pc: pc ? pc.__id || (pc.__id = Math.random()) : 0, video: {}, audio: {} };
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[s.kind] = { frames: s.framesDecoded || 0, freezes: s.freezeCount || 0, freeze_s: s.totalFreezesDuration || 0,
        packets: s.packetsReceived || 0, bytes: s.bytesReceived || 0, concealed: s.concealedSamples || 0, samples: s.totalSamplesReceived || 0 };
    });
    return out;
  }, pcOf);
}

function figures(a, b, ms) {
  const d = (k, f) => (b[k][f] || 0) - (a.pc === b.pc ? a[k][f] || 0 : 0);
  const min = ms / 60000;
  return {
    freezes: d('video', 'freezes') / min,
    frozen: d('video', 'freeze_s') / min,
    fps: d('video', 'frames') / (ms / 1000),
    kbps: ((d('video', 'bytes') + d('audio', 'bytes')) * 8) / ms,
    concealed: d('audio', 'samples') ? (100 * d('audio', 'concealed')) / d('audio', 'samples') : 0,
  };
}

// From the network's return until each page decodes a new frame and gets new
// audio: {video, audio} in ms, the later of the two pages.
async function recovery(pages, capMs) {
  const t0 = Date.now();
  const base = await Promise.all(pages.map(([p, e]) => counters(p, e)));
  const got = { video: null, audio: null };
  const seen = pages.map(() => ({ video: false, audio: false }));
  while (Date.now() - t0 < capMs && (got.video === null || got.audio === null)) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await Promise.all(pages.map(([p, e]) => counters(p, e)));
    for (let i = 0; i < pages.length; i++) {
      const fresh = now[i].pc !== base[i].pc;
      if ((now[i].video.frames || 0) > (fresh ? 0 : base[i].video.frames || 0)) seen[i].video = true;
      if ((now[i].audio.packets || 0) > (fresh ? 0 : base[i].audio.packets || 0)) seen[i].audio = true;
    }
    for (const k of ['video', 'audio']) if (got[k] === null && seen.every((s) => s[k])) got[k] = Date.now() - t0;
  }
  return got;
}

async function runCells(setup, relay, pages) {
  const rows = [];
  for (const cell of CELLS) {
    const [what, arg] = cell.split(' ');
    const a = await Promise.all(pages.map(([p, e]) => counters(p, e)));
    const t0 = Date.now();
    let rec = null;
    if (what === 'outage') {
      await relay.cmd(`blackout ${Number(arg) * 1000}`);
      await new Promise((r) => setTimeout(r, Number(arg) * 1000));
      rec = await recovery(pages, WINDOW_MS);
    } else {
      await relay.cmd(cell);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, WINDOW_MS - (Date.now() - t0))));
    const b = await Promise.all(pages.map(([p, e]) => counters(p, e)));
    const ms = Date.now() - t0;
    if (UNDO[what]) await relay.cmd(UNDO[what]);
    for (let i = 0; i < pages.length; i++) rows.push({ cell, setup, who: ['patient', 'doctor'][i], rec, ...figures(a[i], b[i], ms) });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
  }
  return rows;
}

async function telemed({ name, args }) {
  const ctx = await startImpairedVisit({ tag: 'bench', args });
  if (!ctx) throw new Error('cannot make a network namespace (needs root)');
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return await runCells(name, ctx.relay, [[ctx.patient, 'tm'], [ctx.doctor, 'tm']]);
  } finally {
    // The server's log of each setup (layer choices, estimates) when asked for.
    if (process.env.TM_BENCH_LOGS) writeFileSync(join(process.env.TM_BENCH_LOGS, `${name}.log`), ctx.srv.logs);
    await closeVisit(ctx);
  }
}

// A browser whose profile pins its ICE ports to range; in netns when given.
async function browserWithPorts(range, ns, closers) {
  const dir = mkdtempSync(join(tmpdir(), 'tm-p2p-profile-'));
  closers.unshift(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'Default'));
  writeFileSync(join(dir, 'Default', 'Preferences'), JSON.stringify({ webrtc: { udp_port_range: `${range.min}-${range.max}` } }));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: ns ? ns.chromium : (process.env.CHROMIUM_BIN || '/usr/bin/chromium'), args: CHROMIUM_ARGS, headless: true, timeout: 30000,
  });
  closers.unshift(() => ctx.close());
  return ctx.newPage();
}

async function p2p() {
  const closers = [];
  try {
    const ns = makeNetns('p2p');
    if (!ns) throw new Error('cannot make a network namespace (needs root)');
    closers.unshift(() => ns.remove());
    const server = http.createServer((req, res) => { res.setHeader('content-type', 'text/html'); res.end('<!doctype html><title>p2p</title>'); });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    closers.unshift(() => new Promise((r) => server.close(r)));
    const docPorts = await freeUdpRange(8);
    const patPorts = await freeUdpRange(8); // nothing on the host listens there
    const relay = await startRelay({ udpPorts: `${docPorts.min}-${docPorts.max}`, tcpPorts: [server.address().port], netns: ns.name });
    closers.unshift(() => relay.stop());
    const doctor = await browserWithPorts(docPorts, null, closers);
    const patient = await browserWithPorts(patPorts, ns, closers);
    const url = `http://127.0.0.1:${server.address().port}/`;
    for (const page of [doctor, patient]) {
      await page.goto(url);
      await page.evaluate(async () => {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
        window.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        for (const t of stream.getTracks()) window.pc.addTrack(t, stream);
        // Played, as the telemed pages play it: audio is only pulled (and
        // its concealment counted) when something plays it.
        window.pc.ontrack = (e) => {
          const m = document.createElement(e.track.kind);
          m.autoplay = true;
          m.srcObject = new MediaStream([e.track]);
          document.body.append(m);
          m.play().catch(() => {});
        };
      });
    }
    const gathered = (page, fn) => page.evaluate(async (f) => {
      const pc = window.pc;
      if (f === 'offer') await pc.setLocalDescription(await pc.createOffer());
      else await pc.setLocalDescription(await pc.createAnswer());
      if (pc.iceGatheringState !== 'complete') await new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
      return pc.localDescription.toJSON();
    }, fn);
    const offer = await gathered(patient, 'offer');
    await doctor.evaluate((o) => window.pc.setRemoteDescription(o), offer);
    const answer = await gathered(doctor, 'answer');
    await patient.evaluate((a) => window.pc.setRemoteDescription(a), answer);
    for (const page of [patient, doctor]) {
      await page.waitForFunction(() => window.pc.connectionState === 'connected', null, { timeout: 30000 });
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return await runCells('p2p', relay, [[patient, 'p2p'], [doctor, 'p2p']]);
  } finally {
    for (const c of closers) {
      try { await c(); } catch (e) { console.log(`cleanup: ${e.message}`); }
    }
  }
}

const rows = await p2p();
for (const setup of SETUPS) rows.push(...await telemed(setup));
const f1 = (v) => v.toFixed(1);
console.log(`window ${WINDOW_MS / 1000} s per cell, impairment on the patient's side; load ${(await import('node:os')).loadavg()[0].toFixed(1)}`);
console.log('| patient network | path | received by | video back s | audio back s | freezes /min | frozen s /min | video fps | kbit/s | audio concealed |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  const back = (k) => (r.rec ? (r.rec[k] === null ? 'never' : (r.rec[k] / 1000).toFixed(2)) : '');
  console.log(`| ${r.cell} | ${r.setup} | ${r.who} | ${back('video')} | ${back('audio')} | ${f1(r.freezes)} | ${f1(r.frozen)} | ${f1(r.fps)} | ${Math.round(r.kbps)} | ${f1(r.concealed)} % |`);
}
for (const cell of CELLS) {
  const sum = (setup) => rows.filter((r) => r.cell === cell && r.setup === setup).reduce((a, r) => a + r.frozen, 0);
  const p = sum('p2p');
  for (const { name } of SETUPS) {
    const t = sum(name);
    console.log(`${cell}: frozen s/min ${name} ${f1(t)} vs p2p ${f1(p)}${p > 0 ? ` (ratio ${(t / p).toFixed(2)})` : ''}`);
  }
}
