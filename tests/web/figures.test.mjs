// figures.test.mjs - the supervisor's figures page (issue 18) in chromium,
// in zh-CN and English at 1280×800, on the figures of real work: visits
// driven through the server with ratings and a no-show. The page is reached
// from the supervisor page's link, shows a table and a chart per axis with
// the server's numbers and no raw words, downloads the CSV, refuses bad
// dates before asking, and refuses a doctor's link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startHospital, launch, openPage, shot, waitView, rawWords } from './lib.mjs';

const DESK = { width: 1280, height: 800 };

async function visit(srv, patientId, score, comment) {
  const doctor = await srv.client('d1', 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept: 'cardio', kind: 'follow_up', consent: { version: '2026.1', recording: true } });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  await patient.request('visit.rate', { visit_id: ci.visit_id, score, ...(comment ? { comment } : {}) });
  await patient.close();
  await doctor.close();
}

// An hour ago, but not before today began in the figures' time zone
// (Asia/Shanghai, UTC+8, the default): the page's rows are today's, and at
// 00:30 there an hour ago was yesterday.
function noShowSlot() {
  const now = Date.now();
  const dayStart = Math.floor((now + 8 * 3600e3) / 86400e3) * 86400e3 - 8 * 3600e3;
  return Math.min(now - 1000, Math.max(now - 3600e3, dayStart));
}

