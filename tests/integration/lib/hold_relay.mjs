// hold_relay.mjs - a loopback TCP relay in front of PostgreSQL that can hold
// one statement: armed with a marker, it stops at the first chunk from a
// client containing the marker (a Bind carries its parameters as text) and
// holds that connection's traffic toward PostgreSQL until the test releases
// it. Every other connection flows. So a test decides the order: a step is
// in flight for exactly as long as it wants, with no clock involved.
import net from 'node:net';

export async function startHoldRelay(pgPort) {
  const relay = { port: 0, armed: null, held: null, onHold: null };
  const server = net.createServer((client) => {
    const pg = net.connect(pgPort, '127.0.0.1');
    const queued = []; // chunks held back on this connection, in order
    let holding = false;
    pg.on('data', (d) => client.write(d));
    client.on('data', (d) => {
      if (!holding && relay.armed && d.includes(relay.armed)) {
        relay.armed = null;
        holding = true;
        relay.held = () => { holding = false; for (const q of queued.splice(0)) pg.write(q); };
        if (relay.onHold) relay.onHold();
      }
      if (holding) queued.push(d);
      else pg.write(d);
    });
    const end = () => { client.destroy(); pg.destroy(); };
    client.on('error', end); pg.on('error', end);
    client.on('close', end); pg.on('close', end);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  relay.port = server.address().port;
  // Resolves when a chunk with marker (a string) is being held.
  relay.hold = (marker) => new Promise((res) => {
    relay.armed = Buffer.from(marker);
    relay.onHold = () => { relay.onHold = null; res(); };
  });
  relay.release = () => { const r = relay.held; relay.held = null; if (r) r(); };
  relay.stop = () => { relay.release(); server.close(); };
  return relay;
}
