// pg.mjs - a throwaway PostgreSQL for a test (tests/support/pg.sh): its own
// directory under the system temp dir, 127.0.0.1 and a free port only. It
// dies with the process that started it, however that process ends.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'support', 'pg.sh');

const run = (cmd, dir) => execFileSync('sh', [SCRIPT, cmd, dir], { encoding: 'utf8' }).trim();

// Starts PostgreSQL; pg.url is the connection URL for telemed's store.
// stop() removes it and its files; kill() and restart() are for tests of a
// database that goes away during visits.
export function startPg() {
  const dir = mkdtempSync(join(tmpdir(), 'telemed-pg-'));
  // Before the server exists: a watcher (pg.sh guard) stops it once this
  // process is gone, however it ends, even by a signal or kill -9.
  execFileSync('sh', [SCRIPT, 'guard', dir, String(process.pid)], { stdio: 'ignore' });
  const pg = {
    dir,
    url: run('start', dir),
    kill: () => run('kill', dir),
    restart: () => { pg.url = run('restart', dir); return pg.url; },
    stop: () => { run('stop', dir); rmSync(dir, { recursive: true, force: true }); },
  };
  return pg;
}
