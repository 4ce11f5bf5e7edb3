// codec.test.mjs - one video codec per visit: a phone whose browser offers
// only H.264 (Chromium with its video transceivers limited to H.264 through
// setCodecPreferences, as an in-app browser without VP8 offers) meets a doctor
// whose Chromium offers VP8 and H.264. The doctor is answered first, with VP8;
// the phone's offer turns the visit to H.264, the server asks the doctor to
// offer again, and both then see each other in H.264. An H.264 visit takes
// no simulcast (media.c says why): both pages then send one full-size
// encoding, and each sees the other's at that size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, remoteVideo, acceptedVisit } from './lib.mjs';
import { waitUntil } from '../integration/lib/server.mjs';

// Runs in the phone's page before its scripts: video only in H.264, and its
// first offer held until the test lets it go (so the doctor's is answered first).
function h264Only() {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function addTransceiver(trackOrKind, init) {
    const tr = add.call(this, trackOrKind, init);
    const kind = typeof trackOrKind === 'string' ? trackOrKind : trackOrKind.kind;
    if (kind === 'video') {
      tr.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => /^video\/(H264|rtx)$/i.test(c.mimeType)));
    }
    return tr;
  };
  const release = new Promise((resolve) => { window.releaseOffer = resolve; });
  const setLocal = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = async function setLocalDescription(...args) {
    await release;
    return setLocal.apply(this, args);
  };
}

// The codec of the video this page decodes, from its own getStats().
const inboundVideoCodec = (page) => page.evaluate(async () => {
  const stats = await window.tm.call.peer.pc.getStats();
  const names = [];
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) names.push(stats.get(s.codecId).mimeType);
  });
  return names;
});

// The page's camera sender: its encodings (and the first one's scale), the
// codec it sends and the width of what it sends, from its own getStats().
const sending = (page) => page.evaluate(async () => {
  const sender = window.tm.call.peer.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const stats = await sender.getStats();
  let codec = null, width = 0;
  stats.forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    width = Math.max(width, s.frameWidth || 0);
    if (s.codecId && stats.get(s.codecId)) codec = stats.get(s.codecId).mimeType;
  });
  const encodings = sender.getParameters().encodings;
  return { codec, width, encodings: encodings.map((e) => e.rid || '-'), scale: encodings[0].scaleResolutionDownBy ?? 1 };
});

async function framesGrow(page, who) {
  const a = await remoteVideo(page);
  let b = a;
  for (const end = Date.now() + 60000; !(b.width > 0 && b.frames > a.frames) && Date.now() < end; b = await remoteVideo(page))
    await page.waitForTimeout(250);
  assert.ok(b.width > 0, `${who}: videoWidth ${b.width}`);
  assert.ok(b.frames > a.frames, `${who}: framesDecoded ${a.frames} -> ${b.frames}`);
}

test('an H.264-only phone and a VP8+H.264 doctor see each other: one codec for the visit', { timeout: 240000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { extra: { dept: 'cardio' } });
    const phoneCtx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'zh-CN', viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
    await phoneCtx.addInitScript(h264Only);
    const patient = await phoneCtx.newPage();
    patient.errors = [];
    patient.on('pageerror', (e) => patient.errors.push(String(e)));
    await patient.goto(`${srv.base()}/patient.html#token=${srv.token('p-h264', 'patient')}`);

    await acceptedVisit(patient, doctor);

    // The doctor's offer (VP8 and H.264) is answered with VP8 while the
    // phone's waits.
    await doctor.waitForFunction(() => {
      const pc = window.tm.call && window.tm.call.peer && window.tm.call.peer.pc;
      return pc && pc.remoteDescription && pc.signalingState === 'stable';
    }, null, { timeout: 60000 });
    const first = await doctor.evaluate(() => window.tm.call.peer.pc.remoteDescription.sdp);
    assert.match(first, /a=rtpmap:\d+ VP8\/90000/);
    await patient.evaluate(() => window.releaseOffer());

    // The phone's offer turns the visit to H.264; the doctor offers again.
    await doctor.waitForFunction(() => /a=rtpmap:\d+ H264\/90000/.test(window.tm.call.peer.pc.remoteDescription.sdp), null, { timeout: 60000 });
    const phoneOffer = await patient.evaluate(() => window.tm.call.peer.pc.localDescription.sdp);
    assert.doesNotMatch(phoneOffer, /VP8/, 'the phone offers no VP8');
    assert.match(srv.logs, /ev=media\.codec visit=\S+ video=H264/);
    assert.match(srv.logs, /ev=media\.renegotiate visit=\S+ peer=\S*d1\S* reason=codec/);

    await framesGrow(patient, 'phone');
    await framesGrow(doctor, 'doctor');
    assert.deepEqual([...new Set(await inboundVideoCodec(patient))], ['video/H264']);
    assert.deepEqual([...new Set(await inboundVideoCodec(doctor))], ['video/H264']);

    // No simulcast in H.264: the answers take none, so each page keeps one
    // encoding, at full size, and the other side decodes that. The doctor's
    // camera went out in three VP8 layers before the visit turned; its new
    // offer still lists them and is answered with one.
    for (const [who, page, other] of [['phone', patient, doctor], ['doctor', doctor, patient]]) {
      const answer = await page.evaluate(() => window.tm.call.peer.pc.remoteDescription.sdp);
      const video = answer.split(/\r\nm=/).find((m) => m.startsWith('video'));
      assert.doesNotMatch(video, /a=simulcast/, `${who}: the answer takes no simulcast`);
      const s = await waitUntil(`${who} sends one H.264 encoding at full size`, async () => {
        const x = await sending(page);
        return x.codec === 'video/H264' && x.encodings.length === 1 && x.scale === 1 && x;
      }, 60000).catch(async (e) => assert.fail(`${e.message}: ${JSON.stringify(await sending(page))}`));
      await waitUntil(`${who}'s picture arrives at the size it is sent`, async () => {
        const [v, x] = [await remoteVideo(other), await sending(page)];
        return v.width > 0 && v.width === x.width;
      }, 60000).catch(async (e) => assert.fail(`${e.message}: sent ${JSON.stringify(await sending(page))} (first ${JSON.stringify(s)}), seen ${JSON.stringify(await remoteVideo(other))}`));
    }
    assert.deepEqual([...new Set(await inboundVideoCodec(doctor))], ['video/H264']);
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
