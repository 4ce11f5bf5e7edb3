// review.test.mjs - the review rendition of a recorded visit (review.h):
// a 1:1 visit between two webrtcbin reference peers that send different
// tones (patient 440 Hz, doctor 1000 Hz) is rendered after its end into one
// WebM; GStreamer decodes it end to end and both tones carry real energy
// (Goertzel per frequency, review_probe). The rendition is encrypted at rest,
// hashed, listed in the record and the FHIR export, served decrypted with
// ranges and audited, and no plaintext is left in the data directory.
// Then: renditions queued while rendering was off are made after a restart,
// one at a time (review_render_max 1); damaged evidence fails with its
// reason on record, is tried again after review_retry_s and four times that,
// and stays failed after review_attempts (3) rows, while the server goes on;
// a recording that was away at the first try renders on a retry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  clinicServer, tokens, startVisit, describe, sha256, sha256File, getBin, until, ms,
} from './lib_rec.mjs';

const PATIENT_HZ = 440;
const DOCTOR_HZ = 1000;
const ABSENT_HZ = 700; // nobody sends it: the probe's floor

function probeBin() {
  const p = path.join(process.env.TELEMED_BUILD_DIR || 'build', 'review_probe');
  if (!fs.existsSync(p)) throw new Error(`review_probe not built (${p})`);
  return p;
}

// Decodes a rendition: {code, video: {frames, width, height}, tones: {hz: {share, blocks, of}}, result}.
function probeReview(file, freqs, timeoutS = 120) {
  return new Promise((resolve) => {
    execFile(probeBin(), [file, freqs.join(','), String(timeoutS)], { timeout: (timeoutS + 10) * 1000 },
      (err, stdout, stderr) => {
        const out = String(stdout);
        const kv = (line) => Object.fromEntries([...line.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1], m[2].replace(/^"|"$/g, '')]));
        const v = out.split('\n').find((l) => l.startsWith('video '));
        const tones = {};
        for (const l of out.split('\n').filter((x) => x.startsWith('tone '))) {
          const o = kv(l);
          tones[o.hz] = { share: Number(o.share), blocks: Number(o.blocks), of: Number(o.of) };
        }
        const r = out.split('\n').find((l) => l.startsWith('result '));
        const video = v ? kv(v) : {};
        resolve({ code: err ? (err.code ?? -1) : 0, tones, result: r ? kv(r) : {},
          video: { frames: Number(video.frames), width: Number(video.width), height: Number(video.height) },
          out: `${out}\n${String(stderr).slice(-2000)}` });
      });
  });
}

// The visit's renditions once none is queued or rendering.
async function settledRenditions(srv, visitId, admin, capMs = 240000) {
  let rows = null;
  await until(async () => {
    const r = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin);
    rows = r.json && r.json.renditions;
    return rows && rows.length && rows.every((x) => x.state === 'complete' || x.state === 'failed');
  }, capMs, 500);
  return rows;
}

// Every file under dir whose first bytes are a plain EBML (Matroska/WebM) header.
function plainMediaFiles(dir) {
  const found = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath ?? e.path, e.name);
    const fd = fs.openSync(p, 'r');
    const head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
    if (head.equals(Buffer.from([0x1a, 0x45, 0xdf, 0xa3]))) found.push(p);
  }
  return found;
}

// A visit the doctor ends after endAfter seconds. What is judged is the
// recording and its rendition, not the peers' own checks, which count media
// inside that window (on a loaded machine media may start seconds late):
// a peer that saw too little is only logged.
async function recordedVisit(t, srv, tok, { endAfter = 20 } = {}) {
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, {
    duration: endAfter + 30, endAfter,
    patientArgs: ['--tone', String(PATIENT_HZ)], doctorArgs: ['--tone', String(DOCTOR_HZ)],
  });
  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  for (const [who, r] of [['doctor', rd], ['patient', rp]])
    if (r.code !== 0) console.log(`# ${describe(who, r).split('\n')[0]}`);
  const vid = visitId();
  assert.ok(vid, describe('patient', rp));
  return vid;
}

async function metric(srv, name) {
  const r = await getBin(srv, '/metrics');
  const m = new RegExp(`^${name}\\{node="[^"]*"\\} (\\d+)`, 'm').exec(r.body.toString());
  return m ? Number(m[1]) : NaN;
}

