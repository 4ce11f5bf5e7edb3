// simulcast.test.mjs - a doctor's Chromium sends VP8 simulcast (a 1280x720
// fake camera in three layers: 320x180, 640x360, 1280x720) through the real
// server to two receivers: the patient's Chromium, in a network namespace of
// the test's own whose every byte crosses net_relay, and a watching
// supervisor's Chromium on loopback. With the patient's link capped the
// patient's decoded width drops to a lower layer while the supervisor keeps
// the top one; with the cap lifted the patient climbs back to the top. A
// receiver that says media.view 320x180 gets the 320x180 layer, and the
// recording holds one video track for the three layers, at the top layer's
// size. Widths are what each page's own getStats() decoded, and what
// rec_probe (GStreamer) decodes from the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer, api } from '../webrtc/lib_server.mjs';
import { probe } from '../recording/lib_rec.mjs';
import { prepareClinic } from '../webrtc/lib_visit.mjs';
import { CHROMIUM_ARGS, launchBrowser, startPageServer, newPeerPage, pageStats, pageLog, videoIn, sleep } from '../webrtc/lib_browser.mjs';
import { startRelay, freeUdpRange, makeNetns } from './lib_net.mjs';

const TOP = 1280;

// The width of the last frame the page decoded, and how many it decoded.
async function decoded(page) {
  const v = videoIn(await pageStats(page)).filter((s) => s.framesDecoded > 0);
  return v.length ? { width: v[0].frameWidth, frames: v[0].framesDecoded } : { width: 0, frames: 0 };
}

// Polls check() (every 500 ms) until it returns {ok: true, ...}; fails with
// the last value after capMs (a cap for a stuck state, not a rate).
async function waitFor(check, what, capMs) {
  const end = Date.now() + capMs;
  let last;
  while (Date.now() < end) {
    last = await check();
    if (last.ok) return last;
    await sleep(500);
  }
  assert.fail(`${what} within ${capMs} ms: ${JSON.stringify(last)}`);
}

