// Connection exhaustion, HTTP side (issue 12, item 3): one address cannot hold
// more than --max-unauth-per-addr connections that never authenticate (real
// users from elsewhere, and authenticated ones from the same address, still
// get in), and under a low open-file limit the server sizes its connection
// budget to it instead of spinning on accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startServer, sleep } from './lib/server.mjs';

// A TCP connection that never says anything; resolves once connected.
function silent(port, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.closedByPeer = new Promise((res) => s.on('close', () => res(true)));
    s.on('error', (e) => (s.connecting ? reject(e) : null));
  });
}

// A WebSocket session from localAddress that said hello with a good token.
function session(srv, sub, role, localAddress) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(srv.url(), 'telemed.v1', { rejectUnauthorized: false, localAddress });
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', id: '1', token: srv.token(sub, role) })));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.re === '1') (m.type === 'error' ? reject(new Error(m.message)) : resolve(ws));
    });
  });
}

const within = (p, ms, what) => Promise.race([p, sleep(ms).then(() => { throw new Error(`timeout: ${what}`); })]);

test('one address holds at most max_unauth_per_addr silent connections; others still get in', async () => {
  const srv = await startServer({ args: ['--max-unauth-per-addr', '5'] });
  const open = [];
  try {
    // Authenticated sessions from the same address do not count.
    for (let i = 0; i < 3; i++) open.push(await session(srv, `d-auth-${i}`, 'doctor', '127.0.0.1'));
    for (let i = 0; i < 5; i++) open.push(await silent(srv.port));
    const extra = await silent(srv.port);
    assert.equal(await within(extra.closedByPeer, 20000, 'the 6th silent connection is closed'), true);
    // A REST call from the full address is refused at accept as well...
    await assert.rejects(srv.api('GET', '/healthz'), /socket hang up|ECONNRESET|disconnected/);
    // ...while a doctor from another address is not held up.
    open.push(await within(session(srv, 'd-elsewhere', 'doctor', '127.0.0.2'), 20000, 'doctor from 127.0.0.2'));
    assert.match(srv.logs, /ev=http\.conn_refused reason=unauthenticated_per_addr max=5/);
  } finally {
    for (const c of open) (c.terminate ? c.terminate() : c.destroy());
    await srv.stop();
  }
});

test('when the silent connections go, the address gets in again', async () => {
  const srv = await startServer({ args: ['--max-unauth-per-addr', '4'] });
  try {
    const quiet = [];
    for (let i = 0; i < 4; i++) quiet.push(await silent(srv.port));
    const extra = await silent(srv.port);
    assert.equal(await within(extra.closedByPeer, 20000, 'the 5th is closed'), true);
    for (const s of quiet) s.destroy();
    await sleep(200); // let the server see the FINs; the check below retries anyway
    let h;
    for (let i = 0; i < 50 && !(h && h.status === 200); i++) {
      h = await srv.api('GET', '/healthz').catch(() => null);
      if (!h) await sleep(200);
    }
    assert.equal(h && h.status, 200);
    const m = await srv.api('GET', '/metrics');
    const refused = /telemed_connections_refused_total\{node="[^"]*",why="unauthenticated_per_addr"\} (\d+)/.exec(m.text);
    assert.ok(refused && Number(refused[1]) >= 1, m.text);
  } finally {
    await srv.stop();
  }
});

// CPU ticks (user + system) of a process, from /proc.
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

test('under a low open-file limit the budget fits it and 450 connections do not spin the loop', async () => {
  const srv = await startServer({ nofile: 256, args: ['--max-unauth-per-addr', '100000'] });
  const socks = [];
  try {
    assert.match(srv.logs, /ev=server\.fd_budget nofile=256 reserve=\d+ lws_fds=\d+ max_connections=\d+ configured=20000 reason=open_file_limit/);
    const t0 = cpuTicks(srv.proc.pid);
    for (let i = 0; i < 450; i++) socks.push(await silent(srv.port).catch(() => null));
    await sleep(3000);
    // Over the budget, accept() would fail with EMFILE while the listener
    // stays readable: lws logs it each time round a loop that burns a core.
    const used = cpuTicks(srv.proc.pid) - t0;
    assert.ok(!/accept: errno 24/.test(srv.logs), 'accept ran out of file descriptors');
    assert.ok(used < 100, `server used ${used} ticks while 450 connections came and stayed`);
  } finally {
    for (const s of socks) if (s) s.destroy();
  }
  try {
    let h;
    for (let i = 0; i < 100 && !(h && h.status === 200); i++) {
      h = await srv.api('GET', '/healthz').catch(() => null);
      if (!h || h.status !== 200) await sleep(200);
    }
    assert.equal(h && h.status, 200, 'the server answers once the connections are gone');
  } finally {
    await srv.stop();
  }
});
