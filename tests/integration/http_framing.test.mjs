// HTTP/1.1 framing over raw TLS sockets: pipelined requests with bodies, and
// every ambiguous way of saying how long a body is (RFC 9112 §6.3). Each
// case gets one clear answer and the server keeps serving everyone else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { startServer, setupHospital, sleep } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer();
  await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio']] });
});
after(async () => { await srv.stop(); });

// Sends raw bytes in one write; resolves with everything the server sent
// until it closed the connection or `quietMs` passed without a byte.
function raw(bytes, { quietMs = 1500 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false }, () => {
      sock.write(bytes);
    });
    let got = '';
    let closed = false;
    let timer = setTimeout(done, quietMs);
    function done() {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: got, closed });
    }
    sock.on('data', (d) => {
      got += d.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    });
    sock.on('end', () => { closed = true; done(); });
    sock.on('error', (e) => (got ? done() : reject(e)));
  });
}

const statuses = (text) => [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

// The server still answers /healthz (the request's own timeout is the cap;
// how fast it answers is the benchmarks' business, not a loaded test's).
async function assertHealthy() {
  const r = await srv.api('GET', '/healthz');
  assert.equal(r.status, 200);
}

test('two pipelined requests with bodies get one answer, a close, and the server stays up', async () => {
  const two = 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na' +
    'POST /healthz HTTP/1.1\r\nContent-Length: 1\r\n\r\nb';
  const r = await raw(two);
  assert.deepEqual(statuses(r.text), [405]);
  assert.match(r.text, /connection: close/i);
  assert.match(r.text, /takes no request body/);
  assert.ok(r.closed, 'connection closed after a request with a body');
  await assertHealthy();
});

test('pipelined API writes: the first is done, nothing behind a body is read', async () => {
  const tok = srv.token('admin', 'admin');
  const body = JSON.stringify({ id: 'neuro', name: 'Neurology' });
  const req = (b) => `POST /api/v1/departments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
  const r = await raw(req(body) + req(JSON.stringify({ id: 'derm', name: 'Dermatology' })));
  assert.equal(statuses(r.text).length, 1, 'exactly one answer');
  assert.ok(statuses(r.text)[0] < 300, r.text);
  assert.ok(r.closed);
  const depts = srv.sql("SELECT id FROM departments WHERE id IN ('neuro','derm') ORDER BY id").map((x) => x.id);
  assert.deepEqual(depts, ['neuro']);
  await assertHealthy();
});

test('GET pipelined behind a GET still works (keep-alive without bodies)', async () => {
  const r = await raw('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual(statuses(r.text), [200, 200]);
});

const framingCases = [
  ['Content-Length with Transfer-Encoding',
    'POST /api/v1/departments HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n',
    400, /Transfer-Encoding together/],
  ['two different Content-Length headers',
    'POST /api/v1/departments HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 24\r\n\r\n{}',
    400, /one decimal number/],
  ['a signed Content-Length',
    'POST /api/v1/departments HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}',
    400, /one decimal number/],
  ['a chunked body alone',
    'POST /api/v1/departments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
    411, /send Content-Length/],
];

for (const [name, bytes, status, why] of framingCases) {
  test(`ambiguous framing is refused and closed: ${name}`, async () => {
    const before = srv.sql('SELECT count(*) n FROM departments')[0].n;
    const r = await raw(bytes);
    assert.deepEqual(statuses(r.text), [status], r.text);
    assert.match(r.text, why);
    assert.match(r.text, /connection: close/i);
    assert.ok(r.closed, 'closed after refusing the framing');
    assert.equal(srv.sql('SELECT count(*) n FROM departments')[0].n, before);
    await assertHealthy();
  });
}

test('a body that trickles past its deadline is cut off, and others are served meanwhile', async () => {
  const sock = tls.connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false });
  await new Promise((r) => sock.once('secureConnect', r));
  let closed = false;
  sock.on('close', () => { closed = true; });
  sock.on('error', () => {});
  sock.write('POST /api/v1/departments HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{');
  // One byte every 5 s: each is inside lws's own idle timeout, so only the
  // body's deadline (20 s) can end it. Wait for the close, capped at 90 s.
  for (let i = 0; i < 18 && !closed; i++) {
    await sleep(5000);
    if (!closed) sock.write(' ');
    await assertHealthy();
  }
  assert.ok(closed, 'trickling body was never cut off');
});