test('simulcast: each receiver gets the layer its link and view fit', { timeout: 420000 }, async (t) => {
  const ns = makeNetns('simulcast');
  if (!ns) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  const closers = [() => ns.remove()];
  t.after(async () => {
    for (const c of closers) {
      try { await c(); } catch (e) { console.log(`cleanup: ${e.message}`); }
    }
  });
  const ports = await freeUdpRange(16);
  const srv = await startServer({
    args: ['--media-port-min', String(ports.min), '--media-port-max', String(ports.max), '--no-recording-encrypt'],
  });
  closers.unshift(() => srv.stop());
  closers.unshift(() => {
    if (process.env.TM_TEST_VERBOSE) console.log(srv.log().split('\n').filter((l) => /ev=media\.(layer|offer|connected)/.test(l)).join('\n'));
  });
  const pages = await startPageServer();
  closers.unshift(() => pages.close());
  // The patient reaches the server and the test's page server only through the relay.
  const pagePort = Number(new URL(pages.url).port);
  const relay = await startRelay({ udpPorts: `${ports.min}-${ports.max}`, tcpPorts: [srv.port, pagePort], netns: ns.name });
  closers.unshift(() => relay.stop());
  const browser = await launchBrowser();
  closers.unshift(() => browser.close());
  const nsBrowser = await chromium.launch({ executablePath: ns.chromium, args: CHROMIUM_ARGS, timeout: 30000 });
  closers.unshift(() => nsBrowser.close());

  const c = await prepareClinic(srv);
  const doctor = await newPeerPage(browser, pages.url);
  const patient = await newPeerPage(nsBrowser, pages.url);
  const supervisor = await newPeerPage(browser, pages.url);
  const logs = async () => `\ndoctor:\n${await pageLog(doctor)}\npatient:\n${await pageLog(patient)}\nsupervisor:\n${await pageLog(supervisor)}`;

  const docVisit = doctor.evaluate(async ({ url, token }) => {
    await window.peer.connect(url);
    await window.peer.hello(token);
    return window.peer.doctorTakeNext({ timeoutMs: 60000 });
  }, { url: srv.url, token: c.doctorToken });
  await sleep(300); // the doctor is available first
  const visit = await patient.evaluate(async ({ url, token, dept }) => {
    await window.peer.connect(url);
    await window.peer.hello(token);
    return window.peer.checkin(dept, { timeoutMs: 60000 });
  }, { url: srv.url, token: c.patientToken, dept: c.dept });
  assert.equal(await docVisit, visit);

  // The doctor sends simulcast; the patient and the supervisor only receive.
  await doctor.evaluate(() => window.peer.startMedia({ simulcast: true }));
  await patient.evaluate(() => window.peer.startMedia({ recvOnly: { audio: 1, video: 1 } }));
  const early = await supervisor.evaluate(async ({ url, token, visit, doctorId }) => {
    await window.peer.connect(url);
    await window.peer.hello(token);
    await window.peer.watch(visit);
    const e = await window.peer.view(doctorId, 320, 180).then(() => 'ok', (err) => err.message);
    await window.peer.startMedia({ recvOnly: { audio: 1, video: 1 } });
    return e;
  }, { url: srv.url, token: c.supervisorToken(), visit, doctorId: c.doctorId });
  assert.match(early, /^conflict: send media.offer before media.view/);

  await t.test('the doctor sends three layers; both receivers decode the top one', async () => {
    await waitFor(async () => {
      const out = (await pageStats(doctor)).outbound.filter((s) => s.kind === 'video' && s.framesEncoded > 0);
      return { ok: out.length === 3, layers: out.map((s) => `${s.rid}:${s.frameWidth}`) };
    }, 'the doctor did not encode three layers', 60000);
    const both = await waitFor(async () => {
      const [p, s] = [await decoded(patient), await decoded(supervisor)];
      return { ok: p.width === TOP && s.width === TOP, patient: p, supervisor: s };
    }, 'the receivers did not reach the top layer' + (await logs()), 90000);
    console.log(`top layer on both: ${JSON.stringify(both)}`);
  });

  await t.test('the patient on a capped link drops to a lower layer, the supervisor keeps the top one', async () => {
    await relay.cmd('rate 300');
    // Both at one look: the patient below the top while the supervisor decodes it
    // (the doctor's browser may pause its top layer for a moment on its own).
    const low = await waitFor(async () => {
      const [p, s] = [await decoded(patient), await decoded(supervisor)];
      return { ok: p.width > 0 && p.width < TOP && s.width === TOP, patient: p, supervisor: s };
    }, 'the patient did not drop below the top layer under a 300 kbit/s cap while the supervisor kept it', 90000);
    console.log(`capped: ${JSON.stringify(low)}`);
    // Video keeps coming to both, each on its own layer.
    await waitFor(async () => {
      const [p, s] = [await decoded(patient), await decoded(supervisor)];
      return {
        ok: p.frames > low.patient.frames + 30 && p.width < TOP && s.frames > low.supervisor.frames + 30 && s.width === TOP,
        patient: p, supervisor: s,
      };
    }, 'the video stalled on a layer, or the capped patient went back to the top', 60000);
  });

  await t.test('the cap lifted, the patient climbs back to the top layer', async () => {
    await relay.cmd('rate 0');
    const back = await waitFor(async () => {
      const p = await decoded(patient);
      return { ok: p.width === TOP, patient: p };
    }, 'the patient did not come back to the top layer', 120000);
    console.log(`uncapped: ${JSON.stringify(back)}`);
  });

  await t.test('a receiver that shows the doctor at 320x180 gets the 320x180 layer', async () => {
    await supervisor.evaluate((id) => window.peer.view(id, 320, 180), c.doctorId);
    const small = await waitFor(async () => {
      const s = await decoded(supervisor);
      return { ok: s.width === 320, supervisor: s };
    }, 'the supervisor did not get the small layer', 30000);
    const p = await decoded(patient);
    assert.equal(p.width, TOP, 'the patient was moved by the supervisor\'s view');
    console.log(`view 320x180: ${JSON.stringify(small)}`);
    // A bad view is refused with a clear error and changes nothing.
    const err = await supervisor.evaluate((id) => window.peer.view(id, -1, 5).then(() => 'ok', (e) => e.message), c.doctorId);
    assert.match(err, /^bad_request: participant_id, width and height/);
    const who = await supervisor.evaluate(() => window.peer.view('nobody', 320, 180).then(() => 'ok', (e) => e.message));
    assert.match(who, /^not_found: no such participant in the visit/);
    const self = await doctor.evaluate((id) => window.peer.view(id, 320, 180).then(() => 'ok', (e) => e.message), c.doctorId);
    assert.match(self, /^bad_request: the server does not send you your own video/);
  });

  await t.test('the recording keeps the best layer, in one video track', async () => {
    await doctor.evaluate((v) => window.peer.request({ type: 'visit.end', visit_id: v, reason: 'completed' }), visit);
    const admin = srv.token('admin-simulcast', 'admin');
    const done = await waitFor(async () => {
      const r = await api(srv, 'GET', `/api/v1/visits/${visit}`, { token: admin });
      const rows = (r.body && r.body.recordings) || [];
      return { ok: rows.length > 0 && rows.every((x) => x.state !== 'recording'), rows };
    }, 'the recording did not finish', 60000);
    const p = await probe(done.rows[0].path);
    const video = p.streams.filter((x) => x.kind === 'video');
    assert.equal(video.length, 1, p.out);
    assert.equal(video[0].max_width, TOP, p.out);
    assert.ok(video[0].buffers > 100, p.out);
    console.log(`recording: ${JSON.stringify(video[0])}`);
  });
});
