// party_speaker.test.mjs - the active speaker is highlighted on the pages,
// from the audio levels (RFC 6464) the server reads: in a visit of three
// real Chromiums the attending doctor's microphone plays speech-like bursts
// from a generated WAV file, the patient's and the consulting doctor's play
// silence (each browser its own --use-file-for-fake-audio-capture). The
// doctor's tile is highlighted on the others' pages and is the large one on
// the patient's phone; no other tile is, and the doctor's page marks their
// own video.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startHospital, openPage, waitView, patientCheckin, doctorOnDuty, shot, CHROMIUM_ARGS } from './lib.mjs';
import { waitUntil } from '../integration/lib/server.mjs';

const RATE = 48000;

// A 16-bit mono WAV of the samples (-1..1).
function writeWav(file, samples) {
  const data = Buffer.alloc(samples.length * 2);
  samples.forEach((v, i) => data.writeInt16LE(Math.round(Math.max(-1, Math.min(1, v)) * 32767), i * 2));
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(RATE, 24); h.writeUInt32LE(RATE * 2, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(data.length, 40);
  fs.writeFileSync(file, Buffer.concat([h, data]));
}

// Syllable-like bursts of a voiced sound (a pitch with harmonics, rising and
// falling) with short pauses: not a steady tone, which noise suppression
// learns and removes.
function speech(seconds) {
  const out = new Float32Array(RATE * seconds);
  const syllable = 0.28, gap = 0.12;
  for (let i = 0; i < out.length; i++) {
    const t = i / RATE;
    const k = Math.floor(t / (syllable + gap));
    const u = t - k * (syllable + gap);
    if (u >= syllable) continue;
    const f0 = 140 + 40 * ((k * 7) % 5) + 30 * Math.sin(2 * Math.PI * u / syllable);
    let v = 0;
    for (let h = 1; h <= 8; h++) v += Math.sin(2 * Math.PI * f0 * h * t) / h;
    out[i] = 0.35 * v * Math.sin(Math.PI * u / syllable);
  }
  return out;
}

const launchWith = (wav) => chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: [...CHROMIUM_ARGS, `--use-file-for-fake-audio-capture=${wav}`], timeout: 30000,
});

// Which remote tiles the page highlights, which is large, and its own video.
const highlight = (page) => page.evaluate(() => ({
  speaking: [...document.querySelectorAll('.call .tile-p.speaking')].map((n) => n.dataset.participant),
  tiles: [...document.querySelectorAll('.call .tile-p')].map((n) => n.dataset.participant),
  main: [...document.querySelectorAll('.tiles-main .tile-p')].map((n) => n.dataset.participant),
  self: !!document.querySelector('.self-video.speaking'),
}));

// The page's highlight settles on `want` (cap for a loaded machine), then
// holds over several further looks.
async function settles(page, who, want) {
  let last;
  await waitUntil(`${who}: the highlight as expected`, async () => {
    last = await highlight(page);
    return want(last);
  }, 60000).catch((e) => assert.fail(`${e.message}: ${JSON.stringify(last)}`));
  for (let i = 0; i < 6; i++) {
    await page.waitForTimeout(500);
    last = await highlight(page);
    assert.ok(want(last), `${who}: the highlight moved: ${JSON.stringify(last)}`);
  }
  return last;
}

test('the one speaking is highlighted, the silent are not', { timeout: 300000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-speaker-'));
  const talkWav = path.join(dir, 'talk.wav'), quietWav = path.join(dir, 'quiet.wav');
  writeWav(talkWav, speech(4));
  writeWav(quietWav, new Float32Array(RATE * 2));
  const srv = await startHospital({ depts: ['cardio', 'neuro'], doctors: [['d1', 'cardio'], ['d2', 'neuro']] });
  const talking = await launchWith(talkWav);
  const quiet = await launchWith(quietWav);
  try {
    const doctor = await openPage(talking, srv, 'doctor.html', 'd1', 'doctor', { viewport: { width: 1280, height: 800 } });
    const colleague = await openPage(quiet, srv, 'doctor.html', 'd2', 'doctor', { viewport: { width: 1280, height: 800 } });
    const patient = await openPage(quiet, srv, 'patient.html', 'p-spk', 'patient', { viewport: { width: 412, height: 860 }, extra: { name: '张三 Zhang' } });
    // Caps for a loaded machine (the suite shares two cores), not latencies.
    for (const p of [doctor, colleague, patient]) p.setDefaultTimeout(60000);
    await doctorOnDuty(colleague);
    await doctorOnDuty(doctor);
    await patientCheckin(patient);
    await doctor.waitForSelector('#offer:not([hidden])');
    await doctor.click('#offer-accept');
    await waitView(patient, 'visit', 60000);
    await doctor.selectOption('#inv-dept', 'neuro');
    await doctor.click('#inv-form button[type="submit"]');
    await doctor.click('#staff-list li[data-staff="d2"] button');
    await colleague.waitForSelector('#invited:not([hidden])');
    await colleague.click('#invited-accept');
    await colleague.waitForSelector('#visit:not([hidden])');

    await t.test('the patient\'s phone: the doctor highlighted and large, the colleague not', async () => {
      const h = await settles(patient, 'patient', (x) => x.tiles.length === 2 && x.speaking.length === 1 && x.speaking[0] === 'd1');
      assert.deepEqual(h.main, ['d1']);
      assert.equal(h.self, false);
      await shot(patient, 'party-speaker-patient');
    });

    await t.test('the colleague\'s page: the doctor highlighted, the patient not', async () => {
      await settles(colleague, 'colleague', (x) => x.tiles.length === 2 && x.speaking.length === 1 && x.speaking[0] === 'd1' && !x.self);
    });

    await t.test('the doctor\'s page: their own video marked, neither silent tile', async () => {
      await settles(doctor, 'doctor', (x) => x.tiles.length === 2 && x.speaking.length === 0 && x.self);
    });

    for (const p of [patient, doctor, colleague]) assert.deepEqual(p.errors, []);
  } finally {
    await talking.close();
    await quiet.close();
    await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
