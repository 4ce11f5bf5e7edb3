// encrypted.test.mjs - recording encryption at rest, round trip: a server
// with TELEMED_RECORDING_KEY records a visit between two webrtcbin reference
// peers; the stored .mkv.enc does not play, `telemed-server
// decrypt-recording` turns it back into a file that plays (and refuses a
// wrong key), and the recording API serves the decrypted stream, whole and
// by ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { BIN } from '../integration/lib/server.mjs';
import {
  clinicServer, tokens, startVisit, describe, probe, sha256, sha256File, getBin, finishedRecording,
} from './lib_rec.mjs';

test('encrypted recording: not playable at rest, decrypts to a playable file, served decrypted', { timeout: 180000 }, async (t) => {
  const key = crypto.randomBytes(32).toString('hex');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'telemed-rec-key-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const keyFile = path.join(tmp, 'rec.key');
  fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });

  // The key comes from the environment: a flag would show it to every user in ps.
  const srv = await clinicServer(t, { env: { TELEMED_RECORDING_KEY: key } });
  const tok = tokens(srv, 'p-rec-enc');
  const { doctor, patient, visitId } = await startVisit(t, srv, tok, { duration: 40, endAfter: 10 });
  const [rp, rd] = await Promise.all([patient.done, doctor.done]);
  assert.equal(rd.code, 0, describe('doctor', rd));
  assert.equal(rp.code, 0, describe('patient', rp));
  const vid = visitId();
  const rec = await finishedRecording(srv, vid, tok.admin);
  assert.equal(rec.recordings.length, 1);
  const row = rec.recordings[0];
  const plainFile = path.join(tmp, 'plain.mkv');

  await t.test('the row is complete and encrypted; the stored file is .mkv.enc and hashes as recorded', () => {
    assert.equal(row.state, 'complete', JSON.stringify(row));
    assert.equal(row.encrypted, true, JSON.stringify(row));
    assert.match(row.path, /\.mkv\.enc$/);
    assert.ok(fs.existsSync(row.path));
    assert.equal(fs.statSync(row.path).size, row.size_bytes);
    assert.equal(sha256File(row.path), row.sha256, 'record hash = stored file hash');
  });

  await t.test('the stored file is not playable and carries no Matroska header or key', async () => {
    const bytes = fs.readFileSync(row.path);
    assert.ok(!bytes.subarray(0, 4).equals(Buffer.from([0x1a, 0x45, 0xdf, 0xa3])), 'no EBML magic at the start');
    assert.equal(bytes.indexOf(Buffer.from('matroska')), -1, 'no plain DocType anywhere');
    assert.equal(bytes.indexOf(Buffer.from('GStreamer')), -1, 'no plain muxing app string anywhere');
    assert.equal(bytes.indexOf(Buffer.from(key, 'hex')), -1, 'the key is not in the file');
    const p = await probe(row.path, 20);
    assert.ok(p.code !== 0 && p.result.video === 0 && p.result.audio === 0, `encrypted file decoded?\n${p.out}`);
  });

  await t.test('decrypt-recording with the key file gives a playable file; a wrong key is refused', async () => {
    execFileSync(BIN, ['decrypt-recording', row.path, plainFile, '--key-file', keyFile], { stdio: 'pipe' });
    const p = await probe(plainFile);
    assert.equal(p.code, 0, p.out);
    assert.equal(p.streams.filter((s) => s.kind === 'video' && s.buffers > 0).length, 2, p.out);
    assert.equal(p.streams.filter((s) => s.kind === 'audio' && s.audio_ms > 0).length, 2, p.out);
    const sizes = p.streams.filter((s) => s.kind === 'video').map((s) => `${s.width}x${s.height}`).sort();
    assert.deepEqual(sizes, ['320x240', '640x360']);

    const wrongKey = path.join(tmp, 'wrong.key');
    fs.writeFileSync(wrongKey, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
    const wrongOut = path.join(tmp, 'wrong.mkv');
    const r = spawnSync(BIN, ['decrypt-recording', row.path, wrongOut, '--key-file', wrongKey], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, 'a wrong key must fail');
    const left = fs.existsSync(wrongOut) ? fs.statSync(wrongOut).size : 0;
    assert.equal(left, 0, 'no plaintext left behind by a failed decryption');
  });

  await t.test('the recording API serves the decrypted stream, whole and by ranges', async () => {
    const plain = fs.readFileSync(plainFile);
    const recPath = `/api/v1/recordings/${row.id}`;
    const full = await getBin(srv, recPath, { token: tok.admin });
    assert.equal(full.status, 200, `status ${full.status} content-type ${full.headers['content-type']}`);
    assert.equal(full.body.length, plain.length, 'served length = decrypted length');
    assert.equal(sha256(full.body), sha256(plain), 'served bytes = decrypted file');
    const size = plain.length;
    // Ranges inside, across and at the end of the encryption chunks.
    const ranges = [[0, 99], [1000, 70000], [65530, 65545], [size - 300, size - 1], [Math.floor(size / 2), Math.floor(size / 2)]];
    for (const [first, last] of ranges) {
      const r = await getBin(srv, recPath, { token: tok.admin, headers: { range: `bytes=${first}-${last}` } });
      assert.equal(r.status, 206, `bytes=${first}-${last}: ${r.status}`);
      assert.equal(r.headers['content-range'], `bytes ${first}-${last}/${size}`);
      assert.ok(r.body.equals(plain.subarray(first, last + 1)), `bytes=${first}-${last} differ`);
    }
    const oob = await getBin(srv, recPath, { token: tok.admin, headers: { range: `bytes=${size}-` } });
    assert.equal(oob.status, 416);
  });

  await t.test('the record carries the plain stream\'s SHA-256, so a decrypted copy can be checked against it', () => {
    // issue 4: "decrypted one ... matches the hash of the plain stream".
    // The recorder computes it (tm_recorder_result.plain_sha256); the
    // record must keep it next to the hash of the stored file.
    const plainSha = sha256File(plainFile);
    const rowText = JSON.stringify(row);
    assert.ok(rowText.includes(plainSha), `plain stream hash ${plainSha} not in the recording row: ${rowText}`);
  });
});
