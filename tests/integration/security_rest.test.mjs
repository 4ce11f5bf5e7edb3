// The HTTP/REST side of the security review (issue 12): who may read which
// patient's data, that every such read leaves an audit row, what tokens are
// refused, the headers every answer carries, and the data directory's
// secrets and modes. A real server on loopback with a temp data directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync, statSync, existsSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, setupHospital, mintToken, BIN } from './lib/server.mjs';

let srv, admin, sup;
before(async () => {
  srv = await startServer();
  admin = await setupHospital(srv, { depts: ['cardio', 'endo'], doctors: [['d1', 'cardio'], ['d2', 'endo']] });
  sup = srv.token('s9', 'supervisor');
});
after(async () => { await srv.stop(); });

const auditOf = async (query) =>
  (await srv.api('GET', `/api/v1/audit?${query}`, undefined, admin)).json.audit;

test('pages and REST answers carry CSP, frame-ancestors, X-Frame-Options, HSTS and nosniff', async () => {
  for (const path of ['/doctor.html', '/patient.html', '/', '/healthz', '/api/v1/me']) {
    const r = await srv.api('GET', path, undefined, admin);
    const csp = r.headers['content-security-policy'] || '';
    assert.match(csp, /frame-ancestors 'none'/, `${path}: ${csp}`);
    assert.match(csp, /script-src 'self'/, path);
    assert.equal(r.headers['x-frame-options'], 'DENY', path);
    assert.match(r.headers['strict-transport-security'] || '', /max-age=\d{7,}/, path);
    assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
  }
});

test('a doctor reads appointments of their own department only, or of a patient a visit of theirs brought', async () => {
  const slot = new Date(Date.now() + 3600e3).toISOString();
  const mk = async (id, patient, dept) => {
    const r = await srv.api('POST', '/api/v1/appointments', { id, patient_id: patient, dept_id: dept, slot }, admin);
    assert.equal(r.status, 201, r.text);
  };
  await mk('apt-c1', 'p-cardio', 'cardio');
  await mk('apt-c2', 'p-both', 'cardio');
  const endo = srv.token('d2', 'doctor', { dept: 'endo' });
  const cardio = srv.token('d1', 'doctor', { dept: 'cardio' });
  assert.equal((await srv.api('GET', '/api/v1/appointments/apt-c1', undefined, cardio)).status, 200);
  const refused = await srv.api('GET', '/api/v1/appointments/apt-c1', undefined, endo);
  assert.equal(refused.status, 403, refused.text);
  assert.ok((await auditOf('target=apt-c1')).some((a) =>
    a.action === 'appointment.read' && a.actor_id === 'd2' && a.outcome === 'denied'));

  // p-both sees d2 in endocrinology; that visit lets d2 read p-both's cardiology booking.
  assert.equal((await srv.api('GET', '/api/v1/appointments/apt-c2', undefined, endo)).status, 403);
  const doctor = await srv.client('d2', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const p = await srv.client('p-both', 'patient');
  const ci = await p.request('checkin', { dept: 'endo' });
  await doctor.waitFor('visit.offer');
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'terminate_and_refer', advice: 'Cardiology clinic, in person today' });
  await p.close();
  await doctor.close();
  const allowed = await srv.api('GET', '/api/v1/appointments/apt-c2', undefined, endo);
  assert.equal(allowed.status, 200, allowed.text);
  assert.equal(allowed.json.patient_id, 'p-both');
  assert.equal((await srv.api('GET', '/api/v1/appointments/apt-c1', undefined, endo)).status, 403);
});

