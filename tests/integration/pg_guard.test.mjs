// A PostgreSQL started by a test (lib/pg.mjs, pg_fixture.h: pg.sh guard)
// dies with the process that started it, however that process ends: killed
// by SIGKILL (a ctest timeout), by SIGTERM, or by an uncaught error. Each
// case starts one in a child process, ends the child, and waits for the
// server to be gone and its directory removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const PG_MJS = new URL('./lib/pg.mjs', import.meta.url).href;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Alive and not a zombie: a dead postmaster nobody reaped is gone too.
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

// A child process that starts PostgreSQL, prints its directory, then waits
// (or throws, when told to).
function startInChild(end) {
  const code = `
    const { startPg } = await import(${JSON.stringify(PG_MJS)});
    const pg = startPg();
    process.stdout.write(JSON.stringify({ dir: pg.dir }) + '\\n');
    setTimeout(() => { if (${JSON.stringify(end)} === 'throw') throw new Error('a test failing'); }, 200);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const started = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)));
    });
    child.on('exit', (c, sig) => reject(new Error(`the child ended (${c ?? sig}) before PostgreSQL started: ${err}`)));
  });
  return { child, started };
}

for (const end of ['SIGKILL', 'SIGTERM', 'throw']) {
  test(`PostgreSQL stops when the test process that started it ends by ${end}`, async () => {
    const { child, started } = startInChild(end);
    const { dir } = await started;
    const pid = Number(readFileSync(`${dir}/data/postmaster.pid`, 'utf8').split('\n')[0]);
    assert.ok(alive(pid), 'PostgreSQL runs while its test does');
    const exited = new Promise((r) => child.on('exit', r));
    if (end !== 'throw') child.kill(end);
    await exited;
    const cap = Date.now() + 60000;
    while ((alive(pid) || existsSync(dir)) && Date.now() < cap) await sleep(200);
    assert.ok(!alive(pid), `postgres ${pid} outlived the test process`);
    assert.ok(!existsSync(dir), `${dir} was left behind`);
  });
}

// The watcher pg.sh guard left for the test process pid: its directory.
function guardedDir(pid) {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let argv;
    try { argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    const w = argv.indexOf('watch');
    if (w > 0 && argv[w - 1].endsWith('pg.sh') && argv[w + 2] === String(pid)) return argv[w + 1];
  }
  return null;
}

// The C tests' fixture (tests/server/pg_fixture.h) the same way: a C test
// on PostgreSQL killed by SIGKILL once its server runs.
test('PostgreSQL stops when a C test using pg_fixture.h is killed', async (t) => {
  const bin = join(process.env.TELEMED_BUILD_DIR || '', 'test_cluster_sync');
  if (!process.env.TELEMED_BUILD_DIR || !existsSync(bin)) {
    t.skip('no TELEMED_BUILD_DIR/test_cluster_sync (run it through ctest)');
    return;
  }
  const child = spawn(bin, [], { stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  let dir = null;
  let pid = 0;
  const cap = Date.now() + 120000;
  // initdb's bootstrap writes a negative pid: the server is up at a positive one.
  while (!(pid > 0 && alive(pid)) && Date.now() < cap) {
    await sleep(200);
    dir = dir || guardedDir(child.pid);
    try { pid = Number(readFileSync(`${dir}/data/postmaster.pid`, 'utf8').split('\n')[0]); } catch { pid = 0; }
  }
  assert.ok(pid > 0 && alive(pid), 'the C test started PostgreSQL under a watcher');
  child.kill('SIGKILL');
  await exited;
  const gone = Date.now() + 60000;
  while ((alive(pid) || existsSync(dir)) && Date.now() < gone) await sleep(200);
  assert.ok(!alive(pid), `postgres ${pid} outlived the C test`);
  assert.ok(!existsSync(dir), `${dir} was left behind`);
});
