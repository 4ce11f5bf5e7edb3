// lib_net.mjs - the tests' bad network: net_relay (drop, delay, jitter,
// reorder, rate cap, blackouts, rebinding) and a network namespace of the
// test's own in which a browser sees only the relay. Everything stays on
// loopback: the namespace has nothing but its own lo, where the relay
// listens on the server's ports and hands the bytes to 127.0.0.1 outside.
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import net from 'node:net';

export const RELAY_BIN = join(process.env.TELEMED_BUILD_DIR || 'build', 'net_relay');

// A UDP port range whose ports are all free on 127.0.0.1 now.
export async function freeUdpRange(count) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    const socks = [];
    let ok = true;
    for (let p = base; p < base + count && ok; p++) {
      const s = dgram.createSocket('udp4');
      ok = await new Promise((res) => {
        s.once('error', () => res(false));
        s.bind(p, '127.0.0.1', () => res(true));
      });
      socks.push(s);
    }
    for (const s of socks) { try { s.close(); } catch { /* never bound */ } }
    if (ok) return { min: base, max: base + count - 1 };
  }
  throw new Error('no free UDP port range');
}

// Starts net_relay; resolves once it listens. relay.cmd('drop 5') sends a
// command and resolves with its answer line; relay.stop() ends it.
export async function startRelay({ udpPorts, tcpPorts = [], netns = null, listen = '127.0.0.1', target = '127.0.0.1', seed = 1 }) {
  const args = ['--udp-ports', udpPorts, '--listen', listen, '--target', target, '--seed', String(seed), '--max-seconds', '900'];
  if (tcpPorts.length) args.push('--tcp-ports', tcpPorts.join(','));
  if (netns) args.push('--netns', netns);
  const proc = spawn(RELAY_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '', err = '';
  const waiters = [];
  proc.stderr.on('data', (d) => { err += d; });
  proc.stdout.on('data', (d) => {
    out += d;
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
    }
  });
  const exited = new Promise((res) => proc.on('exit', (code) => res(code)));
  const first = await Promise.race([
    new Promise((res) => waiters.push(res)),
    exited.then((code) => { throw new Error(`net_relay exited ${code}: ${err}`); }),
  ]);
  if (!first.startsWith('ready')) throw new Error(`net_relay: ${first} ${err}`);
  return {
    proc,
    cmd: (line) => new Promise((res, rej) => {
      waiters.push((answer) => (answer.startsWith('ok') ? res(answer) : rej(new Error(answer))));
      proc.stdin.write(`${line}\n`);
    }),
    stats: async function () {
      const line = await this.cmd('stats');
      return Object.fromEntries(line.split(' ').slice(2).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
    },
    stop: async () => {
      proc.stdin.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

// A network namespace of the test's own with only its loopback up.
// Needs root (CAP_SYS_ADMIN); returns null when it cannot be made.
export function makeNetns(tag = 'net') {
  const name = `tm-${tag}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  try {
    execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
  } catch {
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tm-netns-'));
  // playwright launches the browser through this: same argv and fds
  // (its control pipe), inside the namespace.
  const wrapper = join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${name} ${process.env.CHROMIUM_BIN || '/usr/bin/chromium'} "$@"\n`, { mode: 0o755 });
  return {
    name,
    chromium: wrapper,
    remove: () => {
      try { execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' }); } catch { /* already gone */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// Debian's coturn on loopback with TURN REST credentials (use-auth-secret)
// and a certificate made here for TURN over TLS. Resolves with its URLs.
export async function startCoturn({ secret, bin = process.env.TURNSERVER_BIN || '/usr/bin/turnserver' }) {
  const dir = mkdtempSync(join(tmpdir(), 'tm-coturn-'));
  const crt = join(dir, 'turn.crt'), key = join(dir, 'turn.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
  const port = await freeTcpPort();
  const tlsPort = await freeTcpPort();
  const relay = await freeUdpRange(40);
  const args = ['-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    `--tls-listening-port=${tlsPort}`, `--min-port=${relay.min}`, `--max-port=${relay.max}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=telemed.test', `--cert=${crt}`, `--pkey=${key}`,
    '--no-cli', '--no-dtls', '--allow-loopback-peers', `--userdb=${join(dir, 'turndb')}`,
    `--pidfile=${join(dir, 'turnserver.pid')}`, '--log-file=stdout', '--simple-log', '--no-software-attribute'];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  const exited = new Promise((res) => proc.on('exit', (code) => res(code)));
  const deadline = Date.now() + 30000;
  while (!(await tcpOpen(port) && await tcpOpen(tlsPort))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`coturn did not start:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    port,
    tlsPort,
    udpUrl: `turn:127.0.0.1:${port}?transport=udp`,
    tlsUrl: `turns:127.0.0.1:${tlsPort}?transport=tcp`,
    logs: () => logs,
    stop: async () => {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
