// relay.test.mjs - net_relay itself, against a UDP and a TCP echo server on
// loopback: it passes everything through when told nothing, and each
// impairment does what it says (drop, blackout, delay, rate cap, rebind),
// so the browser tests that lean on it measure the server, not the relay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { startRelay, freeUdpRange } from './lib_net.mjs';

const RELAY_ADDR = '127.0.0.3';

async function udpEcho(port) {
  const s = dgram.createSocket('udp4');
  s.sources = new Set();
  s.on('message', (msg, rinfo) => {
    s.sources.add(`${rinfo.address}:${rinfo.port}`);
    s.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise((res) => s.bind(port, '127.0.0.1', res));
  return s;
}

// A client of the relay: sends n datagrams of size bytes, resolves with the
// arrival time (ms after the first send) of each echo that came back
// within waitMs of the last send.
async function roundTrips(port, n, { size = 100, waitMs = 1500, gapMs = 0 } = {}) {
  const c = dgram.createSocket('udp4');
  await new Promise((res) => c.bind(0, '127.0.0.1', res));
  const arrivals = [];
  const t0 = Date.now();
  c.on('message', () => arrivals.push(Date.now() - t0));
  for (let i = 0; i < n; i++) {
    c.send(Buffer.alloc(size, i & 0xff), port, RELAY_ADDR);
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  await new Promise((r) => setTimeout(r, waitMs));
  c.close();
  return arrivals;
}

test('net_relay passes, drops, blacks out, delays, caps and rebinds as told', { timeout: 120000 }, async (t) => {
  const range = await freeUdpRange(2);
  const echo = await udpEcho(range.min);
  const tcp = net.createServer((s) => s.pipe(s));
  await new Promise((res) => tcp.listen(0, '127.0.0.1', res));
  const tcpPort = tcp.address().port;
  const relay = await startRelay({ udpPorts: `${range.min}-${range.max}`, tcpPorts: [tcpPort], listen: RELAY_ADDR, seed: 7 });
  try {
    await t.test('untouched: every datagram makes the round trip', async () => {
      assert.equal((await roundTrips(range.min, 200, { gapMs: 1 })).length, 200);
    });

    await t.test('drop 50: about a quarter make the round trip', async () => {
      await relay.cmd('drop 50');
      const got = (await roundTrips(range.min, 400, { gapMs: 1 })).length;
      assert.ok(got > 50 && got < 160, `round trips ${got} of 400`);
      await relay.cmd('drop 0');
    });

    await t.test('blackout: nothing passes, then everything again', async () => {
      await relay.cmd('blackout 60000');
      assert.equal((await roundTrips(range.min, 50, { waitMs: 500 })).length, 0);
      await relay.cmd('up');
      assert.equal((await roundTrips(range.min, 50)).length, 50);
      await relay.cmd('down');
      assert.equal((await roundTrips(range.min, 20, { waitMs: 300 })).length, 0);
      await relay.cmd('up');
    });

    await t.test('delay 150 ± 50: no echo sooner than two trips of 100 ms', async () => {
      await relay.cmd('delay 150 50');
      const got = await roundTrips(range.min, 20);
      assert.equal(got.length, 20);
      assert.ok(Math.min(...got) >= 195, `fastest round trip ${Math.min(...got)} ms`);
      await relay.cmd('delay 0 0');
    });

    await t.test('rate 800 kbit/s: 100 kB take about a second each way', async () => {
      await relay.cmd('rate 800');
      const got = await roundTrips(range.min, 100, { size: 1000, waitMs: 3500 });
      assert.equal(got.length, 100);
      assert.ok(Math.max(...got) >= 900, `last echo after ${Math.max(...got)} ms`);
      await relay.cmd('rate 0');
    });

    await t.test('rebind: the server sees a new source address', async () => {
      echo.sources.clear();
      await roundTrips(range.min, 3);
      await relay.cmd('rebind');
      await roundTrips(range.min, 3);
      const ips = new Set([...echo.sources].map((s) => s.split(':')[0]));
      assert.equal(echo.sources.size, 2, [...echo.sources].join(' '));
      assert.equal(ips.size, 2, [...ips].join(' '));
    });

    await t.test('tcp passes through, and waits out a blackout', async () => {
      const sock = net.connect(tcpPort, RELAY_ADDR);
      await new Promise((res) => sock.once('connect', res));
      let got = '';
      sock.on('data', (d) => { got += d; });
      sock.write('hello');
      while (got !== 'hello') await new Promise((r) => setTimeout(r, 20));
      await relay.cmd('blackout 800');
      const sent = Date.now();
      sock.write(' again');
      while (got !== 'hello again') await new Promise((r) => setTimeout(r, 20));
      assert.ok(Date.now() - sent >= 600, 'bytes waited for the blackout to end');
      sock.destroy();
    });

    await t.test('a bad command is refused and changes nothing', async () => {
      await assert.rejects(relay.cmd('drop 300'), /out-of-range/);
      assert.equal((await roundTrips(range.min, 20)).length, 20);
    });
    const st = await relay.stats();
    assert.ok(st.up_in > 0 && st.down_in > 0, JSON.stringify(st));
  } finally {
    await relay.stop();
    echo.close();
    tcp.close();
  }
});
