// sdp_chrome.test.mjs - Chromium (Debian's, through playwright-core) makes
// offers as the web client does; telemed's SDP code answers them
// (sdp_answer_tool) and Chromium must accept every answer: setRemoteDescription
// resolves, signaling is stable, each transceiver takes the direction we
// answered, remote tracks carry our msid, and the negotiated codecs are ours.
// No server or network: only the offer/answer text is under test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const TOOL = process.env.SDP_ANSWER_TOOL;
let browser, page;

before(async () => {
  assert.ok(TOOL, 'SDP_ANSWER_TOOL not set');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
  page = await browser.newPage();
  await page.goto('about:blank');
});

after(async () => {
  await browser?.close();
});

function answer(offer, args = []) {
  try {
    return execFileSync(TOOL, args, { input: offer }).toString();
  } catch (e) {
    throw new Error(`answer tool failed: ${e.stdout}`);
  }
}

// Builds a PeerConnection in the page from a recipe and returns its offer.
function makeOffer(recipe) {
  return page.evaluate(async (r) => {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    window.pc = pc;
    window.tracks = [];
    pc.ontrack = (e) => window.tracks.push({ kind: e.track.kind, streams: e.streams.map((s) => s.id) });
    const ms = new MediaStream();
    for (const kind of ['audio', 'video'])
      pc.addTransceiver(kind, { direction: r.direction, streams: r.direction === 'recvonly' ? [] : [ms] });
    if (r.dataChannel) pc.createDataChannel('chat');
    if (r.h264Only) {
      const t = pc.getTransceivers()[1];
      t.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => /H264|rtx/.test(c.mimeType)));
    }
    const o = await pc.createOffer();
    await pc.setLocalDescription(o);
    return o.sdp;
  }, recipe);
}

function applyAnswer(sdp) {
  return page.evaluate(async (s) => {
    const pc = window.pc;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: s });
    } catch (e) {
      return { error: e.message };
    }
    return {
      state: pc.signalingState,
      dirs: pc.getTransceivers().map((t) => t.currentDirection),
      tracks: window.tracks,
      codecs: pc.getTransceivers().map((t) => (t.sender.getParameters().codecs || []).map((c) => c.mimeType)),
      sctp: pc.sctp ? pc.sctp.state : null,
    };
  }, sdp);
}

test('patient/doctor: sendrecv audio+video, data channel rejected', async () => {
  const offer = await makeOffer({ direction: 'sendrecv', dataChannel: true });
  const ans = answer(offer);
  assert.match(ans, /^m=application 0 UDP\/DTLS\/SCTP webrtc-datachannel\r$/m);
  const r = await applyAnswer(ans);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.state, 'stable');
  assert.deepEqual(r.dirs, ['sendrecv', 'sendrecv']);
  assert.deepEqual(r.tracks.map((t) => `${t.kind}:${t.streams}`), ['audio:peer', 'video:peer']);
  assert.deepEqual(r.codecs[0], ['audio/opus']);
  assert.deepEqual(r.codecs[1], ['video/VP8', 'video/rtx']);
});

test('supervisor: receive-only offer gets sendonly from the server', async () => {
  const offer = await makeOffer({ direction: 'recvonly' });
  const r = await applyAnswer(answer(offer));
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.dirs, ['recvonly', 'recvonly']);
  assert.deepEqual(r.tracks.map((t) => `${t.kind}:${t.streams}`), ['audio:peer', 'video:peer']);
});

test('server not sending: answer recvonly, browser sendonly', async () => {
  const offer = await makeOffer({ direction: 'sendrecv' });
  const r = await applyAnswer(answer(offer, ['--no-send']));
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.dirs, ['sendonly', 'sendonly']);
  assert.deepEqual(r.tracks, []);
});

test('H.264 only (Safari-like), transport-cc and ice-lite', async () => {
  const offer = await makeOffer({ direction: 'sendrecv', h264Only: true });
  const ans = answer(offer, ['--twcc', '--ice-lite']);
  assert.match(ans, /^a=fmtp:\d+ level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r$/m);
  assert.match(ans, /^a=ice-lite\r$/m);
  assert.match(ans, /transport-wide-cc/);
  const r = await applyAnswer(ans);
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.dirs, ['sendrecv', 'sendrecv']);
  assert.deepEqual(r.codecs[1], ['video/H264', 'video/rtx']);
});

test('an offer Chromium made without BUNDLE is refused with a clear message', async () => {
  const offer = await makeOffer({ direction: 'sendrecv' });
  const noBundle = offer.replace(/^a=group:BUNDLE.*\r\n/m, '');
  assert.throws(() => answer(noBundle), /offer has no BUNDLE group/);
});

test('simulcast: three VP8 layers by rid are received, Chromium keeps them', async () => {
  const offer = await page.evaluate(async () => {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    window.pc = pc;
    window.tracks = [];
    pc.ontrack = (e) => window.tracks.push({ kind: e.track.kind, streams: e.streams.map((s) => s.id) });
    const ms = new MediaStream();
    pc.addTransceiver('audio', { direction: 'sendrecv', streams: [ms] });
    pc.addTransceiver('video', {
      direction: 'sendrecv', streams: [ms],
      sendEncodings: [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }],
    });
    const o = await pc.createOffer();
    await pc.setLocalDescription(o);
    return o.sdp;
  });
  assert.match(offer, /^a=simulcast:send q;h;f\r$/m);
  const ans = answer(offer);
  assert.match(ans, /^a=simulcast:recv q;h;f\r$/m);
  assert.match(ans, /^a=rid:q recv\r$/m);
  const r = await applyAnswer(ans);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.state, 'stable');
  assert.deepEqual(r.dirs, ['sendrecv', 'sendrecv']);
  // Had the answer dropped simulcast, Chromium would have cut the encodings to one.
  const rids = await page.evaluate(() => window.pc.getTransceivers()[1].sender.getParameters().encodings.map((e) => e.rid));
  assert.deepEqual(rids, ['q', 'h', 'f']);
});
