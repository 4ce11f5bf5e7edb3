// lib.mjs - shared pieces of the web client's end-to-end tests: a real
// telemed-server serving this checkout's web-client/, Debian's chromium
// through playwright-core with a fake camera and microphone, pages opened
// with their token link, and the screenshot directory.
import path from 'node:path';
import fs from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer, setupHospital } from '../integration/lib/server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SRC_DIR = process.env.TELEMED_SRC_DIR || path.resolve(HERE, '..', '..');
export const WEB_ROOT = path.join(SRC_DIR, 'web-client');
export const SHOT_DIR = path.join(process.env.TELEMED_BUILD_DIR || '/tmp/telemed-web-test', 'web-screenshots');

export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--no-sandbox',
  '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--ignore-certificate-errors',
  // Host candidates as IPs on loopback, the only network tests may use.
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
  // Pages in background contexts keep their timers and decoders running.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows', '--autoplay-policy=no-user-gesture-required',
];

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A server with one hospital: departments and doctors as setupHospital
// takes them. fixedPort keeps the port across srv.restart().
export async function startHospital({ depts = ['cardio'], doctors = [['d1', 'cardio']], fixedPort = false, args = [] } = {}) {
  const extra = ['--web-root', WEB_ROOT, ...args];
  if (fixedPort) extra.push('--port', String(await freePort()));
  // The pages run against the default: check-in needs the informed consent.
  const srv = await startServer({ consent: true, args: extra });
  srv.admin = await setupHospital(srv, { depts, doctors });
  return srv;
}

export async function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 30000 });
}

// Opens a page of the web client as sub with role, each in its own context
// (own storage, own camera), collecting console errors for the report.
// Waits on a page are for a state to appear; their cap is generous because a
// 2-core machine shared with other suites has taken over 20 s for one.
const PAGE_WAIT_MS = 60000;
// beforeGoto(page): runs before the page loads (to hold a response of its start).
export async function openPage(browser, srv, file, sub, role, { locale = 'en-US', viewport = { width: 1280, height: 800 }, extra = {}, token, beforeGoto } = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale, viewport });
  const page = await ctx.newPage();
  page.setDefaultTimeout(PAGE_WAIT_MS);
  page.errors = [];
  page.on('pageerror', (e) => { page.errors.push(String(e)); console.log(`[${sub} page error] ${e}`); });
  page.on('console', (m) => { if (m.type() === 'error' && !/favicon/.test(m.text())) console.log(`[${sub} console] ${m.text()}`); });
  const tok = token || srv.token(sub, role, extra);
  if (beforeGoto) await beforeGoto(page);
  await page.goto(`${srv.base()}/${file}#token=${tok}`);
  return page;
}

// Holds the answers to the page's requests to url (a glob) until release(),
// each once the server has answered it: a read the page began before some
// change and got after it, in an order a loaded machine can give. The
// server's answers reach the page unchanged; after release at once.
// answered: the first came.
export async function holdResponses(page, url) {
  let release, served;
  const held = new Promise((r) => { release = r; });
  const answered = new Promise((r) => { served = r; });
  await page.route(url, async (route) => {
    const response = await route.fetch();
    served();
    await held;
    await route.fulfill({ response });
  });
  return { answered, release };
}

