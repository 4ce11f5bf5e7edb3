// The store fails under a live server: another process (an operator's
// sqlite3 shell) holds the database's write lock past the busy timeout.
// The patient's check-in is refused with `internal` and a message, nothing
// of it is written, and afterwards the same server answers /healthz and
// takes the next check-in with its outbox row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer, setupHospital } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer();
  await setupHospital(srv);
});
after(async () => { await srv.stop(); });

// A sqlite3 shell on the server's database that has taken the write lock.
async function holdWriteLock(db) {
  const shell = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const locked = new Promise((resolve, reject) => {
    shell.stdout.on('data', (d) => { out += d; if (out.includes('locked-by-shell')) resolve(); });
    shell.on('exit', (code) => reject(new Error(`sqlite3 exited ${code}: ${out}`)));
  });
  shell.stdin.write("PRAGMA busy_timeout=10000;\nBEGIN IMMEDIATE;\nSELECT 'locked-by-shell';\n");
  await locked;
  return {
    release: () => new Promise((resolve) => {
      shell.removeAllListeners('exit');
      shell.on('exit', resolve);
      shell.stdin.end('ROLLBACK;\n.quit\n');
    }),
  };
}

test('a locked database refuses check-in cleanly and the server serves on', async () => {
  const lock = await holdWriteLock(srv.db);
  const lost = await srv.client('p-lost', 'patient');
  let refused;
  try {
    await lost.request('checkin', { dept: 'cardio', kind: 'follow_up' }, 30000);
  } catch (e) {
    refused = e;
  }
  await lock.release();
  assert.ok(refused, 'check-in must be refused while the database is locked');
  assert.equal(refused.code, 'internal');
  assert.match(refused.message, /check-in failed/);

  const health = await srv.api('GET', '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.json.status, 'ok');
  assert.equal(srv.sql("SELECT count(*) n FROM visits WHERE patient_id = 'p-lost'")[0].n, 0);
  assert.equal(srv.sql("SELECT count(*) n FROM participants WHERE user_id = 'p-lost'")[0].n, 0);

  // The refused patient tries again, and a second one checks in too.
  const again = await lost.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  const other = await srv.client('p-ok', 'patient');
  const ok = await other.request('checkin', { dept: 'cardio', kind: 'follow_up' });
  for (const id of [again.visit_id, ok.visit_id]) {
    assert.deepEqual(srv.sql(`SELECT type FROM outbox WHERE visit_id = '${id}'`).map((r) => r.type),
      ['visit.checked_in']);
  }
  assert.equal(ok.position, 2);
  await lost.close();
  await other.close();
});
