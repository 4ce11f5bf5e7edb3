// watch.test.mjs - a supervisor watches a live visit with a receive-only
// webrtcbin reference peer: it must decode both participants' video (the
// senders make keyframes only when asked, so this also proves the server
// requests one for a new watcher), the participants are told a supervisor
// is present, start and stop are audited; patients cannot watch, and
// unknown or ended visits are refused (and audited). How fast the first
// frame comes is reported here and measured by the benchmarks, not asserted:
// on a loaded machine it says nothing about the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runClient, describe, clinicServer, tokens, startVisit, watcherArgs, sleep, until } from './lib_rec.mjs';

// Stamps every event= line of a reference peer with the time Node read it.
function stampLines(h) {
  const stamped = [];
  let buf = '';
  h.child.stdout.on('data', (d) => {
    const now = performance.now();
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      stamped.push({ line: buf.slice(0, i), at: now });
      buf = buf.slice(i + 1);
    }
  });
  return stamped;
}

// The visit.supervisor pushes a peer received (its --verbose stderr log).
function supervisorPushes(h) {
  return [...h.stderr.matchAll(/<- (\{"type":"visit\.supervisor"[^\n]*)/g)].map((m) => JSON.parse(m[1]));
}

test('supervisor watch: both videos decoded, presence pushed, audited; bad watches refused', { timeout: 240000 }, async (t) => {
  const srv = await clinicServer(t, { args: ['--no-recording-encrypt'] });
  const tok = tokens(srv, 'p-rec-watch');
  // The doctor ends the visit after VISIT_S s of media; the watch below
  // must fit inside it even when every step is slow on a loaded machine.
  const VISIT_S = 40;
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, {
    duration: 70, endAfter: VISIT_S, verbose: true, kfDist: 100000,
  });
  await patient.waitEvent('first_video', 30000);
  await doctor.waitEvent('first_video', 30000);
  const vid = visitId();
  assert.ok(vid);
  await sleep(2500); // well past the senders' only spontaneous keyframe

  await t.test('a patient cannot watch (forbidden, audited as denied)', async () => {
    const pc = await srv.client('p-rec-other', 'patient', { dept: 'cardio' });
    await assert.rejects(pc.request('visit.watch', { visit_id: vid }), (e) => e.code === 'forbidden');
    await pc.close();
    const rows = srv.sql(`SELECT actor_id, actor_role, outcome FROM audit_log WHERE action = 'visit.watch' AND actor_id = 'p-rec-other'`);
    assert.deepEqual(rows, [{ actor_id: 'p-rec-other', actor_role: 'patient', outcome: 'denied' }]);
  });

  await t.test('an unknown visit: not_found, audited', async () => {
    const sc = await srv.client('s-rec-neg', 'supervisor');
    await assert.rejects(sc.request('visit.watch', { visit_id: 'v-00000000-0000-4000-8000-000000000000' }), (e) => e.code === 'not_found');
    await assert.rejects(sc.request('visit.watch', {}), (e) => e.code === 'bad_request');
    await sc.close();
    const rows = srv.sql(`SELECT outcome FROM audit_log WHERE action = 'visit.watch' AND actor_id = 's-rec-neg'`);
    assert.ok(rows.length >= 1 && rows.every((r) => r.outcome === 'denied'), JSON.stringify(rows));
  });

  let stamps;
  let rs;
  await t.test('the watcher decodes both participants\' video', async () => {
    const sup = runClient(watcherArgs(srv, tok.supervisor, vid, ['--duration', '5', '--min-audio-s', '2', '--expect-width', '0', '--expect-height', '0',
      '--expect-video-streams', '2', '--expect-audio-streams', '2', '--verbose']), { name: 'supervisor' });
    t.after(() => sup.kill());
    stamps = stampLines(sup);
    rs = await sup.done;
    assert.equal(rs.code, 0, describe('supervisor', rs));
    // hello_ok is printed right before the client sends visit.watch; it
    // then builds its webrtcbin pipeline and sends the receive-only
    // media.offer (offer_sent). Both figures are reported; the frames
    // arriving at all is what the test asserts.
    const asked = stamps.find((s) => s.line.startsWith('event=hello_ok'));
    const offered = stamps.find((s) => s.line.startsWith('event=offer_sent'));
    const firsts = stamps.filter((s) => s.line.startsWith('event=first_video'));
    assert.ok(asked && offered, describe('supervisor', rs));
    assert.equal(firsts.length, 2, `two video streams decoded\n${describe('supervisor', rs)}`);
    const fromWatch = firsts.map((f) => Math.round(f.at - asked.at));
    const fromOffer = firsts.map((f) => Math.round(f.at - offered.at));
    console.log(`# watch request -> first decoded frame: ${fromWatch.join(' ms, ')} ms; of which the peer's own set-up before its offer: ${Math.round(offered.at - asked.at)} ms; media.offer -> first frame: ${fromOffer.join(' ms, ')} ms (client connect_ms=${rs.result.connect_ms})`);
    for (const d of fromOffer) assert.ok(d >= 0, `first frame ${d} ms after the watcher's media.offer\n${describe('supervisor', rs)}`);
    const sizes = rs.streams.filter((s) => s.kind === 'video').map((s) => `${s.width}x${s.height}`).sort();
    assert.deepEqual(sizes, ['320x240', '640x360'], 'one video per participant');
  });

  await t.test('participants were told a supervisor is present, then gone', async () => {
    for (const [name, h] of [['patient', patient], ['doctor', doctor]]) {
      const pushes = await until(() => {
        const p = supervisorPushes(h);
        return p.some((x) => x.present === false) ? p : null;
      }, 30000) || supervisorPushes(h);
      assert.ok(pushes.some((p) => p.visit_id === vid && p.present === true && p.count === 1), `${name}: ${JSON.stringify(pushes)}`);
      assert.ok(pushes.some((p) => p.visit_id === vid && p.present === false), `${name} told when the supervisor left: ${JSON.stringify(pushes)}`);
    }
  });

  await t.test('watch and unwatch are in the audit log', async () => {
    const rows = await until(() => {
      const r = srv.sql(`SELECT actor_id, actor_role, action, target, outcome FROM audit_log
        WHERE action IN ('visit.watch','visit.unwatch') AND actor_id = 's-rec' ORDER BY id`);
      return r.some((x) => x.action === 'visit.unwatch') ? r : null;
    }, 30000);
    assert.ok(rows, 'visit.unwatch audited after the watcher left');
    assert.deepEqual(rows.map((r) => [r.action, r.target, r.outcome, r.actor_role]),
      [['visit.watch', vid, 'ok', 'supervisor'], ['visit.unwatch', vid, 'ok', 'supervisor']]);
  });

  await t.test('an ended visit: conflict, audited', async () => {
    const [rp, rd] = await Promise.all([patient.done, doctor.done]);
    assert.equal(rd.code, 0, describe('doctor', rd));
    assert.equal(rp.code, 0, describe('patient', rp));
    const sc = await srv.client('s-rec-late', 'supervisor');
    await assert.rejects(sc.request('visit.watch', { visit_id: vid }), (e) => e.code === 'conflict');
    await sc.close();
    const rows = srv.sql(`SELECT outcome, target FROM audit_log WHERE action = 'visit.watch' AND actor_id = 's-rec-late'`);
    assert.deepEqual(rows, [{ outcome: 'denied', target: vid }]);
    // The watched visit is still recorded to the end.
    const rec = await until(async () => {
      const r = await srv.api('GET', `/api/v1/visits/${vid}`, undefined, tok.admin);
      return r.json?.recordings?.[0]?.state === 'complete' ? r.json : null;
    }, 60000);
    assert.ok(rec, 'recording complete after the watched visit');
  });
});
