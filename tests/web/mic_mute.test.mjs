// mic_mute.test.mjs - a patient who mutes the microphone sends no sound at
// all (the page takes the track off the connection, as for the camera,
// rather than the silence a disabled track still sends): the doctor's
// inbound audio stops counting packets, the patient's tile says
// "Microphone off" with the muted sign in Chinese and in English, the
// supervisors get no alert for a choice the patient made, and with the
// camera off as well it is "camera and microphone off", never a frozen
// picture over a poor network. Unmuted, sound comes again and the words go.
// Two real Chromiums (fake devices) and the real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, rawWords, setLanguage, acceptedVisit, patientAlerts } from './lib.mjs';

const MIC = '.controls button >> nth=0';
const CAM = '.controls button >> nth=1';

const audioIn = (page) => page.evaluate(async () => {
  const report = await window.tm.call.peer.pc.getStats();
  let n = 0;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') n += s.packetsReceived || 0; });
  return n;
});

async function audioGrows(page, what, by = 50) {
  const first = await audioIn(page);
  await page.waitForFunction(async ([n, by]) => {
    const report = await window.tm.call.peer.pc.getStats();
    let m = 0;
    report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') m += s.packetsReceived || 0; });
    return m > n + by;
  }, [first, by], { timeout: 30000, polling: 250 }).catch(() => assert.fail(`${what}: audio stayed at ${first} packets`));
}


test('a muted microphone sends nothing and is shown muted to the doctor, and sound is back when unmuted', { timeout: 180000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const patient = await openPage(browser, srv, 'patient.html', 'p-mic', 'patient');
    const doctor = await openPage(browser, srv, 'doctor.html', 'd1', 'doctor', { locale: 'zh-CN' });
    await acceptedVisit(patient, doctor);
    const visitId = await patient.evaluate(() => window.tm.state.visitId);
    await audioGrows(doctor, 'the doctor never heard the patient');

    await patient.click(MIC);
    assert.equal(await patient.getAttribute(MIC, 'aria-pressed'), 'true');
    // Nothing goes out for the microphone: the sender has no track (once
    // replaceTrack, which the click starts, has resolved).
    await patient.waitForFunction(() => window.tm.call.peer.pc.getTransceivers()
      .filter((tr) => tr.receiver.track.kind === 'audio' && tr.currentDirection === 'sendrecv')
      .every((tr) => tr.sender.track === null), null, { timeout: 30000, polling: 100 });
    const state = '.media-state[data-audio="off"]:not([hidden])';
    await doctor.waitForSelector(`${state}:has-text("麦克风已关闭")`, { timeout: 30000 });
    assert.equal(await doctor.$$eval(`${state} .mic-off-icon`, (l) => l.length), 1);
    // The server said so after seeing no sound for a while: nothing arrives.
    const before = await audioIn(doctor);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await audioIn(doctor), before, 'audio packets still arrive from a muted microphone');
    assert.notEqual(await doctor.$eval('.quality', (n) => n.dataset.level), 'poor');
    assert.deepEqual((await rawWords(doctor, 'zh-CN')).bad, []);
    assert.deepEqual((await patientAlerts(srv, visitId, 'sup-mic')).map((a) => a.kind), []);
    await setLanguage(doctor, 'en');
    assert.match(await doctor.textContent('.media-state'), /Microphone off$/);

    // Camera off too: said as both, not as a picture frozen by the network.
    await patient.click(CAM);
    await doctor.waitForSelector('.media-state[data-video="off"][data-audio="off"]:has-text("Camera and microphone off")', { timeout: 30000 });
    assert.equal(await doctor.$$eval('.tile-video.paused, .remote-video.paused', (l) => l.length), 0);
    await patient.click(CAM);

    await patient.click(MIC);
    assert.equal(await patient.getAttribute(MIC, 'aria-pressed'), 'false');
    await audioGrows(doctor, 'the microphone unmuted did not reach the doctor');
    await doctor.waitForSelector('.media-state', { state: 'hidden', timeout: 30000 });
    assert.deepEqual(patient.errors, []);
    assert.deepEqual(doctor.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
