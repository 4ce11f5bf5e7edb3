// party_simulcast.test.mjs - the pages send their camera in three simulcast
// layers (rid q, h, f) and a visit of three stays honest about it, in real
// Chromiums with fake cameras against a real server: a 1:1 visit works with
// both sides sending simulcast; with a consulting doctor in, the patient's
// phone gets a small layer for its thumbnail and a larger one for the main
// tile (media.view); a sender whose top layer pauses (as a browser does on a
// thin uplink) or whose bottom layer pauses is not said to be frozen, to the
// others or to a supervisor, while a sender that stops all its layers is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, waitView, patientCheckin, doctorOnDuty } from './lib.mjs';
import { waitUntil } from '../integration/lib/server.mjs';

const PHONE = { width: 412, height: 860 };
const DESK = { width: 1280, height: 800 };
// Frames the phone's two tiles show (30 s of both fake cameras at full rate)
// by which its main tile must have moved up: a step up waits for the
// estimate to have room, a 4 s hold and the layer's keyframe.
const MAIN_UP_FRAMES = 1800;

// What the page's camera sender is doing: its encodings and, per rid, the
// bytes and frame width getStats() reports.
const sending = (page) => page.evaluate(async () => {
  const pc = window.tm.call.peer.pc;
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const rids = {};
  (await sender.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp') rids[s.rid || '-'] = { bytes: s.bytesSent || 0, width: s.frameWidth || 0 };
  });
  return { encodings: sender.getParameters().encodings.map((e) => ({ rid: e.rid, active: e.active })), rids };
});

// Turns the page's camera layers on or off by rid.
const setActive = (page, active) => page.evaluate(async (want) => {
  const sender = window.tm.call.peer.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
  const p = sender.getParameters();
  for (const e of p.encodings) e.active = want[e.rid] !== false;
  await sender.setParameters(p);
}, active);

// The decoded width and frame count of each remote tile on the page.
const tiles = (page) => page.evaluate(() => [...document.querySelectorAll('.call .tile-p')].map((n) => {
  const v = n.querySelector('video');
  return { id: n.dataset.participant, width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames, thumb: !!n.closest('.tiles-thumbs') };
}));

async function tilesPlay(page, who, n) {
  const first = await waitUntil(`${who}: ${n} playing tiles`, async () => {
    const t = await tiles(page);
    return t.length === n && t.every((x) => x.width > 0) && t;
  }, 60000);
  await waitUntil(`${who}: frames advancing on every tile`, async () => {
    const now = await tiles(page);
    return first.every((x) => now.some((y) => y.id === x.id && y.frames > x.frames));
  }, 30000);
}

// Every media.quality push the page's signaling receives, from now on.
const recordQuality = (page) => page.evaluate(() => {
  window.mqSeen = [];
  window.tm.sig.on('media.quality', (m) => window.mqSeen.push(m));
});
const qualitySeen = (page) => page.evaluate(() => window.mqSeen);

// The visit in the supervisor's latest overview push.
function overviewVisit(sup, visitId) {
  const ov = sup.pushes.filter((m) => m.type === 'overview').pop();
  if (!ov) return null;
  const data = ov.data || ov;
  return { visit: (data.visits || []).find((v) => v.id === visitId), alerts: (data.alerts || []).filter((a) => a.visit_id === visitId) };
}

// The incoming video streams of one sender as the server reports them.
function inVideo(visit, peerKey) {
  return ((visit && visit.quality && visit.quality[peerKey]) || []).filter((s) => s.direction === 'in' && s.kind === 'video');
}

