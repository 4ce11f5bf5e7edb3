// lib_rec.mjs - what the recording end-to-end tests share: the real server
// (integration harness, so kill -9 and restart work), a clinic, full visits
// between two webrtcbin reference peers (tests/webrtc/lib_client.mjs), the
// independent file judge (rec_probe), hashing, and binary HTTPS fetches.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { startServer as startHarness, setupHospital } from '../integration/lib/server.mjs';
import { runClient, describe, parseKv } from '../webrtc/lib_client.mjs';

export { runClient, describe, parseKv, setupHospital };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const DEPT = 'cardio';
export const DOCTOR = 'd1';

// A server with a clinic (department cardio, doctor d1 on shift now,
// capacity 2). Recordings are encrypted at rest unless args say
// --no-recording-encrypt (the tests that judge the plain Matroska file on
// disk do). Stopped after the test (hard stop if the test already
// killed it). Returns the harness handle plus {admin} token.
export async function clinicServer(t, { args = [], env = {} } = {}) {
  const srv = await startHarness({ args, env });
  t.after(async () => {
    if (process.env.TM_TEST_VERBOSE) console.log(srv.logs.slice(-20000));
    await srv.stop();
  });
  srv.admin = await setupHospital(srv, { depts: [DEPT], doctors: [[DOCTOR, DEPT]], capacity: 2 });
  return srv;
}

export function tokens(srv, patientId) {
  return {
    patient: srv.token(patientId, 'patient', { dept: DEPT }),
    doctor: srv.token(DOCTOR, 'doctor', { dept: DEPT }),
    supervisor: srv.token('s-rec', 'supervisor'),
    admin: srv.admin,
  };
}

function common(srv, token, role, extra = []) {
  return ['--url', srv.url(), '--token', token, '--role', role, ...extra];
}

// Starts a doctor and a patient reference peer into one visit. The doctor
// sends 640x360, the patient 320x240, so each recorded video track tells
// its sender by its size. Returns {doctor, patient, visitId()}; callers wait
// for .done themselves.
// doctorArgs / patientArgs: more reference-peer flags for one side (--tone).
export async function startVisit(t, srv, tok, { duration = 30, endAfter = 0, verbose = false, kfDist,
  doctorArgs = [], patientArgs = [] } = {}) {
  const v = verbose ? ['--verbose'] : [];
  const kf = kfDist ? ['--kf-dist', String(kfDist)] : [];
  const doctor = runClient(common(srv, tok.doctor, 'doctor', ['--width', '640', '--height', '360',
    '--expect-width', '320', '--expect-height', '240', '--duration', String(duration),
    '--min-audio-s', '3', ...kf, ...v, ...doctorArgs, ...(endAfter ? ['--end-after', String(endAfter)] : [])]), { name: 'doctor' });
  t.after(() => doctor.kill());
  await doctor.waitEvent('hello_ok', 60000);
  const patient = runClient(common(srv, tok.patient, 'patient', ['--dept', DEPT, '--width', '320', '--height', '240',
    '--expect-width', '640', '--expect-height', '360', '--duration', String(duration),
    '--min-audio-s', '3', ...kf, ...v, ...patientArgs]), { name: 'patient' });
  t.after(() => patient.kill());
  const visitId = () => {
    const e = patient.events.find((x) => x.visit && x.visit !== '-') || doctor.events.find((x) => x.visit);
    return e ? e.visit : null;
  };
  return { doctor, patient, visitId };
}

export function watcherArgs(srv, token, visit, extra = []) {
  return common(srv, token, 'supervisor', ['--recv-only', '--watch', visit, ...extra]);
}

export function probeBin() {
  const p = path.join(process.env.TELEMED_BUILD_DIR || 'build', 'rec_probe');
  if (!fs.existsSync(p)) throw new Error(`rec_probe not built (${p})`);
  return p;
}

// Decodes a file with rec_probe: {code, streams: [...], result, out}.
export function probe(file, timeoutS = 60) {
  return new Promise((resolve) => {
    execFile(probeBin(), [file, String(timeoutS)], { timeout: (timeoutS + 10) * 1000 }, (err, stdout, stderr) => {
      const lines = String(stdout).split('\n');
      const streams = lines.filter((l) => l.startsWith('stream ')).map(parseKv);
      for (const s of streams) for (const k of ['buffers', 'width', 'height', 'max_width', 'max_height', 'first_ms', 'last_ms', 'audio_ms']) s[k] = Number(s[k]);
      const r = lines.find((l) => l.startsWith('result '));
      const result = r ? parseKv(r) : null;
      if (result) for (const k of ['eos', 'streams', 'video', 'audio', 'duration_ms']) result[k] = Number(result[k]);
      resolve({ code: err ? (err.code ?? -1) : 0, streams, result, out: `${stdout}\n${String(stderr).slice(-3000)}` });
    });
  });
}

export function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

export function sha256File(file) {
  return sha256(fs.readFileSync(file));
}

// A GET with the body kept as bytes: {status, headers, body: Buffer}.
export function getBin(srv, p, { token, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: srv.port, method: 'GET', path: p, rejectUnauthorized: false,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`GET ${p}: timeout`)));
    req.end();
  });
}

// Polls fn until it returns a truthy value or ms pass; returns the value
// (or the last falsy one).
export async function until(fn, ms = 10000, step = 100) {
  const end = Date.now() + ms;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() > end) return v;
    await sleep(step);
  }
}

// Millisecond epoch from a record timestamp (RFC 3339 string or number).
export function ms(v) {
  if (v === null || v === undefined) return NaN;
  return typeof v === 'number' ? v : Date.parse(v);
}

// The recording row of a visit once it left state 'recording'.
export async function finishedRecording(srv, visitId, admin, ms_ = 20000) {
  let rec = null;
  await until(async () => {
    const r = await srv.api('GET', `/api/v1/visits/${visitId}`, undefined, admin);
    rec = r.json;
    const rows = rec && rec.recordings;
    return rows && rows.length && rows.every((x) => x.state !== 'recording');
  }, ms_, 200);
  return rec;
}

// Each directory from root down to the file's directory, with its mode.
export function dirModes(root, file) {
  const out = [];
  let d = path.dirname(file);
  while (d.length >= root.length) {
    out.push([d, fs.statSync(d).mode & 0o777]);
    if (d === root) break;
    d = path.dirname(d);
  }
  return out;
}
