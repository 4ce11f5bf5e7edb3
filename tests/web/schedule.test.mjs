// schedule.test.mjs - the scheduling page (issue 18) in chromium at
// 1280x800 against the real server: a supervisor of a county hospital opens
// it from the supervisor page, sees only their institution's doctors, adds
// a shift last week, copies last week into this one (and again: nothing
// doubles), and reads it all in English and Chinese with no raw code or
// null on screen. The rows in SQLite are checked, not only the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHospital, launch, openPage, shot, waitView, rawWords, setLanguage } from './lib.mjs';

test('scheduling page: add a shift, copy last week, in both languages', { timeout: 180000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    const admin = srv.admin;
    let r = await srv.api('POST', '/api/v1/institutions', { id: 'west', name: 'County West Hospital', kind: 'hospital', org_code: 'ORG-W', level: '2A' }, admin);
    assert.equal(r.status, 201, r.text);
    r = await srv.api('POST', '/api/v1/departments', { id: 'west-im', name: 'Internal Medicine', institution_id: 'west' }, admin);
    assert.equal(r.status, 201, r.text);
    r = await srv.api('POST', '/api/v1/doctors', { id: 'dw', name: 'Dr Zhou', dept_id: 'west-im' }, admin);
    assert.equal(r.status, 201, r.text);

    const sup = await openPage(browser, srv, 'supervisor.html', 'sw', 'supervisor', { extra: { inst: 'west' } });
    await waitView(sup, 'sup');
    await sup.click('#schedule-link');
    await sup.waitForURL(/schedule\.html#token=/);
    await waitView(sup, 'sched');
    await sup.waitForSelector('#week-body tr[data-doctor="dw"]');
    assert.deepEqual(await sup.$$eval('#week-body tr', (rows) => rows.map((x) => x.dataset.doctor)), ['dw']);
    assert.match(await sup.textContent('#scope'), /County West Hospital/);

    // Last week: a Monday morning shift through the form.
    await sup.click('#prev-week');
    const lastMonday = await sup.evaluate(() => {
      const d = window.tm.state.week;
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    });
    await sup.selectOption('#a-doctor', 'dw');
    await sup.fill('#a-date', lastMonday);
    await sup.fill('#a-start', '09:00');
    await sup.fill('#a-end', '12:30');
    await sup.fill('#a-capacity', '2');
    await sup.click('#add-form button[type="submit"]');
    await sup.waitForSelector(`#week-body tr[data-doctor="dw"] td[data-day="${lastMonday}"] li.shift`);
    assert.match(await sup.textContent(`td[data-day="${lastMonday}"] .shift-time`), /^09:00 AM–12:30 PM$/);
    const before = srv.sql("SELECT start_at, end_at, capacity FROM shifts WHERE doctor_id = 'dw'");
    assert.equal(before.length, 1);
    assert.equal(before[0].end_at - before[0].start_at, 3.5 * 3600e3);
    assert.equal(before[0].capacity, 2);

    // This week: copy last week, and see it on this Monday.
    await sup.click('#next-week');
    await sup.waitForFunction(() => !document.querySelector('#week-body li.shift'));
    await sup.click('#copy-week');
    await sup.waitForSelector('#week-body tr[data-doctor="dw"] td:nth-child(2) li.shift');
    await sup.waitForFunction(() => [...document.querySelectorAll('.toast-ok')]
      .some((x) => /Shifts copied from last week: 1 \(0 were already here\)/.test(x.textContent)));
    const after = srv.sql("SELECT start_at FROM shifts WHERE doctor_id = 'dw' ORDER BY start_at");
    assert.deepEqual(after.map((x) => x.start_at - before[0].start_at), [0, 7 * 86400e3]);
    await shot(sup, 'schedule-week-en');
    let words = await rawWords(sup, 'en');
    assert.deepEqual(words.bad, [], words.text);

    // Copying again adds nothing, and says so in Chinese.
    await setLanguage(sup, 'zh-CN');
    await sup.click('#copy-week');
    await sup.waitForFunction(() => [...document.querySelectorAll('.toast')].some((x) => /本周已有/.test(x.textContent)));
    assert.match(await sup.evaluate(() => document.body.innerText), /已从上周复制 0 个班次（1 个本周已有）/);
    assert.equal(srv.sql("SELECT count(*) AS n FROM shifts WHERE doctor_id = 'dw'")[0].n, 2);
    assert.match(await sup.textContent('#week-h'), /^排班周：/);
    await shot(sup, 'schedule-week-zh');
    words = await rawWords(sup, 'zh-CN');
    assert.deepEqual(words.bad, [], words.text);
    assert.deepEqual(sup.errors, []);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