test('every read of patient data over REST is audited, found or not', async () => {
  const reads = [
    ['/api/v1/visits?patient=p-audit', 200, 'visit.list', 'p-audit'],
    ['/api/v1/appointments?patient=p-audit', 200, 'appointment.list', 'p-audit'],
    ['/api/v1/appointments', 200, 'appointment.list', '*'],
    ['/api/v1/overview', 200, 'overview.read', '*'],
    ['/api/v1/appointments/apt-none', 404, 'appointment.read', 'apt-none'],
    ['/api/v1/visits/v-none', 404, 'visit.read', 'v-none'],
    ['/api/v1/recordings/rec-none', 404, 'recording.fetch', 'rec-none'],
  ];
  for (const [path, status, action, target] of reads) {
    const r = await srv.api('GET', path, undefined, sup);
    assert.equal(r.status, status, `${path}: ${r.text}`);
    const rows = await auditOf(`actor=s9&target=${encodeURIComponent(target)}`);
    assert.ok(rows.some((a) => a.action === action && a.actor_role === 'supervisor'),
      `${path}: no ${action} row for ${target}: ${JSON.stringify(rows)}`);
  }
  // A recording deleted under the retention policy (410) and one whose file is
  // gone (500): refused fetches are reads too. Rows as the recorder and the
  // retention sweep leave them, on the visit made above.
  const [{ id: visit }] = srv.sql('SELECT id FROM visits LIMIT 1');
  srv.sql(`INSERT INTO recordings(id, visit_id, path, format, state, started_at, deleted_at)
    VALUES ('rec-gone', '${visit}', '/nonexistent/a.mkv', 'matroska', 'deleted', 1, 2),
           ('rec-lost', '${visit}', '/nonexistent/b.mkv', 'matroska', 'complete', 1, NULL)`);
  for (const [id, status, outcome] of [['rec-gone', 410, 'gone'], ['rec-lost', 500, 'failed']]) {
    assert.equal((await srv.api('GET', `/api/v1/recordings/${id}`, undefined, sup)).status, status);
    assert.ok((await auditOf(`target=${id}`)).some((a) => a.action === 'recording.fetch' && a.outcome === outcome), id);
  }
  // Reading the audit log is itself audited, and shows in its own answer.
  const a = await srv.api('GET', '/api/v1/audit?target=apt-none', undefined, sup);
  assert.ok(a.json.audit.some((x) => x.action === 'audit.read' && x.actor_id === 's9'), a.text);
});

test('a refused REST credential is logged and audited with the reason, not the token', async () => {
  const none = await srv.api('GET', '/api/v1/visits?patient=p1');
  assert.equal(none.status, 401);
  const bad = mintToken('not-the-secret', { sub: 'mallory', role: 'admin' });
  assert.equal((await srv.api('GET', '/api/v1/visits', undefined, bad)).status, 401);
  const rows = await auditOf('target=visits');
  assert.ok(rows.some((a) => a.action === 'api.auth' && a.outcome === 'denied' && a.detail === 'no_token'),
    JSON.stringify(rows));
  assert.ok(rows.some((a) => a.action === 'api.auth' && a.detail === 'bad_signature'), JSON.stringify(rows));
  assert.match(srv.logs, /ev=http\.auth_refused route=visits reason=no_token/);
  assert.ok(!srv.logs.includes(bad), 'the token is not logged');
});

test('a token living longer than jwt_max_lifetime_s, or issued in the future, is refused', async () => {
  const now = Math.floor(Date.now() / 1000);
  const long = mintToken(srv.secret, { sub: 'a', role: 'admin', iat: now, exp: now + 2 * 86400 });
  const r = await srv.api('GET', '/api/v1/me', undefined, long);
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /lifetime_too_long/);
  const noIat = mintToken(srv.secret, { sub: 'a', role: 'admin', iat: undefined, exp: now + 2 * 86400 });
  assert.equal((await srv.api('GET', '/api/v1/me', undefined, noIat)).status, 401);
  const ahead = mintToken(srv.secret, { sub: 'a', role: 'admin', iat: now + 3600, exp: now + 7200 });
  const f = await srv.api('GET', '/api/v1/me', undefined, ahead);
  assert.equal(f.status, 401);
  assert.match(f.json.error.message, /issued_in_future/);
  const ok = mintToken(srv.secret, { sub: 'a', role: 'admin', iat: now, exp: now + 3600 });
  assert.equal((await srv.api('GET', '/api/v1/me', undefined, ok)).status, 200);
});

