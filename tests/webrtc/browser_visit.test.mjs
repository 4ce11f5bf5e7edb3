// browser_visit.test.mjs - visits through the real telemed-server with
// headless Chromium (fake camera and microphone) on one or both ends:
// a browser patient with a webrtcbin doctor, two browsers, an ICE restart,
// and a reconnect after the patient's transport is cut. Decoding is judged
// from getStats() (browsers) and the exit summary (webrtc_client).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, api } from './lib_server.mjs';
import { prepareClinic } from './lib_visit.mjs';
import { runClient, describe } from './lib_client.mjs';
import { startPageServer, launchBrowser, newPeerPage, pageStats, pageLog, videoIn, audioIn, waitVideoFlowing, sleep } from './lib_browser.mjs';

let pages;
let browser;

before(async () => {
  pages = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await pages?.close();
});

async function withServer(t) {
  const srv = await startServer();
  t.after(async () => {
    if (process.env.TM_TEST_VERBOSE) console.log(srv.log().slice(-20000));
    await srv.stop();
  });
  return srv;
}

async function peerPage(t) {
  const page = await newPeerPage(browser, pages.url);
  t.after(() => page.context().close());
  return page;
}

// Frames decoded on every inbound video stream of page, then again once
// every stream grew and 25 more audio packets came (or capMs passed: a cap
// for a stalled stream, not a rate); asserts they grew and the size matched.
async function assertVideoGrows(page, { width, height, streams = 1, capMs = 30000, who = 'page' } = {}) {
  const a = await waitVideoFlowing(page, { streams });
  const grew = (b) =>
    videoIn(b).every((s) => s.framesDecoded > (videoIn(a).find((x) => x.ssrc === s.ssrc)?.framesDecoded ?? Infinity)) &&
    audioIn(b).length >= 1 &&
    audioIn(b).every((s) => s.packetsReceived > (audioIn(a).find((x) => x.ssrc === s.ssrc)?.packetsReceived ?? 0) + 25);
  let b = await pageStats(page);
  for (const end = Date.now() + capMs; !grew(b) && Date.now() < end; b = await pageStats(page)) await sleep(250);
  const va = videoIn(a);
  const vb = videoIn(b);
  for (const s of vb) {
    const before0 = va.find((x) => x.ssrc === s.ssrc);
    assert.ok(before0, `${who}: stream ${s.ssrc} appeared late`);
    assert.ok(s.framesDecoded > before0.framesDecoded,
      `${who}: frames stuck at ${s.framesDecoded}\n${JSON.stringify(b)}\n${await pageLog(page)}`);
    if (width) assert.equal(s.frameWidth, width, `${who} width`);
    if (height) assert.equal(s.frameHeight, height, `${who} height`);
  }
  // Audio: packets must keep arriving (headless Chromium may have no audio
  // output to pull samples through its decoder, so samples are not judged).
  const aa = audioIn(a);
  const ab = audioIn(b);
  assert.ok(ab.length >= 1, `${who}: no inbound audio\n${JSON.stringify(b)}`);
  for (const s of ab) {
    const s0 = aa.find((x) => x.ssrc === s.ssrc);
    assert.ok(s.packetsReceived > (s0 ? s0.packetsReceived : 0) + 25,
      `${who}: audio packets not flowing\n${JSON.stringify(ab)} before ${JSON.stringify(aa)}`);
  }
  return b;
}

test('browser patient and webrtcbin doctor decode each other through the server', { timeout: 120000 }, async (t) => {
  const srv = await withServer(t);
  const c = await prepareClinic(srv);
  const doctor = runClient(['--url', srv.url, '--token', c.doctorToken, '--role', 'doctor', '--width', '640', '--height', '360',
    '--expect-width', '320', '--expect-height', '180', '--duration', '14', '--min-audio-s', '5'], { name: 'doctor' });
  t.after(() => doctor.kill());
  await doctor.waitEvent('hello_ok', 60000);

  const page = await peerPage(t);
  const visit = await page.evaluate(async ({ url, token, dept }) => {
    await window.peer.connect(url);
    await window.peer.hello(token);
    const v = await window.peer.checkin(dept);
    await window.peer.startMedia({ width: 320 });
    return v;
  }, { url: srv.url, token: c.patientToken, dept: c.dept });

  await assertVideoGrows(page, { width: 640, height: 360, who: 'browser patient' });
  const rd = await doctor.done;
  assert.equal(rd.code, 0, describe('doctor', rd) + (await pageLog(page)));
  assert.equal(rd.result.visit, visit);
  assert.equal(rd.result.width, '320');
  assert.equal(rd.result.height, '180');
});

