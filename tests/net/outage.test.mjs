// outage.test.mjs - a visit survives the patient's network going away: after
// blackouts of 5, 10 and 30 s (every datagram dropped both ways, TCP held)
// and after the patient's address changes (the server sees the patient
// from a new IP and port, as after a Wi-Fi to 4G handover), audio and
// video flow again both ways, as each page's getStats() counts them, and
// the server's figures for supervisors show the patient's video frozen
// (frozen_ms) while the network is out and flowing again after; from 10 s
// on, the doctor's page says the patient's video is paused and supervisors
// have an alert, both gone once it is back. At the end the visit record notes
// each outage as an interruption of the patient's media, and the recording
// is one file that goes on after the gaps.
// Recovery times are printed (the first steady flow both ways, read every
// 500 ms); the target is 3 s after the return. The assertion is a
// generous cap, because beside another browser test on two loaded cores one
// 10 s outage took 10 s to recover (cause not yet known; see
// tests/bench/README.md); the 3 s is measured by tests/bench/network_quality.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startImpairedVisit, closeVisit, outage, flowsBothWays, patientVideoFrozenMs, patientMediaAlerts, doctorSeesPatient, waitFor } from './lib_visit.mjs';
import { confirm } from '../web/lib.mjs';
import { probe, getBin, finishedRecording } from '../recording/lib_rec.mjs';

const OUTAGES = (process.env.TM_NET_OUTAGES || '5,10,30').split(',').filter(Boolean).map(Number);
const CAP_MS = 20000;
const outages = [];

test('media comes back both ways after outages and an address change', { timeout: 600000 }, async (t) => {
  const ctx = await startImpairedVisit({ tag: 'outage' });
  if (!ctx) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  try {
    for (const s of OUTAGES) {
      await t.test(`${s} s outage`, async () => {
        // The server sees the patient's video freeze from what it forwards;
        // given the time, the doctor and supervisors are told.
        const during = s >= 5 ? async () => {
          await waitFor(async () => {
            const frozen = await patientVideoFrozenMs(ctx);
            return { ok: frozen >= 2000, frozen };
          }, 'the server did not see the video freeze', (s - 1) * 1000);
          if (s < 10) return;
          await waitFor(async () => {
            const seen = await doctorSeesPatient(ctx);
            return { ok: seen.shown && seen.video === 'frozen' && seen.text === "The patient's video is paused — poor network", seen };
          }, 'the doctor is not told the video is paused', (s - 3) * 1000);
          await waitFor(async () => {
            const alerts = await patientMediaAlerts(ctx);
            return { ok: alerts.some((a) => a.kind === 'video_frozen' || a.kind === 'no_media'), alerts };
          }, 'supervisors have no alert', (s - 3) * 1000);
        } : null;
        const ms = await outage(ctx, s, { capMs: CAP_MS, during });
        console.log(`recovery after a ${s} s outage: ${ms} ms`);
        outages.push(s);
        await waitFor(async () => {
          const frozen = await patientVideoFrozenMs(ctx);
          const seen = await doctorSeesPatient(ctx);
          const alerts = await patientMediaAlerts(ctx);
          return { ok: frozen === 0 && !seen.shown && alerts.length === 0, frozen, seen, alerts };
        }, 'the video is still seen as frozen', 10000);
      });
    }

    await t.test('address change mid-visit', async () => {
      await ctx.relay.cmd('rebind');
      const ms = await flowsBothWays(ctx, CAP_MS);
      console.log(`recovery after an address change: ${ms} ms`);
    });

    await t.test('the visit is still the same one, on both pages', async () => {
      assert.equal(await ctx.patient.evaluate(() => window.tm.state.visitId), ctx.visitId);
      assert.equal(await ctx.doctor.evaluate(() => window.tm.state.visitId), ctx.visitId);
      assert.deepEqual(ctx.patient.errors, []);
      assert.deepEqual(ctx.doctor.errors, []);
    });

    await t.test('the record notes the outages; the recording is one file that goes on after them', async () => {
      const startedAt = Date.parse((await ctx.srv.api('GET', `/api/v1/visits/${ctx.visitId}`, undefined, ctx.srv.admin)).json.accepted_at);
      await ctx.doctor.selectOption('#end-reason', 'completed');
      await ctx.doctor.click('#end-btn');
      await confirm(ctx.doctor);
      const rec = await finishedRecording(ctx.srv, ctx.visitId, ctx.srv.admin, 60000);
      const active = Date.parse(rec.ended_at) - startedAt;
      const gaps = rec.interruptions.filter((g) => g.role === 'patient');
      console.log(`interruptions: ${JSON.stringify(rec.interruptions)}`);
      for (const s of outages.filter((x) => x >= 5)) {
        assert.ok(gaps.some((g) => g.duration_ms >= (s - 2) * 1000 && g.duration_ms <= (s + 10) * 1000),
          `no interruption of about ${s} s in ${JSON.stringify(rec.interruptions)}`);
      }
      assert.ok(gaps.every((g) => g.ended_at !== null), 'every gap ended');
      assert.deepEqual(rec.interruptions.filter((g) => g.role === 'doctor'), [], 'the doctor never lost media');
      assert.equal(rec.recordings.length, 1, JSON.stringify(rec.recordings));
      const row = rec.recordings[0];
      assert.equal(row.state, 'complete', JSON.stringify(row));
      const file = await getBin(ctx.srv, `/api/v1/recordings/${row.id}`, { token: ctx.srv.admin });
      assert.equal(file.status, 200);
      const dir = mkdtempSync(join(tmpdir(), 'tm-outage-rec-'));
      try {
        writeFileSync(join(dir, 'visit.mkv'), file.body);
        const p = await probe(join(dir, 'visit.mkv'));
        console.log(`recording: ${p.out.split('\n').filter((l) => /^(stream|result)/.test(l)).join(' | ')}; visit active ${active} ms`);
        assert.equal(p.code, 0, p.out);
        const video = p.streams.filter((x) => x.kind === 'video');
        assert.equal(video.length, 2, p.out);
        // Both senders' video runs on to the end, past every outage.
        for (const v of video) assert.ok(v.last_ms >= active - 15000, `a video track stops at ${v.last_ms} ms of ${active}\n${p.out}`);
        assert.ok(Math.abs(p.result.duration_ms - active) <= active * 0.15, `played ${p.result.duration_ms} ms vs visit ${active} ms`);
        // The gap is in it: the patient's sound is short by the outages, the doctor's is whole.
        const out = outages.reduce((a, s) => a + s * 1000, 0);
        const audio = p.streams.filter((x) => x.kind === 'audio').map((x) => x.audio_ms).sort((a, b) => a - b);
        assert.equal(audio.length, 2, p.out);
        assert.ok(audio[0] <= p.result.duration_ms - out * 0.8, `no gap of ${out} ms in the patient's sound\n${p.out}`);
        assert.ok(audio[1] >= p.result.duration_ms * 0.9, `the doctor's sound has a gap\n${p.out}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  } finally {
    await closeVisit(ctx);
  }
});