test('the data directory is 0700 and holds a 0600 recording key made on first start', () => {
  assert.equal(statSync(srv.dataDir).mode & 0o777, 0o700);
  const key = join(srv.dataDir, 'recording.key');
  assert.ok(existsSync(key), 'recording.key made on first start');
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.match(srv.logs, /ev=recording\.key_created/);
});

test('an existing 0755 data directory is narrowed to 0700 with a log line; turning encryption off warns', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'telemed-open-'));
  chmodSync(dir, 0o755);
  const s = await startServer({ dataDir: dir, args: ['--no-recording-encrypt'] });
  try {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.match(s.logs, /ev=data_dir\.mode_fixed path=\S+ was=0755 now=0700/);
    assert.match(s.logs, /level=warn ev=recording\.encryption_off/);
    assert.ok(!existsSync(join(dir, 'recording.key')), 'no key made when encryption is off');
  } finally {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--recording-key on the command line is refused (it would show in ps)', () => {
  const r = spawnSync(BIN, ['--recording-key', 'ab'.repeat(32), '--check-config']);
  assert.equal(r.status, 2);
  assert.match(r.stderr.toString(), /recording_key: not accepted on the command line/);
  assert.ok(!r.stderr.toString().includes('ab'.repeat(32)));
});

test('--jwt-secret on the command line is refused; jwt_secret_file gives the secret instead', async () => {
  const r = spawnSync(BIN, ['--jwt-secret', 'seen-by-every-user', '--check-config']);
  assert.equal(r.status, 2);
  assert.match(r.stderr.toString(), /jwt_secret: not accepted on the command line/);
  assert.ok(!r.stderr.toString().includes('seen-by-every-user'));
  const dir = mkdtempSync(join(tmpdir(), 'telemed-secret-'));
  const file = join(dir, 'jwt.secret');
  writeFileSync(file, 'secret-from-a-file\n', { mode: 0o600 });
  const own = await startServer({ noSecret: true, args: ['--jwt-secret-file', file] });
  try {
    const good = mintToken('secret-from-a-file', { sub: 'a1', role: 'admin' });
    assert.equal((await own.api('GET', '/api/v1/me', undefined, good)).status, 200);
    const other = mintToken('another-secret', { sub: 'a1', role: 'admin' });
    assert.equal((await own.api('GET', '/api/v1/me', undefined, other)).status, 401);
    assert.ok(!existsSync(join(own.dataDir, 'jwt.secret')), 'no secret made beside the file');
  } finally {
    await own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with identity provider keys and no jwt_secret, HS256 is off and no jwt.secret exists', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'telemed-idp-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pub = join(dir, 'idp.pem');
  writeFileSync(pub, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  const idp = await startServer({ noSecret: true, args: ['--jwt-public-keys', pub] });
  try {
    assert.ok(!existsSync(join(idp.dataDir, 'jwt.secret')), 'no jwt.secret made');
    assert.match(idp.logs, /ev=identity\.ready hs256=off public_keys=on/);
    const now = Math.floor(Date.now() / 1000);
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ sub: 'u1', role: 'admin', iat: now, exp: now + 600 })}`;
    const rs = `${input}.${sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url')}`;
    assert.equal((await idp.api('GET', '/api/v1/me', undefined, rs)).status, 200);
    // The host's token subcommand has no secret to mint with...
    const cli = spawnSync(BIN, ['--data-dir', idp.dataDir, '--jwt-public-keys', pub, 'token',
      '--sub', 'root', '--role', 'admin']);
    assert.equal(cli.status, 2, cli.stdout.toString());
    assert.match(cli.stderr.toString(), /no HS256 secret/);
    assert.ok(!existsSync(join(idp.dataDir, 'jwt.secret')));
    // ...and an HS256 token signed with any secret (here one the host may once have kept) is refused.
    const hs = mintToken('old-host-secret', { sub: 'root', role: 'admin' });
    const r = await idp.api('GET', '/api/v1/me', undefined, hs);
    assert.equal(r.status, 401);
    assert.match(r.json.error.message, /alg_not_allowed/);
  } finally {
    await idp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
