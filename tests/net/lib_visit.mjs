// lib_visit.mjs - a visit between a doctor's Chromium on loopback and a
// patient's Chromium in a network namespace of the test's own, whose every
// byte to the server crosses net_relay: the patient's network, which the
// tests then break.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startHospital, launch, openPage, waitView, patientCheckin, doctorOnDuty, CHROMIUM_ARGS } from '../web/lib.mjs';
import { startRelay, freeUdpRange, makeNetns } from './lib_net.mjs';

const MEDIA_PORTS = 16;

// Starts everything and brings the visit to flowing media both ways.
// Returns null (and says why) when the machine cannot make a namespace.
export async function startImpairedVisit({ tag = 'visit', args = [] } = {}) {
  const ns = makeNetns(tag);
  if (!ns) return null;
  const ports = await freeUdpRange(MEDIA_PORTS);
  return startVisit({
    tag, ns, mediaPorts: ports, args: ['--media-port-min', String(ports.min), '--media-port-max', String(ports.max), ...args],
    relayFor: (srv) => startRelay({ udpPorts: `${ports.min}-${ports.max}`, tcpPorts: [srv.port], netns: ns.name }),
  });
}

// A visit between two Chromiums through a real server. ns: the patient's
// namespace (with relayFor, its relay); patientInit: a script run in the
// patient's page before the client's own (its browser's configuration).
export async function startVisit({ tag = 'visit', args = [], ns = null, mediaPorts = null, relayFor = null, patientInit = null } = {}) {
  const ctx = { ns, mediaPorts, closers: ns ? [() => ns.remove()] : [] };
  try {
    ctx.srv = await startHospital({ args });
    ctx.closers.unshift(() => ctx.srv.stop());
    if (relayFor) {
      ctx.relay = await relayFor(ctx.srv);
      ctx.closers.unshift(() => ctx.relay.stop());
    }
    ctx.doctorBrowser = await launch();
    ctx.closers.unshift(() => ctx.doctorBrowser.close());
    ctx.patientBrowser = ns ? await chromium.launch({ executablePath: ns.chromium, args: CHROMIUM_ARGS, timeout: 30000 }) : ctx.doctorBrowser;
    if (ns) ctx.closers.unshift(() => ctx.patientBrowser.close());
    ctx.doctor = await openPage(ctx.doctorBrowser, ctx.srv, 'doctor.html', 'd1', 'doctor');
    ctx.patient = await openPatient(ctx.patientBrowser, ctx.srv, `p-${tag}`, patientInit);
    // The pages' recovery decisions, with the time, for the test's log.
    for (const [who, page] of [['patient', ctx.patient], ['doctor', ctx.doctor]]) {
      page.on('console', (m) => { if (/^telemed: media/.test(m.text())) console.log(`${new Date().toISOString()} [${who}] ${m.text()}`); });
    }
    await doctorOnDuty(ctx.doctor);
    await patientCheckin(ctx.patient);
    await ctx.doctor.waitForSelector('#offer:not([hidden])');
    await ctx.doctor.click('#offer-accept');
    await waitView(ctx.patient, 'visit');
    ctx.visitId = await ctx.patient.evaluate(() => window.tm.state.visitId);
    await flowsBothWays(ctx, 60000);
    return ctx;
  } catch (e) {
    await closeVisit(ctx);
    throw e;
  }
}

async function openPatient(browser, srv, sub, init) {
  if (!init) return openPage(browser, srv, 'patient.html', sub, 'patient');
  const bctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US', viewport: { width: 1280, height: 800 } });
  await bctx.addInitScript(init);
  const page = await bctx.newPage();
  page.setDefaultTimeout(20000);
  page.errors = [];
  page.on('pageerror', (e) => { page.errors.push(String(e)); console.log(`[${sub} page error] ${e}`); });
  await page.goto(`${srv.base()}/patient.html#token=${srv.token(sub, 'patient')}`);
  return page;
}

// The pair the page's connection uses: local and remote candidate types,
// addresses and the protocol to the TURN server when relayed.
export async function selectedPair(page) {
  return page.evaluate(async () => {
    const report = await window.tm.call.peer.pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const l = byId.get(pair.localCandidateId), r = byId.get(pair.remoteCandidateId);
    return { local: l.candidateType, localAddress: l.address, relayProtocol: l.relayProtocol, remote: r.candidateType, remoteAddress: r.address };
  });
}

export async function closeVisit(ctx) {
  if (ctx.srv && process.env.TM_NET_VERBOSE) console.log(ctx.srv.logs.split('\n').filter((l) => /ev=media\./.test(l)).join('\n'));
  for (const c of ctx.closers) {
    try { await c(); } catch (e) { console.log(`cleanup: ${e.message}`); }
  }
}

