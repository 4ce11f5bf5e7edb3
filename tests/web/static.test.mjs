// static.test.mjs - the web client's files as a browser gets them from a
// real server: gzip when asked (and the same bytes once unzipped), a
// content ETag with "no-cache" so a revisit costs a 304 without a body, a
// new release picked up at once (new bytes, new ETag), HEAD, and nothing
// outside the web root; then chromium loading a page twice revalidates
// instead of refetching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import zlib from 'node:zlib';
import { startServer } from '../integration/lib/server.mjs';
import { WEB_ROOT, launch } from './lib.mjs';

function get(port, file, headers = {}, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: file, method, headers, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('static files: gzip, content ETag, 304 on revalidation, a new release picked up, HEAD, no way out of the root', { timeout: 60000 }, async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'telemed-web-'));
  fs.cpSync(WEB_ROOT, root, { recursive: true });
  const srv = await startServer({ args: ['--web-root', root] });
  try {
    const onDisk = fs.readFileSync(path.join(root, 'js', 'i18n.js'));
    const gz = await get(srv.port, '/js/i18n.js', { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.match(gz.headers['content-type'], /^text\/javascript/);
    assert.equal(gz.headers['cache-control'], 'no-cache');
    assert.match(gz.headers.vary, /accept-encoding/i);
    assert.ok(gz.body.length < onDisk.length / 2, `gzip body ${gz.body.length} of ${onDisk.length}`);
    assert.deepEqual(zlib.gunzipSync(gz.body), onDisk);
    const etag = gz.headers.etag;
    assert.match(etag, /^"[0-9a-f]{16}-gz"$/);

    // A client that does not take gzip gets the bytes as they are, with
    // their own validator.
    const plain = await get(srv.port, '/js/i18n.js', { 'accept-encoding': 'gzip;q=0, identity' });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.deepEqual(plain.body, onDisk);
    assert.notEqual(plain.headers.etag, etag);

    // Revalidation: unchanged bytes, a 304 without a body.
    const again = await get(srv.port, '/js/i18n.js', { 'accept-encoding': 'gzip', 'if-none-match': etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers.etag, etag);

    // A new release: the same revalidation now gets the new file.
    fs.appendFileSync(path.join(root, 'js', 'i18n.js'), '\n// release 2\n');
    const fresh = await get(srv.port, '/js/i18n.js', { 'accept-encoding': 'gzip', 'if-none-match': etag });
    assert.equal(fresh.status, 200);
    assert.notEqual(fresh.headers.etag, etag);
    assert.match(zlib.gunzipSync(fresh.body).toString(), /release 2\n$/);

    // The start page, HEAD, and what is not there.
    const index = await get(srv.port, '/', { 'accept-encoding': 'gzip' });
    assert.equal(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    assert.match(zlib.gunzipSync(index.body).toString(), /<!doctype html>/i);
    const head = await get(srv.port, '/css/app.css', {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), fs.statSync(path.join(root, 'css', 'app.css')).size);
    assert.equal(head.body.length, 0);
    assert.equal((await get(srv.port, '/nope.js')).status, 404);
    assert.equal((await get(srv.port, '/js')).status, 404);
    for (const p of ['/../package.json', '/js/../../package.json', '/%2e%2e/package.json', '/js/..%2f..%2fpackage.json']) {
      const r = await get(srv.port, p);
      assert.ok(r.status === 404 || r.status === 400 || r.status === 403, `${p}: ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /"dependencies"/);
    }
    assert.equal((await get(srv.port, '/index.html', {}, 'POST')).status, 405);
    // The API keeps its own rules.
    const api = await get(srv.port, '/healthz');
    assert.equal(api.status, 200);
  } finally {
    await srv.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a browser loading a page twice revalidates its files: 304s, no second download', { timeout: 60000 }, async () => {
  const srv = await startServer({ args: ['--web-root', WEB_ROOT] });
  const browser = await launch();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    // What the browser did for each file, as it finished (304: revalidated).
    let phase = 'first';
    const seen = { first: [], second: [] };
    page.on('requestfinished', async (req) => {
      const at = phase;
      const u = new URL(req.url());
      if (u.pathname.startsWith('/api') || req.resourceType() === 'document') return;
      const res = await req.response();
      seen[at].push({ path: u.pathname, status: res.status(), enc: (await res.allHeaders())['content-encoding'] || '' });
    });
    await page.goto(`${srv.base()}/index.html`);
    await page.waitForLoadState('networkidle');
    assert.ok(seen.first.length >= 3, JSON.stringify(seen.first));
    for (const r of seen.first) {
      assert.equal(r.status, 200, r.path);
      assert.equal(r.enc, 'gzip', `${r.path} not compressed`);
    }
    phase = 'second';
    await page.reload();
    await page.waitForLoadState('networkidle');
    assert.deepEqual(seen.second.map((r) => r.path).sort(), seen.first.map((r) => r.path).sort());
    assert.deepEqual(seen.second.filter((r) => r.status !== 304), [], 'files fetched again although unchanged');
  } finally {
    await browser.close();
    await srv.stop();
  }
});
