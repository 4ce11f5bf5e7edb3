// turn.test.mjs - visits whose patient can only use a TURN relay, as behind
// a hospital firewall: Debian's coturn on loopback with use-auth-secret, the
// server minting TURN REST credentials in hello, and a patient Chromium
// configured with iceTransportPolicy "relay" (and, for the firewall that
// lets only TLS out, only the turns: URL). Audio and video must flow both
// ways and the patient's selected pair must be relayed over the protocol
// asked for; behind net_relay such a patient comes back after an outage.
// Then an IPv6-only server: the media path for pairs the
// worker's direct socket does not take.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { startCoturn, startRelay, makeNetns } from './lib_net.mjs';
import { startVisit, closeVisit, selectedPair, outage } from './lib_visit.mjs';

const TURN_BIN = process.env.TURNSERVER_BIN || '/usr/bin/turnserver';

// Runs in the patient's page before the client: relay only, through the
// TURN URLs that match.
const relayOnly = (pattern) => `(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config = {}) {
    const iceServers = (config.iceServers || []).map((s) => ({ ...s,
      urls: [].concat(s.urls).filter((u) => new RegExp(${JSON.stringify(pattern)}).test(u)) }))
      .filter((s) => s.urls.length);
    return new Native({ ...config, iceServers, iceTransportPolicy: 'relay' });
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();`;

for (const [name, pattern, protocol] of [['UDP', '^turn:', 'udp'], ['TLS', '^turns:', 'tls']]) {
  test(`a relay-only patient has a full visit through coturn over ${name}`, { timeout: 240000 }, async (t) => {
    if (!existsSync(TURN_BIN)) {
      t.skip(`no ${TURN_BIN} (apt-get install coturn)`);
      return;
    }
    const secret = randomBytes(16).toString('hex');
    const turn = await startCoturn({ secret });
    let ctx = null;
    try {
      ctx = await startVisit({
        tag: `turn-${protocol}`,
        args: ['--turn-urls', `${turn.udpUrl},${turn.tlsUrl}`, '--turn-secret', secret],
        patientInit: relayOnly(pattern),
      });
      const pair = await selectedPair(ctx.patient);
      assert.equal(pair.local, 'relay', JSON.stringify(pair));
      assert.equal(pair.relayProtocol, protocol, JSON.stringify(pair));
      assert.deepEqual(ctx.patient.errors, []);
    } catch (e) {
      console.log(turn.logs().split('\n').slice(-40).join('\n'));
      throw e;
    } finally {
      if (ctx) await closeVisit(ctx);
      await turn.stop();
    }
  });
}

test('a relay-only patient behind a bad network comes back through coturn after a 10 s outage', { timeout: 240000 }, async (t) => {
  if (!existsSync(TURN_BIN)) {
    t.skip(`no ${TURN_BIN} (apt-get install coturn)`);
    return;
  }
  const ns = makeNetns('turn');
  if (!ns) {
    t.skip('cannot make a network namespace here (needs root)');
    return;
  }
  const secret = randomBytes(16).toString('hex');
  const turn = await startCoturn({ secret });
  let ctx = null;
  try {
    // The patient reaches the server's page and coturn only through the relay.
    ctx = await startVisit({
      tag: 'turn-outage', ns,
      args: ['--turn-urls', turn.udpUrl, '--turn-secret', secret],
      relayFor: (srv) => startRelay({ udpPorts: String(turn.port), tcpPorts: [srv.port], netns: ns.name }),
      patientInit: relayOnly('^turn:'),
    });
    assert.equal((await selectedPair(ctx.patient)).local, 'relay');
    const ms = await outage(ctx, 10, { capMs: 20000 });
    console.log(`recovery through coturn after a 10 s outage: ${ms} ms`);
    assert.equal((await selectedPair(ctx.patient)).local, 'relay');
  } finally {
    if (ctx) await closeVisit(ctx);
    else ns.remove();
    await turn.stop();
  }
});

test('an IPv6-only server carries a full visit (pairs off the direct socket path)', { timeout: 240000 }, async () => {
  const ctx = await startVisit({ tag: 'ipv6', args: ['--media-addresses', '::1'] });
  try {
    const pair = await selectedPair(ctx.patient);
    assert.equal(pair.remoteAddress, '::1', JSON.stringify(pair));
    assert.equal((await selectedPair(ctx.doctor)).remoteAddress, '::1');
  } finally {
    await closeVisit(ctx);
  }
});