async function twoBrowsers(t, srv, { videoCodec = null } = {}) {
  const c = await prepareClinic(srv);
  const doc = await peerPage(t);
  const pat = await peerPage(t);
  const docVisit = doc.evaluate(async ({ url, token, videoCodec }) => {
    await window.peer.connect(url);
    await window.peer.hello(token);
    const v = await window.peer.doctorTakeNext();
    await window.peer.startMedia({ width: 640, videoCodec });
    return v;
  }, { url: srv.url, token: c.doctorToken, videoCodec });
  await sleep(300); // the doctor is available first
  const patVisit = await pat.evaluate(async ({ url, token, dept, videoCodec }) => {
    await window.peer.connect(url);
    await window.peer.hello(token);
    const v = await window.peer.checkin(dept);
    await window.peer.startMedia({ width: 320, videoCodec });
    return v;
  }, { url: srv.url, token: c.patientToken, dept: c.dept, videoCodec });
  assert.equal(await docVisit, patVisit);
  return { c, doc, pat, visit: patVisit };
}

test('two browsers decode each other, both directions, frames keep increasing', { timeout: 120000 }, async (t) => {
  const srv = await withServer(t);
  const { doc, pat } = await twoBrowsers(t, srv);
  const both = await Promise.all([
    assertVideoGrows(pat, { width: 640, height: 360, who: 'patient' }),
    assertVideoGrows(doc, { width: 320, height: 180, who: 'doctor' }),
  ]);
  for (const st of both) assert.equal(videoIn(st)[0].codec, 'video/VP8', 'VP8 is preferred when offered');
  // And the senders really send (outbound-rtp), so "both directions" is not
  // satisfied by one stream echoed back.
  const so = await pageStats(pat);
  assert.ok(so.outbound.find((s) => s.kind === 'video' && s.framesEncoded > 0));
});

test('two browsers offering only H.264 (constrained baseline) decode each other', { timeout: 120000 }, async (t) => {
  const srv = await withServer(t);
  const { doc, pat } = await twoBrowsers(t, srv, { videoCodec: 'H264' });
  const [sp, sd] = await Promise.all([
    assertVideoGrows(pat, { width: 640, height: 360, who: 'patient (H.264)' }),
    assertVideoGrows(doc, { width: 320, height: 180, who: 'doctor (H.264)' }),
  ]);
  for (const [who, st] of [['patient', sp], ['doctor', sd]])
    assert.equal(videoIn(st)[0].codec, 'video/H264', `${who} decodes ${JSON.stringify(videoIn(st))}`);
});

test('ICE restart on a live visit keeps media flowing', { timeout: 120000 }, async (t) => {
  const srv = await withServer(t);
  const { doc, pat } = await twoBrowsers(t, srv);
  await Promise.all([
    assertVideoGrows(pat, { width: 640, height: 360, who: 'patient before restart' }),
    assertVideoGrows(doc, { width: 320, height: 180, who: 'doctor before restart' }),
  ]);
  await pat.evaluate(async () => {
    const n = window.peer.pushes.filter((m) => m.type === 'media.answer').length;
    await window.peer.restartIce();
    await window.peer.waitPush(() => window.peer.pushes.filter((m) => m.type === 'media.answer').length > n, 10000, 'restart answer');
  });
  await sleep(1500);
  await Promise.all([
    assertVideoGrows(pat, { width: 640, height: 360, who: 'patient after restart' }),
    assertVideoGrows(doc, { width: 320, height: 180, who: 'doctor after restart' }),
  ]);
  const st = await pageStats(pat);
  assert.equal(st.pc, 'connected');
});

async function mediaMetric(srv, name) {
  const m = (await api(srv, 'GET', '/metrics')).text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'm'));
  assert.ok(m, `no ${name} in /metrics`);
  return Number(m[1]);
}

async function waitMetric(srv, name, ok, capMs, what) {
  let v = await mediaMetric(srv, name);
  for (const end = Date.now() + capMs; !ok(v) && Date.now() < end; v = await mediaMetric(srv, name)) await sleep(250);
  assert.ok(ok(v), `${what}: ${name} ${v}`);
}

// The server frees a peer's OpenSSL DTLS state 5 s after its SRTP flows
// (media_dtls_shed); the _stock run keeps it. Either way an ICE restart
// resumes media on the session's keys and the page's close_notify (its
// pc.close(), signaling untouched) closes its peer at once.
test('after the server freed its DTLS state, an ICE restart keeps media flowing and a close_notify closes the peer', { timeout: 150000 }, async (t) => {
  const srv = await withServer(t);
  const { doc, pat } = await twoBrowsers(t, srv);
  await assertVideoGrows(doc, { who: 'doctor' });
  const shed = !/^(false|no|off|0)$/i.test(process.env.TELEMED_MEDIA_DTLS_SHED ?? '');
  if (shed) await waitMetric(srv, 'telemed_media_dtls_shed_total', (v) => v >= 2, 30000, 'both sessions shed');
  await pat.evaluate(async () => {
    const n = window.peer.pushes.filter((m) => m.type === 'media.answer').length;
    await window.peer.restartIce();
    await window.peer.waitPush(() => window.peer.pushes.filter((m) => m.type === 'media.answer').length > n, 10000, 'restart answer');
  });
  await sleep(1500);
  await Promise.all([
    assertVideoGrows(pat, { width: 640, height: 360, who: 'patient after restart' }),
    assertVideoGrows(doc, { width: 320, height: 180, who: 'doctor after restart' }),
  ]);
  if (!shed) assert.equal(await mediaMetric(srv, 'telemed_media_dtls_shed_total'), 0);
  assert.equal(await mediaMetric(srv, 'telemed_media_peers'), 2);
  await pat.evaluate(() => window.peer.pc.close());
  // Consent freshness would take ~30 s; the alert takes a round trip.
  await waitMetric(srv, 'telemed_media_peers', (v) => v <= 1, 10000, 'the patient\'s peer closed');
  assert.match(srv.log(), /ev=media\.peer_closed visit=\S+ peer=\S+ state=closed/);
});