export async function shot(page, name) {
  fs.mkdirSync(SHOT_DIR, { recursive: true });
  const file = path.join(SHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

export const view = (page) => page.evaluate(() => document.body.dataset.current);
export const waitView = (page, name, timeout = 20000) =>
  page.waitForFunction((n) => document.body.dataset.current === n, name, { timeout });

// The patient page from the link to the waiting room.
export async function patientCheckin(page, { dept = 'cardio', urgent = false } = {}) {
  await waitView(page, 'device');
  await page.waitForSelector('#dev-continue:not([disabled])');
  await page.click('#dev-continue');
  await waitView(page, 'checkin');
  await page.waitForFunction((d) => !!document.querySelector(`#ci-dept option[value="${d}"]`), dept);
  await page.selectOption('#ci-dept', dept);
  if (urgent) await page.check('#ci-urgent');
  await page.check('#ci-consent');
  await page.click('#ci-form button[type="submit"]');
  await waitView(page, 'waiting');
}

// The doctor page on duty and available.
export async function doctorOnDuty(page) {
  await waitView(page, 'ws');
  await page.click('#status-group label:has(input[value="available"])');
  await page.waitForFunction(() => window.tm.state.status === 'available');
}

// A visit begun: the doctor on duty, the patient checked in, the offer
// accepted and the patient's page in the visit.
export async function acceptedVisit(patient, doctor) {
  await doctorOnDuty(doctor);
  await patientCheckin(patient);
  await doctor.waitForSelector('#offer:not([hidden])');
  await doctor.click('#offer-accept');
  await waitView(patient, 'visit');
}

// The live alerts about the patient of a visit, as a supervisor sees them.
export async function patientAlerts(srv, visitId, supervisor = 'sup-alerts') {
  const ov = await srv.api('GET', '/api/v1/overview', undefined, srv.token(supervisor, 'supervisor'));
  return (ov.json.alerts || []).filter((a) => a.visit_id === visitId && a.role === 'patient');
}

export async function confirm(page) {
  await page.click('dialog.confirm .confirm-ok');
}

// The other side's video as the page's own getStats() sees it.
export async function remoteVideo(page) {
  return page.evaluate(async () => {
    const call = window.tm.call;
    if (!call || !call.peer) return { width: 0, frames: 0, state: 'none' };
    const q = await call.peer.quality();
    const v = (q && q.video) || [];
    return { width: call.remote.videoWidth, frames: v.reduce((n, s) => n + s.framesDecoded, 0), state: q ? q.state : 'none' };
  });
}

// Codes the server sends that must never reach a reader as they are, and
// in the Chinese UI English code words (the visit roles, link states and
// invite outcomes of multi-party visits included).
const RAW_CODES = /\b(?:patient_left|doctor_left|grace_expired|terminate_and_refer|no_show|technical_failure|off_duty|in_visit|follow_up|visit_ended|poor_quality|recording_failed|offer_timeouts?|long_wait|feed_backlog|attending|consulting|guest_code)\b/;
const ZH_RAW_WORDS = /\b(?:completed|accepted|declined|timeout|withdrawn|cancelled|disconnected|audio|video|waiting|active|ended|offered|available|away|Unmute|Camera|Participant|patient|doctor|nurse|interpreter|guest|open|used|revoked|expired)\b/;

// The words on screen, with the names controls give screen readers.
export const screenText = (page) => page.evaluate(() => {
  const labels = [...document.querySelectorAll('[aria-label], [title]')]
    .filter((e) => e.offsetParent !== null)
    .map((e) => `${e.getAttribute('aria-label') || ''} ${e.getAttribute('title') || ''}`);
  return `${document.body.innerText}\n${labels.join('\n')}`;
});

// No null, undefined, {placeholder} or raw server code on the screen.
export async function rawWords(page, locale) {
  const text = await screenText(page);
  const bad = [];
  for (const re of [/\bnull\b/, /\bundefined\b/, /\bNaN\b/, /\{[a-z_]+\}/, RAW_CODES]) {
    const m = re.exec(text);
    if (m) bad.push(m[0]);
  }
  if (locale === 'zh-CN') {
    const m = ZH_RAW_WORDS.exec(text);
    if (m) bad.push(m[0]);
  }
  return { bad, text };
}

// The page's language through its own switch (remembered per context).
export async function setLanguage(page, locale) {
  const want = locale === 'zh-CN' ? 'zh-CN' : 'en';
  if (await page.evaluate(() => document.documentElement.lang) === want) return;
  await page.click('#lang-switch');
  await page.waitForFunction((l) => document.documentElement.lang === l, want);
}

// A guest's page from a guest link, in a context of its own (a phone by default).
export async function openGuest(browser, url, { locale = 'zh-CN', viewport = { width: 412, height: 860 } } = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale, viewport });
  const page = await ctx.newPage();
  page.setDefaultTimeout(PAGE_WAIT_MS);
  page.errors = [];
  page.on('pageerror', (e) => { page.errors.push(String(e)); console.log(`[guest page error] ${e}`); });
  await page.goto(url);
  return page;
}

// The guest accepts the notice and uses the link.
export async function joinGuest(guest) {
  await waitView(guest, 'notice');
  await guest.check('#gn-accept');
  await guest.click('#gn-join');
}

// A refused link says why, on screen, in both languages.
export async function assertRefused(guest, zh, en) {
  await waitView(guest, 'refused');
  await setLanguage(guest, 'zh-CN');
  assert.match(await guest.textContent('#gr-text'), zh);
  assert.deepEqual((await rawWords(guest, 'zh-CN')).bad, []);
  await setLanguage(guest, 'en-US');
  assert.match(await guest.textContent('#gr-text'), en);
  assert.deepEqual((await rawWords(guest, 'en-US')).bad, []);
}
