// visit_seal.test.mjs - the sealed record of a recorded visit: two webrtcbin
// reference peers hold a visit on a server that encrypts recordings at rest;
// the record is sealed (no note is signed, so after --seal-after-s), GET
// /api/v1/visits/{id}/verify and `telemed-server verify-visit` pass it with
// the file's hash and its decrypted stream's hash both checked; then one
// byte of the .mkv.enc on disk is changed and both name the recording, its
// path and the chunk that no longer authenticates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BIN } from '../integration/lib/server.mjs';
import { clinicServer, tokens, startVisit, describe, finishedRecording, until } from './lib_rec.mjs';

test('a recorded visit is sealed and verified; one changed byte of its encrypted file is named', { timeout: 240000 }, async (t) => {
  const key = crypto.randomBytes(32).toString('hex');
  const srv = await clinicServer(t, { args: ['--seal-after-s', '1'], env: { TELEMED_RECORDING_KEY: key } });
  const tok = tokens(srv, 'p-seal');
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, { duration: 30, endAfter: 8 });
  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  assert.equal(rd.code, 0, describe('doctor', rd));
  assert.equal(rp.code, 0, describe('patient', rp));
  const vid = visitId();
  const rec = await finishedRecording(srv, vid, tok.admin, 60000);
  const row = rec.recordings[0];
  assert.equal(row.state, 'complete', JSON.stringify(row));
  assert.equal(row.encrypted, true);
  const sealed = await until(() => srv.sql(`SELECT 1 AS x FROM visit_seals WHERE visit_id = '${vid}'`).length > 0, 60000, 200);
  assert.ok(sealed, `not sealed:\n${srv.logs.slice(-3000)}`);
  const cli = () => spawnSync(BIN, ['--data-dir', srv.dataDir, 'verify-visit', vid], { encoding: 'utf8', env: { ...process.env, TELEMED_RECORDING_KEY: key } });

  let r = await srv.api('GET', `/api/v1/visits/${vid}/verify`, undefined, tok.admin);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ok, true, JSON.stringify(r.json, null, 2));
  assert.deepEqual(r.json.unchecked, []);
  const checked = r.json.recordings.find((x) => x.id === row.id);
  assert.equal(checked.file_sha256, row.sha256);
  assert.equal(checked.plain_sha256, row.plain_sha256);
  const statement = JSON.parse(srv.sql(`SELECT statement FROM visit_seals WHERE visit_id = '${vid}'`)[0].statement);
  assert.deepEqual(statement.recordings.map((x) => [x.id, x.sha256, x.plain_sha256]), [[row.id, row.sha256, row.plain_sha256]]);
  let out = cli();
  assert.equal(out.status, 0, out.stdout + out.stderr);

  // One byte in the middle of the file on disk.
  const size = fs.statSync(row.path).size;
  const fd = fs.openSync(row.path, 'r+');
  const at = Math.floor(size / 2);
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x40;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);

  r = await srv.api('GET', `/api/v1/visits/${vid}/verify`, undefined, tok.admin);
  assert.equal(r.json.ok, false);
  const diffs = r.json.differences.filter((d) => d.part === 'recording' && d.id === row.id).map((d) => d.detail);
  assert.ok(diffs.some((d) => d.startsWith(`the file ${row.path} hashes to `) && d.endsWith(`the record says ${row.sha256}`)), diffs.join('\n'));
  assert.ok(diffs.some((d) => d.startsWith(`the encrypted file ${row.path} fails authentication in the chunk at plaintext offset `)), diffs.join('\n'));
  assert.deepEqual(r.json.differences.filter((d) => d.part !== 'recording'), []);
  out = cli();
  assert.equal(out.status, 1, out.stdout + out.stderr);
  assert.match(out.stdout, new RegExp(`recording ${row.id}: the encrypted file .* fails authentication`));
});