// What the page's own getStats() says it received: audio packets and
// decoded video frames, summed over its inbound streams.
export async function received(page) {
  return page.evaluate(async () => {
    const pc = window.tm.call && window.tm.call.peer && window.tm.call.peer.pc;
    if (!pc) return { audio: 0, frames: 0, state: 'none' };
    let audio = 0, frames = 0, keyframes = 0, plis = 0, nacks = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'audio') audio += s.packetsReceived || 0;
      else {
        frames += s.framesDecoded || 0;
        keyframes += s.keyFramesDecoded || 0;
        plis += s.pliCount || 0;
        nacks += s.nackCount || 0;
      }
    });
    return { audio, frames, keyframes, plis, nacks, state: pc.connectionState, pcs: window.tm.call.peer.generation || 0 };
  });
}

// Waits until audio and video arrive on both pages again and keep arriving
// (counts grow at every poll for SUSTAIN_MS, so packets still in flight
// do not count as recovery), up to timeoutMs. Resolves with the ms from
// the call to the start of that steady flow.
const POLL_MS = 500;
const SUSTAIN_MS = 2000;
export async function flowsBothWays(ctx, timeoutMs) {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  const pages = [ctx.patient, ctx.doctor];
  const flows = ['patient.audio', 'patient.frames', 'doctor.audio', 'doctor.frames'];
  let last = await Promise.all(pages.map(received));
  const since = {};
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const at = Date.now();
    const now = await Promise.all(pages.map(received));
    for (const f of flows) {
      const [who, kind] = f.split('.');
      const i = who === 'patient' ? 0 : 1;
      // A fresh connection restarts the counts: growth from zero counts.
      const fresh = now[i].pcs !== last[i].pcs;
      const grew = now[i][kind] > last[i][kind] || (fresh && now[i][kind] > 0);
      if (!grew) since[f] = null;
      else if (!since[f]) since[f] = at - POLL_MS;
    }
    last = now;
    if (flows.every((f) => since[f] && at - since[f] >= SUSTAIN_MS)) {
      const after = Object.fromEntries(flows.map((f) => [f, Math.max(0, since[f] - t0)]));
      if (process.env.TM_NET_VERBOSE) console.log(`flows back after (ms): ${JSON.stringify(after)}; now patient ${JSON.stringify(now[0])} doctor ${JSON.stringify(now[1])}`);
      return Math.max(...Object.values(after));
    }
  }
  assert.fail(`media did not flow both ways within ${timeoutMs} ms: patient ${JSON.stringify(last[0])}, doctor ${JSON.stringify(last[1])}`);
}

// Blacks out the patient's network for seconds, then waits for media to flow
// both ways again. during(): run while the network is out. Resolves with
// the recovery time after the return, ms.
export async function outage(ctx, seconds, { capMs = 30000, during = null } = {}) {
  const back = Date.now() + seconds * 1000;
  await ctx.relay.cmd(`blackout ${seconds * 1000}`);
  if (during) await during();
  await new Promise((r) => setTimeout(r, Math.max(0, back - Date.now())));
  // Counts taken during the outage stop growing; measure from the return.
  return flowsBothWays(ctx, capMs);
}

// How long the server has seen no video frame from the patient, from the
// figures it gives supervisors (GET /api/v1/overview).
export async function patientVideoFrozenMs(ctx) {
  const ov = await ctx.srv.api('GET', '/api/v1/overview', undefined, ctx.srv.token('sup-net', 'supervisor'));
  const visit = (ov.json.visits || []).find((v) => v.id === ctx.visitId);
  const peer = visit && visit.quality && Object.entries(visit.quality).find(([id]) => id.startsWith('patient:'));
  const video = peer && peer[1].find((st) => st.direction === 'in' && st.kind === 'video');
  return video ? video.frozen_ms : null;
}

// The overview's alerts about the patient's media (media.quality), from the
// same REST read as above.
export async function patientMediaAlerts(ctx) {
  const ov = await ctx.srv.api('GET', '/api/v1/overview', undefined, ctx.srv.token('sup-net', 'supervisor'));
  return (ov.json.alerts || []).filter((a) => a.visit_id === ctx.visitId && a.role === 'patient' && a.participant_id);
}

// What the doctor's page says over the patient's video: {video, text, shown}.
export async function doctorSeesPatient(ctx) {
  return ctx.doctor.evaluate(() => {
    const n = document.querySelector('.media-state');
    return n ? { video: n.dataset.video, text: n.textContent, shown: !n.hidden } : { video: null, text: '', shown: false };
  });
}

export async function waitFor(fn, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last.ok) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${what}: ${JSON.stringify(last)}`);
}