test('reconnect: the patient is cut, comes back with a new transport inside the grace period, media resumes', { timeout: 150000 }, async (t) => {
  const srv = await withServer(t);
  const { c, doc, pat } = await twoBrowsers(t, srv);
  await assertVideoGrows(doc, { who: 'doctor before cut' });
  await pat.evaluate(() => window.peer.cut());
  // The doctor's view of the patient freezes.
  await sleep(2500);
  const frozen = videoIn(await pageStats(doc))[0].framesDecoded;
  await sleep(1000);
  const stillFrozen = videoIn(await pageStats(doc))[0].framesDecoded;
  assert.ok(stillFrozen - frozen < 5, `patient video should stop after the cut (${frozen} -> ${stillFrozen})`);

  await pat.evaluate(async ({ url, token }) => window.peer.reconnect(url, token), { url: srv.url, token: c.patientToken });
  await waitVideoFlowing(pat, { timeoutMs: 15000 });
  // The doctor keeps its receiver: the same stream resumes growing.
  const end = Date.now() + 15000;
  let now = stillFrozen;
  while (Date.now() < end) {
    now = videoIn(await pageStats(doc)).reduce((a, s) => Math.max(a, s.framesDecoded), 0);
    if (now > stillFrozen + 30) break;
    await sleep(250);
  }
  assert.ok(now > stillFrozen + 30, `doctor's view of the patient did not resume (${stillFrozen} -> ${now})\n${await pageLog(doc)}`);
  await assertVideoGrows(pat, { width: 640, height: 360, who: 'patient after reconnect' });
});

test('a browser supervisor joining late decodes both sides', { timeout: 180000 }, async (t) => {
  const srv = await withServer(t);
  const c = await prepareClinic(srv);
  // Senders make keyframes only on request: the watcher decodes at all only
  // if the server asks for one when it joins. How soon is printed, not
  // asserted; the senders run 30 s so the watch fits in on a loaded machine.
  const kf = ['--kf-dist', '100000', '--duration', '30', '--min-audio-s', '3'];
  const doctor = runClient(['--url', srv.url, '--token', c.doctorToken, '--role', 'doctor', ...kf], { name: 'doctor' });
  t.after(() => doctor.kill());
  await doctor.waitEvent('hello_ok', 60000);
  const patient = runClient(['--url', srv.url, '--token', c.patientToken, '--role', 'patient', '--dept', c.dept, ...kf], { name: 'patient' });
  t.after(() => patient.kill());
  await patient.waitEvent('first_video', 60000);
  await doctor.waitEvent('first_video', 60000);
  const visit = patient.events.find((e) => e.event === 'offer_sent').visit;
  await sleep(3000);

  const page = await peerPage(t);
  const r = await page.evaluate(async ({ url, token, visit: v }) => {
    const p = window.peer;
    await p.connect(url);
    await p.hello(token);
    await p.watch(v);
    await p.startMedia({ recvOnly: { audio: 2, video: 2 } });
    const t0 = performance.now();
    while (p.pc.connectionState !== 'connected' && performance.now() - t0 < 30000)
      await new Promise((res) => setTimeout(res, 20));
    const tc = performance.now();
    const first = {};
    while (performance.now() - tc < 30000) {
      const st = await p.stats();
      for (const s of st.inbound)
        if (s.kind === 'video' && s.framesDecoded > 0 && first[s.ssrc] === undefined) first[s.ssrc] = performance.now() - tc;
      if (Object.keys(first).length >= 2) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    return { connectedAfterMs: tc - t0, state: p.pc.connectionState, first };
  }, { url: srv.url, token: c.supervisorToken(), visit });
  const firsts = Object.values(r.first);
  console.log(`# browser watcher: connected ${Math.round(r.connectedAfterMs)} ms after its offer, first frames ${firsts.map(Math.round).join(', ')} ms after connect`);
  assert.equal(r.state, 'connected', JSON.stringify(r) + (await pageLog(page)));
  assert.equal(firsts.length, 2, `watcher decoded ${firsts.length} of 2 video streams: ${JSON.stringify(r)}\n${await pageLog(page)}`);
  await assertVideoGrows(page, { streams: 2, who: 'supervisor' });
  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  assert.equal(rp.code, 0, describe('patient', rp));
  assert.equal(rd.code, 0, describe('doctor', rd));
});