test('figures page: tables and charts per axis in both languages, CSV, bad dates, wrong role', { timeout: 240000 }, async () => {
  const srv = await startHospital();
  const browser = await launch();
  try {
    await srv.api('POST', '/api/v1/doctors', { id: 'd1', name: '李医生 Dr Li', dept_id: 'cardio' }, srv.admin);
    await visit(srv, 'p1', 5, '很耐心，讲得清楚');
    await visit(srv, 'p2', 4);
    const a = await srv.api('POST', '/api/v1/appointments', { patient_id: 'p3', dept_id: 'cardio', doctor_id: 'd1',
      slot: new Date(noShowSlot()).toISOString() }, srv.admin);
    assert.equal((await srv.api('PATCH', `/api/v1/appointments/${a.json.id}`, { status: 'noshow' }, srv.admin)).status, 200);
    const server = (await srv.api('GET', '/api/v1/figures?by=doctor&period=month', undefined, srv.token('s0', 'supervisor'))).json.rows;
    assert.equal(server.length, 1);
    assert.equal(server[0].workload.visits, 2);

    // The median wait as the page words it, from the server's figure.
    const p50 = server[0].response.accept_p50_ms;
    const waitWords = (page) => page.evaluate(async (ms) => (await import('/js/figures_today.js')).fmtWait(ms), p50);
    const onDuty = await srv.client('d1', 'doctor');
    await onDuty.request('doctor.status', { status: 'available' });
    for (const locale of ['zh-CN', 'en-US']) {
      const zh = locale === 'zh-CN';
      const sup = await openPage(browser, srv, 'supervisor.html', 's1', 'supervisor', { locale, viewport: DESK });
      await waitView(sup, 'sup');
      // The roster gives each doctor on duty their figures of today.
      await sup.waitForFunction(() => /\d/.test(document.querySelector('#roster-body tr[data-doctor="d1"] .roster-today')?.textContent || ''));
      assert.equal(await sup.textContent('#roster-body tr[data-doctor="d1"] .roster-today'),
        zh ? `接诊 2 次 · 等待中位数 ${await waitWords(sup)} · 4.5 / 5 分` : `Visits: 2 · median wait ${await waitWords(sup)} · 4.5 / 5`);
      assert.equal(await sup.textContent('#figures-link'), zh ? '工作量统计' : 'Figures');
      await sup.click('#figures-link');
      await sup.waitForURL(/figures\.html#token=/);
      await waitView(sup, 'figures');
      await sup.waitForSelector('#fig-axes:not([hidden])');
      // The rows are the server's: one doctor, two visits, both rated, one no-show.
      const work = await sup.$$eval('#fig-work tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
      assert.equal(work.length, 1);
      assert.equal(work[0][1], '李医生 Dr Li');
      assert.deepEqual(work[0].slice(2), ['2', '2', '0', '0', '0', '0']);
      const sat = await sup.$$eval('#fig-sat tbody tr td', (tds) => tds.map((c) => c.textContent));
      assert.deepEqual(sat.slice(1), zh ? ['2', '4.50 / 5 分', '1', '1'] : ['2', '4.50 / 5', '1', '1']);
      // What the patient wrote, with the score and whose visit it was.
      assert.deepEqual(await sup.$$eval('#fig-comments li .figs-comment', (ps) => ps.map((p) => p.textContent)), ['很耐心，讲得清楚']);
      assert.match(await sup.textContent('#fig-comments li .figs-comment-meta'), zh ? /^5 \/ 5 分 · 李医生 Dr Li · Dept cardio · / : /^5 \/ 5 · 李医生 Dr Li · Dept cardio · /);
      const resp = await sup.textContent('#fig-resp tbody tr');
      assert.match(resp, zh ? /毫秒|秒/ : /\d+(\.\d)? (ms|s)/);
      // A chart per axis, its bars drawn from the same numbers.
      for (const id of ['#fig-work-chart', '#fig-resp-chart', '#fig-sat-chart'])
        assert.ok(await sup.$$eval(`${id} svg rect`, (r) => r.length) >= 1, id);
      assert.equal(await sup.getAttribute('#fig-sat-chart svg', 'aria-label'), zh ? '满意度与爽约' : 'Satisfaction and no-shows');
      const { bad, text } = await rawWords(sup, locale);
      assert.deepEqual(bad, [], text.slice(0, 1500));
      await shot(sup, `supervisor-figures-${zh ? 'zh' : 'en'}`);

      // Per department and week, asked from the form.
      await sup.selectOption('#fig-by', 'department');
      await sup.selectOption('#fig-period', 'week');
      await sup.click('#fig-form button[type="submit"]');
      await sup.waitForFunction(() => window.tm.state.figures && window.tm.state.figures.by === 'department');
      assert.equal(await sup.textContent('#fig-work tbody tr th'), 'Dept cardio');
      assert.match(await sup.textContent('#fig-work tbody tr td'), zh ? /起的一周/ : /^Week of /);

      // The CSV download is the server's CSV.
      const [download] = await Promise.all([sup.waitForEvent('download'), sup.click('#fig-csv')]);
      const csv = fs.readFileSync(await download.path(), 'utf8');
      assert.match(csv, /^period,period_start,id,name,/);
      assert.match(csv, /\r\n2026-W\d\d,[^,]+,cardio,Dept cardio,/);

      // Dates in the wrong order are refused before asking the server.
      await sup.fill('#fig-from', '2026-12-10');
      await sup.fill('#fig-to', '2026-12-01');
      await sup.click('#fig-form button[type="submit"]');
      assert.equal(await sup.textContent('#fig-status'), zh ? '开始日期不能晚于结束日期。' : 'The start date must not be after the end date.');
      assert.deepEqual(sup.errors, []);
      await sup.context().close();
    }

    await onDuty.close();
    // A doctor's link is refused with the way to the doctor's page.
    const doc = await openPage(browser, srv, 'figures.html', 'd1', 'doctor', { viewport: DESK });
    await doc.waitForSelector('#wrong-role-go');
    assert.match(await doc.getAttribute('#wrong-role-go', 'href'), /^doctor\.html#token=/);
    const audit = srv.sql("SELECT actor_id, outcome FROM audit_log WHERE action = 'figures.read' AND actor_id = 's1'");
    assert.ok(audit.length >= 4 && audit.every((r) => r.outcome === 'ok'));
  } finally {
    await browser.close();
    await srv.stop();
  }
});
