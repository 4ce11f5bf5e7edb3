// visit_seal.test.mjs - the sealed visit record in the real server: a visit
// over telemed.v1 is sealed once its note is signed and it is over; GET
// /api/v1/visits/{id}/verify and `telemed-server verify-visit` both pass it,
// then name an event changed with the sqlite3 shell and a note text changed
// the same way. An SM2 deployment seals and verifies too; a server whose
// seal key went missing refuses to start (and verify-visit to check) in
// words that say what to do.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, startServer, setupHospital, fullVisit } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SEAL_FAST = ['--seal-after-s', '2'];

// The sealer runs each second. These visits carry no media, so their
// recording rows never get a file and stay "recording": the servers here
// seal 2 s after the end (--seal-after-s), as a deployment would after a day.
async function waitSealed(srv, visit) {
  for (let i = 0; i < 600; i++) {
    if (srv.sql(`SELECT 1 AS x FROM visit_seals WHERE visit_id = '${visit}'`).length) return;
    await sleep(100);
  }
  assert.fail(`visit ${visit} was not sealed:\n${srv.logs.slice(-3000)}`);
}

function verifyCli(srv, visit, extra = []) {
  return spawnSync(BIN, ['--data-dir', srv.dataDir, ...extra, 'verify-visit', visit], { encoding: 'utf8' });
}

test('a sealed visit verifies; a changed event and a changed note are each named', { timeout: 120000 }, async () => {
  const srv = await startServer({ args: SEAL_FAST });
  try {
    const admin = await setupHospital(srv);
    const visit = await fullVisit(srv, 'p1', { note: 'history, advice', score: null });
    await waitSealed(srv, visit);
    const keyFile = path.join(srv.dataDir, 'seal.key');
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);

    let r = await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, admin);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, JSON.stringify(r.json, null, 2));
    assert.equal(r.json.sealed, true);
    assert.equal(r.json.seal.algorithm, 'ecdsa-p256');
    assert.equal(r.json.seal.signature, 'valid');
    assert.deepEqual(r.json.differences, []);
    let cli = verifyCli(srv, visit);
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, new RegExp(`visit ${visit}: verified: sealed at \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z with ecdsa-p256 key [0-9a-f]{64}`));

    // The seal is in the feed, on the visit's chain.
    const sealedEv = srv.sql(`SELECT payload FROM outbox WHERE visit_id = '${visit}' AND type = 'visit.sealed'`);
    assert.equal(sealedEv.length, 1);
    const seal = JSON.parse(sealedEv[0].payload).seal;
    assert.equal(seal.key_id, r.json.seal.key_id);
    assert.equal(JSON.parse(seal.statement).note.sha256.length, 64);

    // The note is final once sealed.
    const doctor = await srv.client('d1', 'doctor');
    await assert.rejects(doctor.request('visit.note', { visit_id: visit, text: 'rewritten', sign: true }), /conflict|signed|sealed/i);
    await doctor.close();

    // An event row changed behind the server's back.
    const ended = srv.sql(`SELECT event_id FROM outbox WHERE visit_id = '${visit}' AND type = 'visit.ended'`)[0].event_id;
    execFileSync('sqlite3', [srv.db, `UPDATE outbox SET payload = replace(payload, '"completed"', '"terminate_and_refer"') WHERE event_id = '${ended}'`]);
    r = await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, admin);
    assert.equal(r.json.ok, false);
    const chainDiffs = r.json.differences.filter((d) => d.part === 'chain');
    assert.ok(chainDiffs.some((d) => d.id === ended && /visit\.ended/.test(d.detail) && /hash does not match/.test(d.detail)), JSON.stringify(r.json.differences));
    assert.ok(chainDiffs.some((d) => /chain head recomputed/.test(d.detail)), JSON.stringify(r.json.differences));
    assert.equal(r.json.differences.filter((d) => d.part === 'note').length, 0);
    cli = verifyCli(srv, visit);
    assert.equal(cli.status, 1, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /CHANGED/);
    assert.match(cli.stdout, new RegExp(`chain ${ended}: event seq \\d+ \\(visit\\.ended\\)`));
    execFileSync('sqlite3', [srv.db, `UPDATE outbox SET payload = replace(payload, '"terminate_and_refer"', '"completed"') WHERE event_id = '${ended}'`]);
    r = await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, admin);
    assert.equal(r.json.ok, true, JSON.stringify(r.json.differences));

    // The note's text changed behind the server's back.
    execFileSync('sqlite3', [srv.db, `UPDATE notes SET body = 'history, other advice' WHERE visit_id = '${visit}'`]);
    r = await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, admin);
    assert.equal(r.json.ok, false);
    assert.deepEqual(r.json.differences.map((d) => d.part), ['note']);
    assert.match(r.json.differences[0].detail, /signed note's text or diagnosis code changed since the seal/);
    cli = verifyCli(srv, visit);
    assert.equal(cli.status, 1);
    assert.match(cli.stdout, /note .*changed since the seal/);

    const audit = srv.sql(`SELECT outcome FROM audit_log WHERE action = 'visit.verify' ORDER BY id`);
    assert.deepEqual(audit.map((a) => a.outcome), ['ok', 'failed', 'ok', 'failed']);
    const supervisor = srv.token('s1', 'supervisor');
    assert.equal((await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, supervisor)).status, 200);
    assert.equal((await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, srv.token('d1', 'doctor'))).status, 403);
    assert.equal((await srv.api('GET', '/api/v1/visits/nope/verify', undefined, admin)).status, 404);
  } finally {
    await srv.stop();
  }
});