test('review rendition: both voices in the mix, a video grid, encrypted at rest, served and listed', { timeout: 420000 }, async (t) => {
  const srv = await clinicServer(t);
  const tok = tokens(srv, 'p-review');
  const vid = await recordedVisit(t, srv, tok);
  const rows = await settledRenditions(srv, vid, tok.admin);
  assert.equal(rows?.length, 1, JSON.stringify(rows));
  const ren = rows[0];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'telemed-review-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const plainFile = path.join(tmp, 'review.webm');

  await t.test('the row is complete, encrypted, and hashes as stored', () => {
    assert.equal(ren.state, 'complete', JSON.stringify(ren));
    assert.equal(ren.encrypted, true);
    assert.equal(ren.parts, 1);
    assert.match(ren.path, /\.review\.webm\.enc$/);
    assert.equal(fs.statSync(ren.path).size, ren.size_bytes);
    assert.equal(sha256File(ren.path), ren.sha256);
    assert.match(ren.plain_sha256, /^[0-9a-f]{64}$/);
    assert.ok(ren.duration_ms > 4000, `duration ${ren.duration_ms}`);
    assert.ok(ren.cpu_ms > 0, `cpu ${ren.cpu_ms}`);
    console.log(`# review rendition cost: visit ${ren.duration_ms} ms of media, cpu ${ren.cpu_ms} ms,`
      + ` wall ${ms(ren.finished_at) - ms(ren.started_at)} ms, ${ren.size_bytes} bytes`);
  });

  await t.test('made by a child at nice 19 under SCHED_IDLE', () => {
    const line = srv.logs.split('\n').find((l) => l.includes('ev=review.complete') && l.includes(ren.id));
    assert.ok(line, srv.logs.slice(-3000));
    assert.match(line, / nice=19 sched=idle/);
  });

  await t.test('served decrypted as WebM, whole and by range, each fetch audited', async () => {
    const full = await getBin(srv, `/api/v1/renditions/${ren.id}`, { token: tok.admin });
    assert.equal(full.status, 200);
    assert.equal(full.headers['content-type'], 'video/webm');
    assert.equal(sha256(full.body), ren.plain_sha256, 'served bytes = the WebM before encryption');
    fs.writeFileSync(plainFile, full.body);
    const part = await getBin(srv, `/api/v1/renditions/${ren.id}`, { token: tok.admin, headers: { range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(full.body.subarray(100, 200)));
    const denied = await getBin(srv, `/api/v1/renditions/${ren.id}`, { token: tok.patient });
    assert.equal(denied.status, 403);
    const audit = await srv.api('GET', `/api/v1/audit?target=${ren.id}`, undefined, tok.admin);
    const outcomes = audit.json.audit.filter((a) => a.action === 'rendition.fetch').map((a) => a.outcome).sort();
    assert.deepEqual(outcomes, ['denied', 'ok', 'ok']);
  });

  await t.test('it plays end to end; the patient (440 Hz) and the doctor (1000 Hz) are both heard', async () => {
    const p = await probeReview(plainFile, [PATIENT_HZ, DOCTOR_HZ, ABSENT_HZ]);
    assert.equal(p.code, 0, p.out);
    assert.equal(p.result.eos, '1', p.out);
    assert.equal(p.video.width, 640, p.out);
    assert.equal(p.video.height, 360, p.out);
    assert.ok(p.video.frames >= 30, p.out);
    for (const hz of [PATIENT_HZ, DOCTOR_HZ]) {
      const tone = p.tones[String(hz)];
      assert.ok(tone.share > 0.05, `${hz} Hz share ${tone.share}\n${p.out}`);
      assert.ok(tone.blocks >= tone.of / 2, `${hz} Hz heard in ${tone.blocks} of ${tone.of} blocks\n${p.out}`);
    }
    assert.ok(p.tones[String(ABSENT_HZ)].share < 0.01, p.out);
    console.log(p.out.split('\n').filter((l) => l.startsWith('tone ')).map((l) => `# ${l}`).join('\n'));
  });

  await t.test('listed in the FHIR export as the review copy, beside the evidence', async () => {
    const f = await srv.api('GET', `/api/v1/visits/${vid}/fhir`, undefined, tok.admin);
    assert.equal(f.status, 200);
    const media = f.json.contained.filter((c) => c.resourceType === 'Media');
    const review = media.find((m) => m.content?.url === `/api/v1/renditions/${ren.id}`);
    assert.ok(review, JSON.stringify(media));
    assert.equal(review.content.contentType, 'video/webm');
    assert.ok(media.some((m) => m.content?.url?.startsWith('/api/v1/recordings/')), 'the evidence is still listed');
  });

  await t.test('no plaintext media and no temp file left in the data directory', () => {
    assert.deepEqual(plainMediaFiles(srv.dataDir), []);
    const left = fs.readdirSync(srv.dataDir, { recursive: true }).filter((f) => /\.part$|\.tmp$/.test(String(f)));
    assert.deepEqual(left, []);
  });
});

// The visit's rendition rows (one per attempt), oldest first, once pred holds.
async function renditionRows(srv, visitId, admin, pred, what, capMs = 480000) {
  let rows = [];
  try {
    await until(async () => {
      const r = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin);
      rows = (r.json && r.json.renditions) || [];
      return pred(rows);
    }, capMs, 500);
  } catch (e) {
    assert.fail(`${what}: ${e.message}: ${JSON.stringify(rows)}`);
  }
  return [...rows].sort((a, b) => ms(a.queued_at) - ms(b.queued_at));
}

// Long enough that the away recording is back before its last try (a cap on
// the test's own lag, not a rate), short enough to watch three tries.
const RETRY_S = 4;

test('renditions after a restart: a queue of 3 made one at a time; failures retried, bounded, on record', { timeout: 600000 }, async (t) => {
  // Rendering off while the visits are recorded: all three are queued at
  // the next start, at once.
  const env = { TELEMED_REVIEW_RENDER_MAX: '0' };
  const srv = await clinicServer(t, { env });
  const tok = tokens(srv, 'p-review-q');
  const visits = [];
  for (let i = 0; i < 3; i++) visits.push(await recordedVisit(t, srv, tok, { endAfter: 12 }));
  const recs = [];
  for (const v of visits) {
    let rec;
    await until(async () => {
      rec = (await srv.api('GET', `/api/v1/visits/${v}`, undefined, tok.admin)).json;
      return rec?.recordings?.length && rec.recordings.every((x) => x.state === 'complete');
    }, 30000, 200);
    assert.equal(rec.recordings[0].state, 'complete', JSON.stringify(rec.recordings));
    assert.deepEqual(rec.renditions, [], 'nothing rendered while review_render_max is 0');
    recs.push(rec.recordings[0]);
  }
  // Damage two pieces of evidence: bytes altered in the middle (the
  // encrypted chunk fails authentication) and a file cut to 100 bytes.
  const alteredPath = recs[0].path;
  const fd = fs.openSync(alteredPath, 'r+');
  fs.writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, Math.floor(fs.statSync(alteredPath).size * 0.75));
  fs.closeSync(fd);
  fs.truncateSync(recs[1].path, 100);
  // The third recording is away (storage gone for a while) at the first try.
  fs.renameSync(recs[2].path, `${recs[2].path}.away`);

  Object.assign(env, { TELEMED_REVIEW_RENDER_MAX: '1', TELEMED_REVIEW_ATTEMPTS: '3', TELEMED_REVIEW_RETRY_S: String(RETRY_S) });
  await srv.restart();
  const failedAt = await renditionRows(srv, visits[2], tok.admin, (r) => r.some((x) => x.state === 'failed'), 'the away recording fails first');
  fs.renameSync(`${recs[2].path}.away`, recs[2].path);
  const back = await renditionRows(srv, visits[2], tok.admin, (r) => r.some((x) => x.state === 'complete'), 'rendered on a retry');
  const threeFailed = (r) => r.length === 3 && r.every((x) => x.state === 'failed');
  const altered = await renditionRows(srv, visits[0], tok.admin, threeFailed, 'altered evidence: three failed tries');
  const cut = await renditionRows(srv, visits[1], tok.admin, threeFailed, 'cut evidence: three failed tries');
  const all = [...altered, ...cut, ...back];
  console.log(all.map((r) => `# ${r.visit_id} ${r.state}: ${r.error ?? ''}`).join('\n'));

  // Each try is queued no sooner than its wait after the one before failed.
  const spaced = (rows) => {
    for (let i = 1; i < rows.length; i++) {
      const wait = RETRY_S * 1000 * 4 ** (i - 1);
      assert.ok(ms(rows[i].queued_at) - ms(rows[i - 1].finished_at) >= wait,
        `try ${i + 1} queued ${ms(rows[i].queued_at) - ms(rows[i - 1].finished_at)} ms after try ${i} failed, wait ${wait}: ${JSON.stringify(rows)}`);
    }
  };
  await t.test('altered evidence: failed three times with why, spaced by the backoff', () => {
    for (const r of altered) {
      assert.match(r.error, /authentication/);
      assert.equal(r.path ? fs.existsSync(r.path) : false, false, 'no rendition file');
    }
    spaced(altered);
  });
  await t.test('cut evidence: failed three times with why, spaced by the backoff', () => {
    for (const r of cut) assert.match(r.error, /evidence part 1/);
    spaced(cut);
  });
  await t.test('the recording that was away is rendered on a retry; the failure stays on record', () => {
    assert.equal(failedAt[0].state, 'failed');
    assert.match(failedAt[0].error, /evidence part 1/);
    const done = back[back.length - 1];
    assert.equal(done.state, 'complete', JSON.stringify(back));
    assert.ok(back.length >= 2 && back.slice(0, -1).every((x) => x.state === 'failed'), JSON.stringify(back));
    spaced(back);
  });
  await t.test('never two renders at once: disjoint render times on record, peak 1', async () => {
    const spans = all.map((r) => [ms(r.started_at), ms(r.finished_at)]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++)
      assert.ok(spans[i][0] >= spans[i - 1][1], `overlap: ${JSON.stringify(spans)}`);
    assert.equal(await metric(srv, 'telemed_review_renders_peak'), 1);
    assert.equal(await metric(srv, 'telemed_review_queued'), 0);
    const h = await srv.api('GET', '/healthz');
    assert.equal(h.status, 200, 'the server goes on');
  });
  await t.test('no plaintext media left in the data directory', () => {
    assert.deepEqual(plainMediaFiles(srv.dataDir), []);
  });
});
