// Sessions hold only what they are entitled to (issue 12): a connection that
// never says hello is closed at a deadline and one address cannot hold many
// such; a session ends when its token does unless renewed; the overview over
// WSS is audited (an admin as admin); doctor.queue is for the doctor's own
// departments; a long user agent is cut on a character boundary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, setupHospital, mintToken, Client, sleep } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer({ args: ['--jwt-leeway-s', '0', '--no-recording'] });
  await setupHospital(srv, { depts: ['cardio', 'endo'], doctors: [['d1', 'cardio'], ['d2', 'endo']] });
});
after(async () => { await srv.stop(); });

// A WebSocket from another loopback address that never speaks: resolves with
// how it ended ({code, reason}, or {error} when it was never let in).
function silentSocket(url, localAddress, ended) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'telemed.v1', { rejectUnauthorized: false, localAddress });
    ws.on('error', (e) => {
      ended.push('refused');
      resolve({ error: e.message });
    });
    ws.on('close', (code, reason) => {
      ended.push(code);
      resolve({ code, reason: reason.toString() });
    });
  });
}

async function waitFor(what, fn, capMs = 30000) {
  const end = Date.now() + capMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const metric = async (server, name) => {
  const r = await server.api('GET', '/metrics');
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(r.text)[1]);
};

test('300 silent connections hold no slot past the hello deadline, and a doctor still connects', async () => {
  const own = await startServer({ args: ['--max-connections', '300', '--hello-timeout-s', '5',
    '--max-unauth-per-addr', '50', '--no-recording'] });
  try {
    await setupHospital(own, { depts: ['cardio'], doctors: [['d1', 'cardio']] });
    const ended = [];
    const ends = Array.from({ length: 300 }, () => silentSocket(own.url(), '127.0.0.2', ended));
    // Once their address is at its limit the rest are turned away at accept,
    // and a doctor from another address gets in meanwhile.
    await waitFor('the address limit to turn one away', () => ended.includes('refused'), 180000);
    const doc = await waitFor('the doctor to get in',
      () => own.client('d1', 'doctor').catch(() => null), 180000);
    assert.equal(doc.hello.role, 'doctor');
    const results = await Promise.all(ends);
    const byCode = {};
    for (const r of results) {
      const key = r.error ? 'refused' : r.code;
      byCode[key] = (byCode[key] || 0) + 1;
      if (!r.error) assert.deepEqual([r.code, r.reason], [1008, 'no hello in time']);
    }
    // The 50 the address may hold waited for the deadline (more if handshakes
    // spread past it and freed places were taken again); the rest were refused.
    assert.ok(byCode[1008] >= 50 && byCode.refused >= 1, JSON.stringify(byCode));
    // Nothing is held for them now: only the doctor is connected, and their
    // address is let in again.
    await waitFor('slots to free', async () => (await metric(own, 'telemed_ws_connections')) === 1);
    const c = new Client(own.url());
    await c.open();
    c.send({ type: 'ping', id: '1' });
    assert.equal((await c.waitError()).code, 'unauthorized');
    await c.close();
    await doc.close();
  } finally {
    await own.stop();
  }
});

test('a session ends with its token; auth.renew keeps it going', async () => {
  const now = Math.floor(Date.now() / 1000);
  const short = (sub, role) => mintToken(srv.secret, { sub, role, name: sub, exp: now + 3 });
  const lapsing = new Client(srv.url());
  await lapsing.open();
  const hello = await lapsing.request('hello', { token: short('sup-a', 'supervisor') });
  assert.equal(hello.expires_at, new Date((now + 3) * 1000).toISOString());
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

  const code = await Promise.race([lapsing.closed, sleep(20000).then(() => 'open')]);
  assert.equal(code, 4401);
  assert.equal(lapsing.closeReason, 'token expired');
  assert.ok(Date.now() >= (now + 3) * 1000, 'closed before the token expired');
  // The renewed session outlives its first token and still gets the overview.
  await sleep(Math.max(0, (now + 4) * 1000 - Date.now()));
  renewing.pushes.length = 0;
  const p = await srv.client('p-ov', 'patient');
  await p.request('checkin', { dept: 'cardio' });
  await renewing.waitFor('overview', (m) => m.visits.some((v) => v.patient_id === 'p-ov'));
  await p.request('queue.leave', { visit_id: (await p.waitFor('visit.state').catch(() => null))?.visit_id
    ?? srv.sql(`SELECT id FROM visits WHERE patient_id='p-ov'`)[0].id });
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
  const rows = await waitFor('audit rows', async () => {
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
  for (let i = 0; i < 200; i++) flood.send({ type: 'ping', id: `f${i}` });
  assert.equal(await flood.closed, 1008);
  assert.equal(flood.closeReason, 'too many messages');
  const first = await srv.client('p-twice', 'patient');
  const second = await srv.client('p-twice', 'patient');
  await first.waitFor('session.replaced');
  assert.equal(await first.closed, 1008);
  assert.equal(first.closeReason, 'session replaced');
  await second.close();
});

test('after kill -9 a doctor who resumes an active visit starts off_duty', async () => {
  const own = await startServer({ args: ['--no-recording', '--grace-s', '60'] });
  try {
    await setupHospital(own, { depts: ['cardio'], doctors: [['d1', 'cardio']], capacity: 2 });
    const doc = await own.client('d1', 'doctor');
    await doc.request('doctor.status', { status: 'available' });
    const pat = await own.client('p-k9', 'patient');
    const ci = await pat.request('checkin', { dept: 'cardio' });
    await doc.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id, 20000);
    await doc.request('visit.accept', { visit_id: ci.visit_id });
    await own.restart({ hard: true });
    const back = await own.client('d1', 'doctor');
    assert.equal(back.hello.resumed, true);
    assert.deepEqual(back.hello.state.visits, [ci.visit_id]);
    assert.equal(back.hello.state.status, 'off_duty');
    // Nobody is offered to a doctor who has not said they are available.
    const other = await own.client('p-k9b', 'patient');
    await other.request('checkin', { dept: 'cardio' });
    await sleep(1500);
    assert.ok(!back.pushes.some((m) => m.type === 'visit.offer'));
    await Promise.all([back.close(), other.close()]);
  } finally {
    await own.stop();
  }
});
