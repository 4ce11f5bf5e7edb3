// Sessions hold only what they are entitled to (issue 12): a session ends
// when its token does unless renewed; the overview over WSS is audited (an
// admin as admin); doctor.queue is for the doctor's own departments; a long
// user agent is cut on a character boundary; the server's closes carry a
// code and a reason (issue 15). session_limits.test.mjs has the rest.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, setupHospital, mintToken, Client, sleep, waitUntil } from './lib/server.mjs';

let srv;
before(async () => {
  // A slow refill: a flood is cut off however fast the server reads it.
  srv = await startServer({ args: ['--jwt-leeway-s', '0', '--no-recording',
    '--rate-msgs-per-s', '1', '--rate-burst', '30'] });
  await setupHospital(srv, { depts: ['cardio', 'endo'], doctors: [['d1', 'cardio'], ['d2', 'endo']] });
});
after(async () => { await srv.stop(); });

test('a session ends with its token; auth.renew keeps it going', async () => {
  const now = Math.floor(Date.now() / 1000);
  const short = (sub, role) => mintToken(srv.secret, { sub, role, name: sub, exp: now + 8 });
  const lapsing = new Client(srv.url());
  await lapsing.open();
  const hello = await lapsing.request('hello', { token: short('sup-a', 'supervisor') });
  assert.equal(hello.expires_at, new Date((now + 8) * 1000).toISOString());
  await lapsing.request('overview.subscribe');
  await lapsing.waitFor('overview');

  const renewing = new Client(srv.url());
  await renewing.open();
  await renewing.request('hello', { token: short('sup-b', 'supervisor') });
  await renewing.request('overview.subscribe');
  await assert.rejects(renewing.request('auth.renew', { token: srv.token('sup-a', 'supervisor') }),
    /forbidden: the token is for someone else/);
  await assert.rejects(renewing.request('auth.renew', { token: 'not-a-token' }), /unauthorized/);
  const renewed = await renewing.request('auth.renew', { token: srv.token('sup-b', 'supervisor') });
  assert.ok(Date.parse(renewed.expires_at) > Date.now() + 3000_000);

  const code = await Promise.race([lapsing.closed, sleep(60000).then(() => 'open')]);
  assert.equal(code, 4401);
  assert.equal(lapsing.closeReason, 'token expired');
  assert.ok(Date.now() >= (now + 8) * 1000, 'closed before the token expired');
  // The renewed session outlives its first token and still gets the overview.
  await sleep(Math.max(0, (now + 9) * 1000 - Date.now()));
  renewing.pushes.length = 0;
  const p = await srv.client('p-ov', 'patient');
  const ci = await p.request('checkin', { dept: 'cardio' });
  await renewing.waitFor('overview', (m) => m.visits.some((v) => v.id === ci.visit_id));
  await p.request('queue.leave', { visit_id: ci.visit_id });
  await p.close();
  await renewing.close();
});

test('the overview over WSS is audited, and an admin is audited as admin', async () => {
  const admin = await srv.client('adm-1', 'admin');
  await admin.request('overview.subscribe');
  await admin.waitFor('overview');
  await admin.request('overview.unsubscribe');
  const sup = await srv.client('sup-c', 'supervisor');
  await sup.request('overview.subscribe');
  await sup.close();
  const rows = await waitUntil('audit rows', async () => {
    const r = srv.sql(`SELECT actor_id, actor_role, action, detail FROM audit_log
      WHERE action LIKE 'overview.%' AND actor_id IN ('adm-1','sup-c') ORDER BY id`);
    return r.length === 4 ? r : null;
  });
  assert.deepEqual(rows.map((r) => [r.actor_id, r.actor_role, r.action]), [
    ['adm-1', 'admin', 'overview.subscribe'], ['adm-1', 'admin', 'overview.unsubscribe'],
    ['sup-c', 'supervisor', 'overview.subscribe'], ['sup-c', 'supervisor', 'overview.unsubscribe']]);
  assert.match(rows[1].detail, /^requested; pushes=\d+$/);
  assert.match(rows[3].detail, /^disconnected; pushes=\d+$/);

  // Watching a live visit: the admin's audit row says admin.
  const doc = await srv.client('d1', 'doctor');
  await doc.request('doctor.status', { status: 'available' });
  const pat = await srv.client('p-watch', 'patient');
  const ci = await pat.request('checkin', { dept: 'cardio' });
  await doc.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id, 20000);
  await doc.request('visit.accept', { visit_id: ci.visit_id });
  await admin.request('visit.watch', { visit_id: ci.visit_id });
  await admin.request('visit.unwatch');
  const watch = srv.sql(`SELECT actor_role, action FROM audit_log WHERE actor_id='adm-1' AND target='${ci.visit_id}' ORDER BY id`);
  assert.deepEqual(watch, [{ actor_role: 'admin', action: 'visit.watch' }, { actor_role: 'admin', action: 'visit.unwatch' }]);
  await doc.request('visit.end', { visit_id: ci.visit_id });
  await Promise.all([admin.close(), doc.close(), pat.close()]);
});

test('doctor.queue: a registered doctor, their own departments only', async () => {
  const d1 = await srv.client('d1', 'doctor');
  const own = await d1.request('doctor.queue', { dept: 'cardio' });
  assert.equal(own.dept, 'cardio');
  await assert.rejects(d1.request('doctor.queue', { dept: 'endo' }), /forbidden: not a department of yours/);
  const stranger = await srv.client('dx', 'doctor');
  await assert.rejects(stranger.request('doctor.queue', { dept: 'cardio' }),
    /forbidden: this doctor is not registered at the hospital/);
  const sup = await srv.client('sup-q', 'supervisor');
  assert.equal((await sup.request('doctor.queue', { dept: 'endo' })).dept, 'endo');
  await Promise.all([d1.close(), stranger.close(), sup.close()]);
});

test('a user agent cut to 159 bytes ends on a character boundary', async () => {
  const c = new Client(srv.url());
  await c.open();
  const ua = `${'a'.repeat(158)}\u00e9zzz`; // é is bytes 158 and 159
  await c.request('hello', { token: srv.token('p-ua', 'patient'), ua });
  const ci = await c.request('checkin', { dept: 'cardio' });
  const [row] = srv.sql(`SELECT hex(user_agent) h FROM participants WHERE visit_id='${ci.visit_id}'`);
  assert.equal(row.h, Buffer.from('a'.repeat(158)).toString('hex').toUpperCase());
  await c.request('queue.leave', { visit_id: ci.visit_id });
  await c.close();
});

test('a flood and a replaced session end with a close frame: 1008 and a reason', async () => {
  const flood = await srv.client('p-flood', 'patient');
  for (let i = 0; i < 500; i++) flood.send({ type: 'ping', id: `f${i}` });
  assert.equal(await Promise.race([flood.closed, sleep(60000).then(() => 'open')]), 1008);
  assert.equal(flood.closeReason, 'too many messages');
  const first = await srv.client('p-twice', 'patient');
  const second = await srv.client('p-twice', 'patient');
  await first.waitFor('session.replaced');
  assert.equal(await Promise.race([first.closed, sleep(60000).then(() => 'open')]), 1008);
  assert.equal(first.closeReason, 'session replaced');
  await second.close();
});