// When each sender's video last stood still on every layer at once, read off
// every overview push the supervisor got: a real freeze (a machine shared
// by a whole test suite starves a browser now and then), which the server
// is right to report. A paused layer beside playing ones is not one.
function stillWatch(sup, visitId) {
  const last = new Map();
  let seen = 0;
  return (peerKey, withinMs) => {
    for (; seen < sup.pushes.length; seen++) {
      const m = sup.pushes[seen];
      const v = m.type === 'overview' && (m.visits || []).find((x) => x.id === visitId);
      for (const [peer, streams] of Object.entries((v && v.quality) || {})) {
        const video = streams.filter((x) => x.direction === 'in' && x.kind === 'video');
        if (video.length && video.every((x) => x.frozen_ms > 0)) last.set(peer, Date.now());
      }
    }
    const keys = peerKey ? [peerKey] : [...last.keys()];
    return keys.some((k) => last.has(k) && Date.now() - last.get(k) <= withinMs);
  };
}

test('pages send simulcast; layers per receiver; quality judged per sender', { timeout: 420000 }, async (t) => {
  const srv = await startHospital({ depts: ['cardio', 'neuro'], doctors: [['d1', 'cardio'], ['d2', 'neuro']] });
  const browser = await launch();
  let sup;
  let visitId;
  try {
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { viewport: DESK });
    const colleague = await openPage(browser, srv, 'doctor.html', 'd2', 'doctor', { viewport: DESK });
    const patient = await openPage(browser, srv, 'patient.html', 'p-sim', 'patient', { viewport: PHONE, extra: { name: '李雷 Li Lei' } });
    // Caps for a loaded machine (the suite shares two cores), not latencies.
    for (const p of [doctor, colleague, patient]) p.setDefaultTimeout(60000);

    await t.test('a 1:1 visit with both pages sending three layers', async () => {
      await doctorOnDuty(colleague);
      await doctorOnDuty(doctor);
      await patientCheckin(patient);
      visitId = await patient.evaluate(() => window.tm.state.visitId);
      await doctor.waitForSelector('#offer:not([hidden])');
      await doctor.click('#offer-accept');
      await waitView(patient, 'visit', 60000);
      await tilesPlay(patient, 'patient', 1);
      await tilesPlay(doctor, 'doctor', 1);
      for (const [who, page] of [['patient', patient], ['doctor', doctor]]) {
        const s = await waitUntil(`${who} sends at least two layers`, async () => {
          const x = await sending(page);
          return Object.values(x.rids).filter((r) => r.bytes > 0).length >= 2 && x;
        }, 60000);
        assert.deepEqual(s.encodings.map((e) => e.rid), ['q', 'h', 'f'], `${who}: the server's answer kept the three layers`);
      }
    });

    await t.test('the colleague joins; the phone gets a small layer for its thumbnail', async () => {
      await doctor.selectOption('#inv-dept', 'neuro');
      await doctor.selectOption('#inv-kind', 'doctor');
      await doctor.click('#inv-form button[type="submit"]');
      await doctor.click('#staff-list li[data-staff="d2"] button');
      await colleague.waitForSelector('#invited:not([hidden])');
      await colleague.click('#invited-accept');
      await colleague.waitForSelector('#visit:not([hidden])');
      await tilesPlay(patient, 'patient', 2);
      await tilesPlay(doctor, 'doctor', 2);
      await tilesPlay(colleague, 'colleague', 2);
      // The thumbnail asks for a tile a fraction of the camera's size and
      // gets the quarter layer (at most 320 wide); the main tile a larger one
      // once the phone's estimate has room for it. Waited for by the frames
      // the phone shows meanwhile (a loaded machine decodes fewer a second),
      // with a cap in time for a phone that stops decoding altogether.
      const start = await tiles(patient);
      const shown = (now) => now.reduce((n, y) => n + Math.max(0, y.frames - (start.find((x) => x.id === y.id)?.frames ?? 0)), 0);
      let last;
      const got = await waitUntil('thumbnail on the small layer, main tile on a larger one', async () => {
        const x = last = await tiles(patient);
        const thumb = x.find((y) => y.thumb), main = x.find((y) => !y.thumb);
        if (thumb && main && thumb.width > 0 && thumb.width <= 320 && main.width > thumb.width) return x;
        if (shown(x) > MAIN_UP_FRAMES) throw new Error(`the main tile stayed small over ${MAIN_UP_FRAMES} frames shown`);
        return false;
      }, 180000).catch(async (e) => assert.fail(`${e.message}: ${JSON.stringify(last)}\n` +
        `doctor sends ${JSON.stringify(await sending(doctor))}, colleague ${JSON.stringify(await sending(colleague))}\n` +
        srv.logs.split('\n').filter((l) => /ev=media\.(layer|view)/.test(l)).slice(-30).join('\n')));
      assert.equal(got.length, 2);
    });

    await t.test('a paused top or bottom layer is no frozen sender; all layers stopped is', async () => {
      sup = await srv.client('s1', 'supervisor');
      await sup.request('overview.subscribe', {});
      const stillWithin = stillWatch(sup, visitId);
      await recordQuality(patient);
      await recordQuality(colleague);
      // The doctor's uplink drops its top layer; the colleague's its bottom one.
      await setActive(doctor, { f: false });
      await setActive(colleague, { q: false });
      // Until the server has seen each paused layer stand still for well over
      // alert_freeze_ms (2 s) while the sender's other layers play on.
      const paused = (streams) => streams.some((s) => s.frozen_ms >= 5000) && streams.some((s) => s.frozen_ms === 0 && s.bitrate_bps > 0);
      const seen = await waitUntil('a paused layer on each doctor, the others playing', () => {
        const o = overviewVisit(sup, visitId);
        stillWithin(null, 0);
        return o && paused(inVideo(o.visit, 'doctor:d1')) && paused(inVideo(o.visit, 'doctor:d2')) && o;
      }, 90000).catch((e) => assert.fail(`${e.message}: ${JSON.stringify(overviewVisit(sup, visitId)?.visit?.quality)}`));
      // No alert, unless some sender's every layer really stood still in the
      // alert's ten seconds (then the server is right, and this proves nothing).
      if (!stillWithin(null, 12000)) assert.deepEqual(seen.alerts, [], 'no alert about a visit whose senders all send video');
      else console.log(`# a sender really froze meanwhile; alerts not judged: ${JSON.stringify(seen.alerts)}`);
      for (const [who, page] of [['patient', patient], ['colleague', colleague]]) {
        const bad = (await qualitySeen(page)).filter((m) => m.participant_id !== 'p-sim' && m.video !== 'ok' &&
          !stillWithin(`doctor:${m.participant_id}`, 120000));
        assert.deepEqual(bad, [], `${who} was told a doctor's video is not ok`);
      }
      await tilesPlay(patient, 'patient with layers paused', 2);

      // The doctor's camera stops sending altogether: that is said, to the
      // others and the supervisor.
      await setActive(doctor, { q: false, h: false, f: false });
      await waitUntil('the patient told the doctor\'s video stopped', async () =>
        (await qualitySeen(patient)).some((m) => m.participant_id === 'd1' && m.video !== 'ok'), 60000);
      await waitUntil('a supervisor alert about the doctor\'s video', () => {
        const o = overviewVisit(sup, visitId);
        return o && o.alerts.some((a) => a.participant_id === 'd1' && (a.kind === 'audio_only' || a.kind === 'video_frozen'));
      }, 60000);
      await patient.waitForSelector('.call .tile-p[data-participant="d1"] .media-state:not([hidden])');
      // And back: one layer is enough for the others to be told all is well.
      await setActive(doctor, { q: true, h: false, f: false });
      await waitUntil('the patient told the doctor\'s video is back', async () => {
        const last = (await qualitySeen(patient)).filter((m) => m.participant_id === 'd1').pop();
        return last && last.video === 'ok';
      }, 60000);
    });

    await t.test('the doctor ends the visit', async () => {
      await doctor.click('#end-btn');
      await doctor.click('dialog.confirm .confirm-ok');
      await waitView(patient, 'ended', 60000);
    });
    for (const p of [patient, doctor, colleague]) assert.deepEqual(p.errors, []);
  } finally {
    if (sup) await sup.close();
    await browser.close();
    await srv.stop();
  }
});