test('an SM2 deployment seals and verifies', { timeout: 120000 }, async () => {
  const srv = await startServer({ args: [...SEAL_FAST, '--seal-algorithm', 'sm2'] });
  try {
    const admin = await setupHospital(srv);
    const visit = await fullVisit(srv, 'p2', { note: 'history, advice', score: null });
    await waitSealed(srv, visit);
    const r = await srv.api('GET', `/api/v1/visits/${visit}/verify`, undefined, admin);
    assert.equal(r.json.ok, true, JSON.stringify(r.json, null, 2));
    assert.equal(r.json.seal.algorithm, 'sm2');
    // The key file is an SM2 key, as openssl itself reads it.
    const text = execFileSync('openssl', ['pkey', '-in', path.join(srv.dataDir, 'seal.key'), '-noout', '-text']).toString();
    assert.match(text, /SM2/);
    const cli = verifyCli(srv, visit, ['--seal-algorithm', 'sm2']);
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
    // The same key read as ECDSA is refused, naming both.
    const wrong = verifyCli(srv, visit);
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /is sm2, but seal_algorithm is ecdsa-p256/);
  } finally {
    await srv.stop();
  }
});

test('a missing seal key is refused clearly, not replaced', { timeout: 120000 }, async () => {
  const srv = await startServer({ args: SEAL_FAST });
  const keyFile = path.join(srv.dataDir, 'seal.key');
  let visit;
  try {
    await setupHospital(srv);
    visit = await fullVisit(srv, 'p3', { note: 'history, advice', score: null });
    await waitSealed(srv, visit);
  } finally {
    await srv.stop({ keep: true });
  }
  fs.renameSync(keyFile, `${keyFile}.bak`);
  try {
    const cli = verifyCli(srv, visit);
    assert.equal(cli.status, 2);
    assert.match(cli.stderr, new RegExp(`no seal key at ${keyFile}: .*restore the key from the backup`));
    const start = spawnSync(BIN, ['--data-dir', srv.dataDir, '--port', '0', '--listen', '127.0.0.1'], { encoding: 'utf8', timeout: 60000 });
    assert.notEqual(start.status, 0);
    assert.match(start.stderr, new RegExp(`the seal key ${keyFile} is missing but 1 visits are sealed with it: restore it from the backup`));
    assert.ok(!fs.existsSync(keyFile), 'no new key was made in its place');
    fs.renameSync(`${keyFile}.bak`, keyFile);
    const back = verifyCli(srv, visit);
    assert.equal(back.status, 0, back.stdout + back.stderr);
  } finally {
    fs.rmSync(srv.dataDir, { recursive: true, force: true });
  }
});
