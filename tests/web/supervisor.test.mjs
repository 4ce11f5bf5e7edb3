// supervisor.test.mjs - the supervisor's alerts in chromium, from real
// server state: an urgent patient waiting, a doctor who lets an offer time
// out, and a patient waiting longer than the alert threshold; the
// department tile is marked while they last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, setLanguage } from './lib.mjs';

test('supervisor alerts: urgent, offer not taken, long wait', { timeout: 120000 }, async () => {
  const srv = await startHospital({ args: ['--offer-timeout-s', '5', '--wait-alert-s', '10'] });
  const browser = await launch();
  const clients = [];
  try {
    const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor');
    await waitView(sup, 'sup');
    const patient = await srv.client('p-alert', 'patient');
    clients.push(patient);
    const { visit_id: visitId } = await patient.request('checkin', { dept: 'cardio', urgent: true, consent: { version: '2026.1', recording: true } });
    await sup.waitForSelector(`#alerts li[data-kind="urgent"][data-visit="${visitId}"]`);
    await sup.waitForSelector('.tile[data-dept="cardio"].alerting');
    assert.equal(await sup.textContent('.tile[data-dept="cardio"] dd[data-k="waiting"]'), '1');

    // A doctor who does not answer: the server withdraws the offer after
    // 5 s and sets the doctor away; the page reports it.
    const doctor = await srv.client('d1', 'doctor');
    clients.push(doctor);
    await doctor.request('doctor.status', { status: 'available' });
    await doctor.waitFor('visit.offer');
    await sup.waitForSelector('#alerts li[data-kind="offer_timeout"]', { timeout: 30000 });
    assert.match(await sup.textContent('#alerts li[data-kind="offer_timeout"]'), /d1/);

    await sup.waitForSelector('#alerts li[data-kind="long_wait"]', { timeout: 30000 });
    assert.equal(await sup.getAttribute('#alerts li[data-kind="long_wait"]', 'data-visit'), visitId);
    await shot(sup, 'supervisor-alerts');

    // Gone when the patient is taken.
    await doctor.request('doctor.status', { status: 'available' });
    const offer = await doctor.waitFor('visit.offer', () => true, 15000);
    await doctor.request('visit.accept', { visit_id: offer.visit_id });
    await sup.waitForFunction(() => !document.querySelector('#alerts li[data-kind="urgent"], #alerts li[data-kind="long_wait"]'));
    assert.deepEqual(sup.errors, []);
  } finally {
    for (const c of clients) await c.close();
    await browser.close();
    await srv.stop();
  }
});

// The platform's clock set so that it is about noon there now: yesterday's
// deadline (one hour after it ended) has passed whatever the time here.
function noonOffsetMin() {
  const now = new Date();
  let off = 12 * 60 - (now.getUTCHours() * 60 + now.getUTCMinutes());
  if (off > 720) off -= 1440;
  if (off < -720) off += 1440;
  return off;
}

test('supervisor page: the regulator upload per day, and an alert when yesterday missed its deadline', { timeout: 120000 }, async () => {
  // The platform is unreachable (a closed port): nothing can go up in time.
  const srv = await startHospital({ args: ['--feed-profiles', 'webhook,tianjin', '--tianjin-url', 'http://127.0.0.1:9/api',
    '--tianjin-app-key', 'k', '--tianjin-app-secret', '0123456789abcdef0123456789abcdef', '--tianjin-organ-id', 'ORG1',
    '--tianjin-upload-at', '23:59:59', '--tianjin-deadline-h', '1', '--tianjin-utc-offset-min', String(noonOffsetMin())] });
  const browser = await launch();
  try {
    const c = (await srv.api('GET', '/api/v1/feed/compliance', undefined, srv.admin)).json.profiles[0];
    assert.equal(c.yesterday.deadline, 'missed', JSON.stringify(c.yesterday));
    const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { locale: 'zh-CN' });
    await waitView(sup, 'sup');
    await sup.waitForSelector('#upload-alert:not([hidden])');
    assert.match(await sup.textContent('#upload-alert'), new RegExp(`天津.*${c.yesterday.day}.*未按时`));
    await shot(sup, 'supervisor-upload-zh');
    const metrics = await srv.api('GET', '/metrics');
    assert.match(metrics.text, /^telemed_upload_deadline_missed\{node="[^"]*",profile="tianjin"\} 1$/m);
    assert.match(srv.logs, /ev=tianjin\.deadline_missed day=\d{4}-\d\d-\d\d/);
    assert.deepEqual(sup.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});

test('supervisor page: the scope it oversees, one institution or the whole alliance, in both languages', { timeout: 120000 }, async () => {
  const srv = await startHospital({ args: ['--institutions', 'west|西县人民医院 County West Hospital|ORG-WEST|2A|hospital'] });
  const browser = await launch();
  try {
    const scoped = await openPage(browser, srv, 'supervisor.html', 's-west', 'supervisor', { extra: { inst: 'west' } });
    await waitView(scoped, 'sup');
    await scoped.waitForFunction(() => /You oversee 西县人民医院 County West Hospital/.test(document.querySelector('#sup-scope').textContent));
    await setLanguage(scoped, 'zh-CN');
    assert.equal(await scoped.textContent('#sup-scope'), '督导范围：西县人民医院 County West Hospital');
    const all = await openPage(browser, srv, 'supervisor.html', 's-all', 'supervisor', { locale: 'zh-CN' });
    await waitView(all, 'sup');
    assert.equal(await all.textContent('#sup-scope'), '督导范围：整个医联体');
    await setLanguage(all, 'en-US');
    assert.equal(await all.textContent('#sup-scope'), 'You oversee the whole alliance');
    assert.equal(await all.isVisible('#sup-scope'), true);
    assert.deepEqual([...scoped.errors, ...all.errors], []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
