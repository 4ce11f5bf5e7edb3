// figures.js - the supervisor's page of doctor, department and institution
// figures (GET /api/v1/figures): per owner and period, a table and a bar
// chart (inline SVG) for each axis: workload, response speed, satisfaction
// with no-shows. The CSV download is the same answer as the server makes it.

import { t, lang } from './i18n.js';
import { api } from './signaling.js';
import { fmtWait } from './figures_today.js';
import { $, el, initPage, showView, announce, errText } from './common.js';

const page = initPage(['supervisor', 'admin']);
const state = { figures: null };
window.tm = { state };
const SVG = 'http://www.w3.org/2000/svg';
const DAY_MS = 24 * 3600 * 1000;
const MAX_BARS = 24;


function main() {
  $('#fig-back').href = `supervisor.html#token=${encodeURIComponent(page.token)}`;
  $('#fig-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
  $('#fig-csv').addEventListener('click', downloadCsv);
  window.addEventListener('langchange', render);
  showView('figures', { focus: false });
  load({ firstWeek: true });
}

// The form's dates are inclusive; the API's `to` is the next day's midnight.
// Without dates the server gives the last seven days in its figures' time
// zone, which is where "today" is decided, not the browser's clock.
function query(format, { firstWeek = false } = {}) {
  const q = new URLSearchParams({ by: $('#fig-by').value, period: $('#fig-period').value });
  if (!firstWeek) {
    const to = new Date(`${$('#fig-to').value}T00:00:00Z`);
    to.setUTCDate(to.getUTCDate() + 1);
    q.set('from', $('#fig-from').value);
    q.set('to', to.toISOString().slice(0, 10));
  }
  if (format) q.set('format', format);
  return q.toString();
}

function formError() {
  const from = $('#fig-from').value, to = $('#fig-to').value;
  if (!from || !to) return t('fig.need_dates');
  if (from > to) return t('fig.bad_order');
  if ((Date.parse(to) - Date.parse(from)) / DAY_MS + 1 > 92) return t('fig.too_long');
  return null;
}

async function load({ firstWeek = false } = {}) {
  const status = $('#fig-status');
  const bad = firstWeek ? null : formError();
  if (bad) {
    status.textContent = bad;
    status.className = 'error';
    return;
  }
  status.className = 'muted';
  status.textContent = t('common.loading');
  try {
    state.figures = await api(page.token, `/figures?${query(null, { firstWeek })}`);
    if (firstWeek) {
      // The server's range in its time zone: from a day's start to now.
      $('#fig-from').value = state.figures.from.slice(0, 10);
      $('#fig-to').value = state.figures.to.slice(0, 10);
    }
    render();
  } catch (e) {
    status.className = 'error';
    status.textContent = t('common.error', { msg: errText(e) });
  }
}

async function downloadCsv() {
  const bad = formError();
  if (bad) { announce(bad, { kind: 'error' }); return; }
  try {
    const res = await fetch(`/api/v1/figures?${query()}`, { headers: { authorization: `Bearer ${page.token}`, accept: 'text/csv' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: `figures-${$('#fig-by').value}-${$('#fig-period').value}-${$('#fig-from').value}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    announce(t('common.error', { msg: errText(e) }), { kind: 'error' });
  }
}

// ---- words and numbers -------------------------------------------------

const none = () => t('common.none');
const num = (v) => (v === null || v === undefined ? none() : new Intl.NumberFormat(lang()).format(v));

const wait = fmtWait;

const mean = (v) => (v === null || v === undefined ? none() : t('fig.of_five', { n: v.toFixed(2) }));

// The period a row covers, as a date in the hospital's time zone.
function periodText(row) {
  const start = new Date(row.period_start);
  const tz = state.figures.time_zone;
  const day = start.toLocaleDateString(lang(), { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
  if (state.figures.period === 'month') return start.toLocaleDateString(lang(), { timeZone: tz, year: 'numeric', month: 'long' });
  if (state.figures.period === 'week') return t('fig.week_of', { day });
  return day;
}

const ownerText = (row) => row.name || row.id;

// A time as the hospital's clock shows it (the zone the periods use).
const hospitalTime = (iso) => new Date(iso).toLocaleString(lang(), { timeZone: state.figures.time_zone,
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });

// ---- rendering -----------------------------------------------------------

function table(node, heads, rows) {
  node.replaceChildren(
    el('thead', {}, el('tr', {}, heads.map((h, i) => el('th', { scope: 'col', class: i > 1 ? 'num' : null }, h)))),
    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c, i) => (i === 1
      ? el('th', { scope: 'row' }, c)
      : el('td', { class: i > 1 ? 'num' : null }, c)))))));
}

// A horizontal bar per row: bars [{value, cls, label}] drawn over each other
// from zero in the order given (a part after its whole), the owner's name
// before and the value in words after.
function chart(node, title, rows, bars, valueText, max) {
  const shown = rows.slice(0, MAX_BARS);
  const top = Math.max(max || 0, ...shown.flatMap((r) => bars.map((b) => b.value(r) || 0)), 1);
  // On a phone the name goes above its bar and the drawing keeps the
  // screen's own scale; wider, name, bar and value share a line.
  const narrow = (node.clientWidth || window.innerWidth) < 600;
  const rowH = narrow ? 44 : 26, labelW = narrow ? 0 : 230, barW = narrow ? 170 : 420, textW = 150;
  const barY = narrow ? 20 : 3, textY = narrow ? 34 : 16;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${labelW + barW + textW} ${shown.length * rowH + 4}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', title);
  svg.setAttribute('class', 'figs-svg');
  const add = (parent, tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    parent.append(n);
    return n;
  };
  const withPeriod = multiPeriod();
  shown.forEach((r, i) => {
    const y = i * rowH + 2;
    const label = withPeriod ? `${ownerText(r)} · ${periodText(r)}` : ownerText(r);
    add(svg, 'text', narrow ? { x: 0, y: y + 14, class: 'figs-label' } : { x: labelW - 8, y: y + 16, 'text-anchor': 'end', class: 'figs-label' },
      label.length > 30 ? `${label.slice(0, 29)}…` : label);
    for (const b of bars) {
      const v = b.value(r);
      if (v === null || v === undefined) continue;
      add(svg, 'rect', { x: labelW, y: y + barY, height: narrow ? 18 : rowH - 8, width: Math.max(1, (v / top) * barW), class: b.cls });
    }
    add(svg, 'text', { x: labelW + barW + 6, y: y + textY, class: 'figs-value' }, valueText(r));
  });
  const parts = [svg];
  if (rows.length > MAX_BARS) parts.push(el('p', { class: 'muted' }, t('fig.more', { n: rows.length - MAX_BARS })));
  parts.unshift(el('p', { class: 'figs-legend' }, bars.map((b) => el('span', { class: 'figs-key' }, el('i', { class: b.cls }), b.label))));
  node.replaceChildren(...parts);
}

function multiPeriod() {
  return new Set(state.figures.rows.map((r) => r.period)).size > 1;
}

function render() {
  const f = state.figures;
  if (!f) return;
  const status = $('#fig-status');
  const rows = f.rows;
  const axes = $('#fig-axes');
  if (!rows.length) {
    axes.hidden = true;
    status.className = 'muted';
    status.textContent = t('fig.empty');
    return;
  }
  axes.hidden = false;
  status.className = 'muted';
  status.textContent = t('fig.summary', { n: rows.length, tz: f.time_zone });
  const owner = t(`fig.by_${f.by}`);
  const lead = (r) => [periodText(r), ownerText(r)];

  table($('#fig-work'), [t('fig.period'), owner, t('fig.visits'), t('fig.follow_ups'), t('fig.consults_given'),
    t('fig.consults_requested'), t('fig.referrals'), t('fig.transfers')],
  rows.map((r) => [...lead(r), num(r.workload.visits), num(r.workload.follow_up_visits), num(r.workload.consultations_given),
    num(r.workload.consultations_requested), num(r.workload.referrals), num(r.workload.transfers)]));
  chart($('#fig-work-chart'), t('fig.workload'), rows,
    [{ value: (r) => r.workload.visits, cls: 'figs-bar2', label: t('fig.visits') },
      { value: (r) => r.workload.follow_up_visits, cls: 'figs-bar', label: t('fig.follow_ups') }],
    (r) => t('fig.visits_n', { n: num(r.workload.visits) }));

  table($('#fig-resp'), [t('fig.period'), owner, t('fig.accepted'), t('fig.accept_p50'), t('fig.accept_p90'),
    t('fig.scheduled'), t('fig.schedule_p50'), t('fig.schedule_p90')],
  rows.map((r) => [...lead(r), num(r.response.accepted), wait(r.response.accept_p50_ms), wait(r.response.accept_p90_ms),
    num(r.response.scheduled), wait(r.response.schedule_p50_ms), wait(r.response.schedule_p90_ms)]));
  chart($('#fig-resp-chart'), t('fig.response'), rows.filter((r) => r.response.accepted > 0),
    [{ value: (r) => r.response.accept_p90_ms, cls: 'figs-bar2', label: t('fig.accept_p90') },
      { value: (r) => r.response.accept_p50_ms, cls: 'figs-bar', label: t('fig.accept_p50') }],
    (r) => `${wait(r.response.accept_p50_ms)} / ${wait(r.response.accept_p90_ms)}`);

  table($('#fig-sat'), [t('fig.period'), owner, t('fig.ratings'), t('fig.rating_mean'), t('fig.comments'), t('fig.no_shows')],
    rows.map((r) => [...lead(r), num(r.satisfaction.ratings), mean(r.satisfaction.rating_mean), num(r.satisfaction.comments), num(r.no_shows)]));
  chart($('#fig-sat-chart'), t('fig.satisfaction'), rows.filter((r) => r.satisfaction.ratings > 0),
    [{ value: (r) => r.satisfaction.rating_mean, cls: 'figs-bar', label: t('fig.rating_mean') }],
    (r) => `${mean(r.satisfaction.rating_mean)} · ${t('fig.ratings_n', { n: num(r.satisfaction.ratings) })}`, 5);
  renderComments(f.comments || []);
}

// The ratings' comments, newest first: score, doctor, when, the words.
function renderComments(comments) {
  const list = $('#fig-comments');
  if (!comments.length) {
    list.replaceChildren(el('li', { class: 'muted' }, t('fig.no_comments')));
    return;
  }
  list.replaceChildren(...comments.map((c) => el('li', { 'data-visit': c.visit_id },
    el('p', { class: 'figs-comment-meta' }, [t('fig.of_five', { n: c.score }), c.doctor_name || c.doctor_id,
      c.department_name || c.department_id, hospitalTime(c.rated_at)].filter(Boolean).join(' · ')),
    el('p', { class: 'figs-comment' }, c.comment))));
}

if (page) main();
