// camera_off.test.mjs - a patient who turns the camera off mid-visit sends no
// video at all (the page takes the track off the connection, rather than
// the black frames a disabled track sends), so the server sees no video and
// says "audio only" to the doctor, in Chinese and in English, and alerts
// supervisors; the doctor's page hides the last frame and never says "Poor"
// or "waiting for video". Turned on again, the doctor decodes the patient's
// camera once more and the words go away. Two real Chromiums (fake devices)
// and the real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, remoteVideo, rawWords, setLanguage, acceptedVisit, patientAlerts } from './lib.mjs';

const CAM = '.controls button >> nth=1';

async function framesGrow(page, what, capMs = 30000) {
  const first = await remoteVideo(page);
  await page.waitForFunction(async (n) => {
    const q = await window.tm.call.peer.quality();
    return q && q.video.reduce((s, v) => s + v.framesDecoded, 0) > n + 10;
  }, first.frames, { timeout: capMs, polling: 500 }).catch(() => assert.fail(`${what}: no new frames after ${JSON.stringify(first)}`));
}


test('a camera turned off is "audio only" to the doctor and supervisors, and back when on', { timeout: 180000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const patient = await openPage(browser, srv, 'patient.html', 'p-cam', 'patient');
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale: 'zh-CN' });
    await acceptedVisit(patient, doctor);
    const visitId = await patient.evaluate(() => window.tm.state.visitId);
    await framesGrow(doctor, 'the doctor never saw the patient');

    await patient.click(CAM);
    assert.equal(await patient.getAttribute(CAM, 'aria-pressed'), 'true');
    // Nothing goes out for the camera: the sender has no track.
    assert.equal(await patient.evaluate(() => window.tm.call.peer.pc.getTransceivers()
      .filter((tr) => tr.receiver.track.kind === 'video' && tr.currentDirection === 'sendrecv')
      .every((tr) => tr.sender.track === null)), true);
    await doctor.waitForSelector('.media-state[data-video="off"]:not([hidden]):has-text("仅语音")', { timeout: 30000 });
    const seen = await doctor.evaluate(() => ({
      quality: document.querySelector('.quality').dataset.level,
      stage: document.querySelector('.stage-msg').hidden ? '' : document.querySelector('.stage-msg').textContent,
      hidden: [...document.querySelectorAll('.tile-video.camera-off, .remote-video.camera-off')].length,
    }));
    assert.notEqual(seen.quality, 'poor', JSON.stringify(seen));
    assert.doesNotMatch(seen.stage, /等待视频/, JSON.stringify(seen));
    assert.equal(seen.hidden, 1, 'the last frame before the camera went off is still shown');
    assert.deepEqual((await rawWords(doctor, 'zh-CN')).bad, []);
    const alerts = await patientAlerts(srv, visitId, 'sup-cam');
    assert.ok(alerts.some((a) => a.kind === 'audio_only'), JSON.stringify(alerts));
    await setLanguage(doctor, 'en');
    assert.equal(await doctor.textContent('.media-state'), 'Audio only');
    assert.notEqual(await doctor.$eval('.quality', (n) => n.dataset.level), 'poor');

    await patient.click(CAM);
    assert.equal(await patient.getAttribute(CAM, 'aria-pressed'), 'false');
    await framesGrow(doctor, 'the camera turned on again did not reach the doctor');
    await doctor.waitForSelector('.media-state', { state: 'hidden', timeout: 30000 });
    assert.equal(await doctor.$$eval('.camera-off', (l) => l.length), 0);
    await doctor.waitForFunction(async (id) => {
      const r = await fetch(`/api/v1/overview`, { headers: { authorization: `Bearer ${id}` } });
      return r.ok && !((await r.json()).alerts || []).some((a) => a.kind === 'audio_only');
    }, srv.token('sup-cam', 'supervisor'), { timeout: 30000, polling: 1000 });
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
