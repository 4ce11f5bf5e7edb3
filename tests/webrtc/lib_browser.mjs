// lib_browser.mjs - headless Debian chromium for the media tests, driven by
// playwright-core. Pages are served from a throwaway http://127.0.0.1 server
// (loopback http counts as a secure context, so getUserMedia works) and load
// browser_peer.mjs, which speaks telemed.v1 to the server under test.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox',
  '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--ignore-certificate-errors',
  // Host candidates as IPs (not mDNS names) and on loopback, the only
  // network the tests may use.
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
  // Keep timers and decoders running in background pages.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

const PAGE = `<!doctype html><meta charset="utf-8"><title>telemed media test</title>
<script type="module">
import { TmPeer } from '/browser_peer.mjs';
window.TmPeer = TmPeer;
window.peer = new TmPeer();
window.peerReady = true;
</script>`;

// Starts the page server; returns {url, close()}.
export async function startPageServer() {
  const peerJs = fs.readFileSync(path.join(HERE, 'browser_peer.mjs'));
  const srv = http.createServer((req, res) => {
    if (req.url === '/browser_peer.mjs') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(peerJs);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    }
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}/`,
    close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
}

// A fresh page (its own context, so two peers never share state) with
// window.peer ready.
export async function newPeerPage(browser, pageUrl) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  page.on('pageerror', (e) => console.log(`[page error] ${e}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.peerReady === true);
  return page;
}

// Inbound video of a page: [{framesDecoded, frameWidth, ...}] per stream.
export async function pageStats(page) {
  return page.evaluate(() => window.peer.stats());
}

export async function pageLog(page) {
  return page.evaluate(() => window.peer.log.join('\n')).catch((e) => `(no log: ${e})`);
}

export function videoIn(stats) {
  return stats.inbound.filter((s) => s.kind === 'video');
}

export function audioIn(stats) {
  return stats.inbound.filter((s) => s.kind === 'audio');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls until every inbound video stream (at least `streams`) has decoded
// frames; returns the stats. Throws with the page log on timeout.
export async function waitVideoFlowing(page, { streams = 1, timeoutMs = 60000, minFrames = 10 } = {}) {
  const end = Date.now() + timeoutMs;
  let st;
  while (Date.now() < end) {
    st = await pageStats(page);
    const v = videoIn(st);
    if (v.length >= streams && v.filter((s) => s.framesDecoded >= minFrames).length >= streams) return st;
    await sleep(250);
  }
  throw new Error(`video not flowing: ${JSON.stringify(st)}\n${await pageLog(page)}`);
}
