// selftest.test.mjs - the test peers tested against each other, with no
// telemed server in between: webrtc_client offers, headless Chromium answers
// through a throwaway relay that speaks just enough telemed.v1. If this
// fails, the media tests' peers are broken, not the server; if this passes
// and a visit test fails, look at the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { runClient, describe } from './lib_client.mjs';
import { startPageServer, launchBrowser, newPeerPage, waitVideoFlowing, pageStats, videoIn, pageLog, sleep } from './lib_browser.mjs';

// Relay: the client is a patient whose visit is active at once; its offer
// goes to the browser page, the page's answer comes back as media.answer.
async function startRelay() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('telemed.v1') ? 'telemed.v1' : false) });
  await new Promise((r) => wss.on('listening', r));
  let client = null;
  let browser = null;
  const toBrowser = [];
  const sendB = (m) => (browser ? browser.send(JSON.stringify(m)) : toBrowser.push(m));
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      const reply = (d) => ws.send(JSON.stringify({ type: 'result', re: m.id, data: d }));
      if (m.type === 'hello') {
        if (m.token === 'answerer') {
          browser = ws;
          for (const q of toBrowser.splice(0)) ws.send(JSON.stringify(q));
        } else {
          client = ws;
        }
        reply({ sub: m.token, role: m.token === 'answerer' ? 'doctor' : 'patient', session: 's-1', ice_servers: [], resumed: null });
      } else if (m.type === 'checkin') {
        reply({ visit_id: 'v-self', position: 1, estimated_wait_s: 0 });
        ws.send(JSON.stringify({ type: 'visit.state', visit_id: 'v-self', state: 'active', patient_id: 'p', doctor_id: 'd' }));
      } else if (m.type === 'media.offer') {
        reply({});
        sendB({ type: 'selftest.offer', sdp: m.sdp });
      } else if (m.type === 'selftest.answer') {
        client.send(JSON.stringify({ type: 'media.answer', visit_id: 'v-self', sdp: m.sdp }));
      } else if (m.type === 'media.candidate') {
        if (m.id) reply({});
        const push = { type: 'media.candidate', visit_id: 'v-self', candidate: m.candidate, sdpMid: m.sdpMid, sdpMLineIndex: m.sdpMLineIndex };
        if (ws === client) sendB(push);
        else client?.send(JSON.stringify(push));
      } else if (m.id) {
        reply({});
      }
    });
  });
  return { url: `ws://127.0.0.1:${wss.address().port}/ws`, close: () => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }) };
}

// minFrames: video frames the client must decode in its `duration` s. With
// every 10th packet dropped a frame waits for its repair or the next
// keyframe, and on a loaded machine that left 48 in one run, so the loss run
// asks less.
async function directSession(t, extraArgs, { minFrames = 50, duration = 8 } = {}) {
  const relay = await startRelay();
  t.after(() => relay.close());
  const pages = await startPageServer();
  t.after(() => pages.close());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await newPeerPage(browser, pages.url);

  await page.evaluate(async (url) => {
    const p = window.peer;
    await p.connect(url);
    await p.hello('answerer');
    p.visitId = 'v-self';
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    p.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    p.pc.onicecandidate = (e) => {
      const c = e.candidate;
      if (c && c.candidate && !/^(127\.|::1)/.test(c.candidate.split(' ')[4])) return;
      p.send({ type: 'media.candidate', visit_id: 'v-self', candidate: c ? c.candidate : '', sdpMid: c ? c.sdpMid : '0', sdpMLineIndex: c ? c.sdpMLineIndex : 0 });
    };
    p.pc.ontrack = () => p.note('track');
    const orig = p.onMessage.bind(p);
    p.onMessage = async (m) => {
      if (m.type !== 'selftest.offer') return orig(m);
      p.note('offer received');
      try {
      await p.pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      for (const tr of p.pc.getTransceivers()) {
        const track = stream.getTracks().find((x) => x.kind === tr.receiver.track.kind);
        if (track) { await tr.sender.replaceTrack(track); tr.direction = 'sendrecv'; }
      }
      const ans = await p.pc.createAnswer();
      await p.pc.setLocalDescription(ans);
      p.answerSet = true;
      p.send({ type: 'selftest.answer', sdp: ans.sdp });
      for (const c of p.remoteCands.splice(0)) await p.addRemote(c);
      } catch (e) { p.note(`answer failed: ${e}`); }
    };
  }, relay.url);

  const c = runClient(['--url', relay.url, '--token', 'patient-1', '--role', 'patient', '--dept', 'x',
    '--duration', String(duration), '--expect-width', '320', '--expect-height', '240', '--min-audio-s', '5', ...extraArgs], { name: 'patient' });
  t.after(() => c.kill());

  const st = await waitVideoFlowing(page, { timeoutMs: 20000 }).catch(async (e) => {
    c.kill();
    const r = await c.done;
    throw new Error(`${e.message}\n${describe('client', r)}`);
  });
  const v0 = videoIn(st)[0];
  assert.equal(v0.frameWidth, 320);
  assert.equal(v0.frameHeight, 240);
  await sleep(1500);
  const v1 = videoIn(await pageStats(page))[0];
  assert.ok(v1.framesDecoded > v0.framesDecoded, 'browser keeps decoding the client video');

  const r = await c.done;
  assert.equal(r.code, 0, describe('client', r) + (await pageLog(page)));
  assert.ok(Number(r.result.video_frames) > minFrames, describe('client', r));
  assert.equal(r.result.width, '320');
  assert.ok(Number(r.result.audio_ms) >= 5000);
  const out = (await pageStats(page)).outbound.find((o) => o.kind === 'video');
  return { ...r, chromiumOut: out };
}

test('webrtc_client and chromium exchange VP8 + Opus directly (no server)', { timeout: 90000 }, async (t) => {
  await directSession(t, []);
});

// Proves the client's loss hook and its repair count against a sender known
// to answer NACKs, so the server's loss test measures the server. Chromium
// resends what it is asked for; not every loss is asked for, because
// GStreamer's session drops a NACK it could not send before the packet's
// deadline, so the bar is the one the server's loss test uses. That deadline
// is the jitterbuffer's latency: 1 s of it (not the default 100 ms) leaves
// a NACK and its answer time enough when both peers wait for a busy CPU.
// That second comes off the end of the run, so the run is 14 s, not 8: a
// loaded machine once decoded 3.5 s of audio in 8 s with it, short of 5.
test('webrtc_client loss hook: chromium repairs dropped packets after NACK', { timeout: 120000 }, async (t) => {
  const r = await directSession(t, ['--drop-every', '10', '--latency', '1000'], { minFrames: 30, duration: 14 });
  const dropped = Number(r.result.dropped);
  const repaired = Number(r.result.repaired);
  const resent = r.chromiumOut?.retransmittedPacketsSent ?? 0;
  const why = `repaired ${repaired} of ${dropped}, chromium resent ${resent} after ${r.chromiumOut?.nackCount} NACKs\n${describe('client', r)}`;
  console.log(`# loss: dropped=${dropped} repaired=${repaired} rtx=${r.result.repaired_rtx} chromium_nacks=${r.chromiumOut?.nackCount} chromium_rtx=${resent} ${r.out.match(/unrepaired=\S+/)?.[0] ?? ''}`);
  assert.ok(dropped >= 10, why);
  assert.ok(repaired <= dropped && repaired <= resent, why);
  assert.ok(repaired >= dropped * 0.5, why);
});
