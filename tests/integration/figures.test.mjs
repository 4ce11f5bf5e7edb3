// The doctor and department figures (issue 18, GET /api/v1/figures) for a day
// of work driven through the real server: visits checked in, offered,
// accepted, ended and rated over telemed.v1, an appointment that became a
// no-show, and the network's steps through their own workflows (a
// consultation requested, scheduled, held and its opinion signed; a
// referral; a transfer to a named doctor); the answer is compared, per
// period and owner, with figures computed here by hand from the raw rows in
// the SQLite file. Then the CSV form, and every bad request refused with its reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { spawnSync } from 'node:child_process';
import { startServer, BIN } from './lib/server.mjs';

const TZ = 'Asia/Shanghai';
const DAY = 24 * 3600 * 1000;
let srv;
let sup;

// The calendar day of ms in the hospital's time zone, YYYY-MM-DD.
const localDay = (ms) => new Intl.DateTimeFormat('en-CA', {
  timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' }).format(ms);
// The ISO week (YYYY-Www) and month (YYYY-MM) of a local day.
function isoWeek(day) {
  const thursday = (d) => { const t = new Date(d); t.setUTCDate(t.getUTCDate() - ((t.getUTCDay() + 6) % 7) + 3); return t; };
  const t = thursday(new Date(`${day}T00:00:00Z`)); // the week's Thursday names its year
  const first = thursday(new Date(Date.UTC(t.getUTCFullYear(), 0, 4)));
  return `${t.getUTCFullYear()}-W${String(1 + Math.round((t - first) / (7 * DAY))).padStart(2, '0')}`;
}
const periodOf = { day: (ms) => localDay(ms), week: (ms) => isoWeek(localDay(ms)), month: (ms) => localDay(ms).slice(0, 7) };

// Nearest rank, as docs/api.md defines p50 and p90.
function nearestRank(values, p) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)];
}

function get(path, token, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: srv.port, path, method: 'GET',
      headers: { authorization: `Bearer ${token}`, ...headers }, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();
  });
}
const getJson = async (path, token = sup) => {
  const r = await get(path, token);
  return { ...r, json: JSON.parse(r.text) };
};

// RFC 4180: quoted fields may hold commas, quotes (doubled) and line breaks.
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++; }
    else field += c;
  }
  assert.equal(field, '', 'the CSV ends with CRLF');
  return rows;
}

// One visit over telemed.v1: check-in, offer, accept, end, and a rating
// unless score is null.
async function visit(doctorId, dept, patientId, { kind = 'follow_up', score = null, comment } = {}) {
  const doctor = await srv.client(doctorId, 'doctor');
  await doctor.request('doctor.status', { status: 'available' });
  const patient = await srv.client(patientId, 'patient');
  const ci = await patient.request('checkin', { dept, kind });
  await doctor.waitFor('visit.offer', (m) => m.visit_id === ci.visit_id);
  await doctor.request('visit.accept', { visit_id: ci.visit_id });
  await patient.waitFor('visit.state', (m) => m.state === 'active');
  await doctor.request('visit.end', { visit_id: ci.visit_id, reason: 'completed' });
  await patient.waitFor('visit.state', (m) => m.state === 'ended');
  if (score !== null) await patient.request('visit.rate', { visit_id: ci.visit_id, score, ...(comment ? { comment } : {}) });
  await patient.close();
  await doctor.close();
  return ci.visit_id;
}

before(async () => {
  // The core (3A) and a community clinic, for a referral down.
  srv = await startServer({ args: ['--allow-first-visits', '--hospital-level', '3A',
    '--institutions', 'clinic|East Clinic|ORG-EAST|community|clinic'] });
  const admin = srv.token('admin-1', 'admin');
  for (const [id, name, inst] of [['cardio', 'Cardiology'], ['endo', 'Endocrinology'], ['gp', 'General Practice', 'clinic']])
    assert.equal((await srv.api('POST', '/api/v1/departments', { id, name, ...(inst ? { institution_id: inst } : {}) }, admin)).status, 201);
  const now = Date.now();
  // Names that need quoting in CSV, and one a spreadsheet would run.
  for (const [id, dept, name] of [['d1', 'cardio', 'Li, "the elder"'], ['d2', 'endo', '=Wang']]) {
    assert.equal((await srv.api('POST', '/api/v1/doctors', { id, name, dept_id: dept }, admin)).status, 201);
    assert.equal((await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: dept,
      start: new Date(now - 3600e3).toISOString(), end: new Date(now + 3600e3).toISOString() }, admin)).status, 201);
  }
  sup = srv.token('sup-1', 'supervisor');

  // A day of work.
  const referFrom = await visit('d1', 'cardio', 'p1', { score: 5, comment: 'clear and kind' });
  await visit('d1', 'cardio', 'p2', { score: 2 });
  await visit('d1', 'cardio', 'p3', { kind: 'first' });
  await visit('d2', 'endo', 'p4', { score: 4, comment: 'ok' });
  // A follow-up booked with d1 an hour ago that nobody came to, and one of
  // endo's with no doctor named: each a no-show.
  for (const [patient, dept, doctor] of [['p5', 'cardio', 'd1'], ['p6', 'endo', undefined]]) {
    const a = await srv.api('POST', '/api/v1/appointments', { patient_id: patient, dept_id: dept,
      ...(doctor ? { doctor_id: doctor } : {}), slot: new Date(Date.now() - 3600e3).toISOString() }, admin);
    assert.equal(a.status, 201, a.text);
    assert.equal((await srv.api('PATCH', `/api/v1/appointments/${a.json.id}`, { status: 'noshow' }, admin)).status, 200);
  }
  await networkDay(referFrom);
});

// The network's steps, each through its own workflow: d2 asks cardiology
// for a consultation about p4, d1 schedules it with themself, the visit is
// held with three and d1 signs the opinion; d1 refers p1 down to the
// clinic; d2 hands a live visit to d1 by name.
async function networkDay(referFrom) {
  const as = (who) => srv.token(who, 'doctor');
  const iso = (ms) => new Date(ms).toISOString();
  let r = await srv.api('POST', '/api/v1/consultations', { patient_id: 'p4', dept_id: 'cardio', reason: 'HbA1c rising',
    question: 'Cardiac risk before insulin?', window_start: iso(Date.now()), window_end: iso(Date.now() + 7200e3) }, as('d2'));
  assert.equal(r.status, 201, r.text);
  const id = r.json.consultation_id;
  r = await srv.api('POST', `/api/v1/consultations/${id}/schedule`, { slot_at: iso(Date.now() + 60e3), specialist_id: 'd1' }, as('d1'));
  assert.equal(r.status, 200, r.text);
  const d1 = await srv.client('d1', 'doctor');
  const d2 = await srv.client('d2', 'doctor');
  await d2.request('doctor.status', { status: 'available' });
  const p4 = await srv.client('p4', 'patient');
  const held = await p4.request('checkin', { appointment_id: r.json.appointment_id });
  await d2.waitFor('visit.offer', (m) => m.visit_id === held.visit_id);
  await d2.request('visit.accept', { visit_id: held.visit_id });
  await d1.waitFor('consultation.started', (m) => m.consultation_id === id);
  await d1.request('consultation.join', { consultation_id: id });
  r = await srv.api('POST', `/api/v1/consultations/${id}/opinion`, { body: 'Low risk: start insulin.', sign: true }, as('d1'));
  assert.equal(r.status, 200, r.text);
  await d2.request('visit.end', { visit_id: held.visit_id });
  await p4.waitFor('visit.state', (m) => m.state === 'ended');

  r = await srv.api('POST', '/api/v1/referrals', { visit_id: referFrom, direction: 'down', to_dept_id: 'gp',
    reason: 'stable: community follow-up', summary: 'BP controlled.' }, as('d1'));
  assert.equal(r.status, 201, r.text);

  await d1.request('doctor.status', { status: 'available' });
  const p7 = await srv.client('p7', 'patient');
  const moved = await p7.request('checkin', { dept: 'endo' });
  await d2.waitFor('visit.offer', (m) => m.visit_id === moved.visit_id);
  await d2.request('visit.accept', { visit_id: moved.visit_id });
  await d2.request('visit.transfer', { visit_id: moved.visit_id, doctor_id: 'd1', reason: 'chest pain: cardiology now' });
  await d1.waitFor('visit.offer', (m) => m.visit_id === moved.visit_id);
  await d1.request('visit.accept', { visit_id: moved.visit_id });
  await d1.request('visit.end', { visit_id: moved.visit_id });
  await p7.waitFor('visit.state', (m) => m.state === 'ended');
  await p7.request('visit.rate', { visit_id: moved.visit_id, score: 3 });
  for (const c of [d1, d2, p4, p7]) await c.close();
  // The figures read the outbox: every step's event is in before the tests ask.
  const types = ['consultation.requested', 'consultation.scheduled', 'consultation.opinion_signed', 'referral.created', 'visit.transferred'];
  for (const type of types)
    assert.equal(srv.sql(`SELECT count(*) AS n FROM outbox WHERE type = '${type}'`)[0].n, 1, type);
}
after(async () => { await srv.stop(); });

// The figures computed here from the rows themselves: what each owner did,
// in which local period.
function expected(by, period) {
  const owners = { d1: { dept: 'cardio' }, d2: { dept: 'endo' } };
  const ownerOf = (doctor, dept) => by === 'doctor' ? doctor
    : by === 'department' ? (dept || owners[doctor]?.dept) : 'demo-hospital';
  const rows = new Map();
  const row = (at, id) => {
    const key = `${periodOf[period](at)}|${id}`;
    if (!rows.has(key)) rows.set(key, { period: periodOf[period](at), id, visits: 0, follow_up_visits: 0,
      consultations_given: 0, consultations_requested: 0, referrals: 0, transfers: 0, waits: [], sched: [],
      scores: [], comments: 0, no_shows: 0 });
    return rows.get(key);
  };
  // A visit counts for each doctor who attended it, in the order they took
  // it: the first with check-in -> accept, each next with transfer -> accept
  // (the previous doctor's leaving); the rating for the one who finished it.
  for (const v of srv.sql(`SELECT v.id, v.dept_id, v.kind, v.checkin_at, r.score, r.comment
      FROM visits v LEFT JOIN ratings r ON r.visit_id = v.id WHERE v.accepted_at IS NOT NULL`)) {
    const parts = srv.sql(`SELECT user_id, joined_at, left_at FROM participants
      WHERE visit_id = '${v.id}' AND visit_role = 'attending' ORDER BY joined_at, id`);
    parts.forEach((part, i) => {
      const g = row(part.joined_at, ownerOf(part.user_id, parts.length > 1 ? undefined : v.dept_id));
      g.visits++;
      if (v.kind === 'follow_up') g.follow_up_visits++;
      g.waits.push(part.joined_at - (i ? parts[i - 1].left_at : v.checkin_at));
      if (i === parts.length - 1 && v.score) { g.scores.push(v.score); if (v.comment) g.comments++; }
    });
  }
  // A no-show counts for the appointment's doctor, else the doctor who booked the follow-up.
  for (const a of srv.sql(`SELECT coalesce(nullif(a.doctor_id, ''), f.booked_by) AS doctor_id, a.dept_id, a.slot_at
      FROM appointments a LEFT JOIN followups f ON f.appointment_id = a.id WHERE a.status = 'noshow'`)) {
    const id = ownerOf(a.doctor_id, a.dept_id);
    if (id) row(a.slot_at, id).no_shows++;
  }
  const ev = Object.fromEntries(srv.sql(`SELECT type, occurred_at FROM outbox WHERE type IN ('consultation.requested',
    'consultation.scheduled', 'consultation.opinion_signed', 'referral.created', 'visit.transferred')`)
    .map((e) => [e.type, e.occurred_at]));
  row(ev['consultation.requested'], ownerOf('d2', 'endo')).consultations_requested++;
  row(ev['consultation.scheduled'], ownerOf('d1', 'cardio')).sched.push(ev['consultation.scheduled'] - ev['consultation.requested']);
  row(ev['consultation.opinion_signed'], ownerOf('d1', 'cardio')).consultations_given++;
  row(ev['referral.created'], ownerOf('d1', 'cardio')).referrals++;
  row(ev['visit.transferred'], ownerOf('d2', 'endo')).transfers++;
  return [...rows.values()].map((g) => ({
    period: g.period, id: g.id,
    workload: { visits: g.visits, follow_up_visits: g.follow_up_visits, consultations_given: g.consultations_given,
      consultations_requested: g.consultations_requested, referrals: g.referrals, transfers: g.transfers },
    response: { accepted: g.waits.length, accept_p50_ms: nearestRank(g.waits, 0.5), accept_p90_ms: nearestRank(g.waits, 0.9),
      scheduled: g.sched.length, schedule_p50_ms: nearestRank(g.sched, 0.5), schedule_p90_ms: nearestRank(g.sched, 0.9) },
    satisfaction: { ratings: g.scores.length,
      rating_mean: g.scores.length ? Math.round(g.scores.reduce((a, b) => a + b, 0) * 100 / g.scores.length) / 100 : null,
      comments: g.comments },
    no_shows: g.no_shows,
  })).sort((a, b) => (a.period < b.period ? -1 : a.period > b.period ? 1 : a.id < b.id ? -1 : 1));
}

// Yesterday to tomorrow, local: every fact of the test is inside.
const range = () => `from=${localDay(Date.now() - DAY)}&to=${localDay(Date.now() + 2 * DAY)}`;
const strip = (rows) => rows.map(({ period, id, workload, response, satisfaction, no_shows }) =>
  ({ period, id, workload, response, satisfaction, no_shows }));

for (const by of ['doctor', 'department', 'institution']) {
  for (const period of ['day', 'week', 'month']) {
    test(`figures by ${by} per ${period} match the ones computed by hand`, async () => {
      const r = await getJson(`/api/v1/figures?by=${by}&period=${period}&${range()}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.by, by);
      assert.equal(r.json.period, period);
      assert.equal(r.json.time_zone, TZ);
      assert.match(r.json.from, /T00:00:00\+08:00$/);
      assert.deepEqual(strip(r.json.rows), expected(by, period));
    });
  }
}

test('rows carry names and the department a doctor works in', async () => {
  const { json } = await getJson(`/api/v1/figures?by=doctor&period=month&${range()}`);
  const d1 = json.rows.find((r) => r.id === 'd1');
  assert.equal(d1.name, 'Li, "the elder"');
  assert.equal(d1.department_id, 'cardio');
  assert.equal(d1.department_name, 'Cardiology');
  assert.equal(d1.institution_id, 'demo-hospital');
  // The hand-made numbers, spelled out once for the reader.
  // Three visits of their own and the one d2 handed them (rated 3 when they finished it).
  assert.equal(d1.workload.visits, 4);
  assert.equal(d1.workload.follow_up_visits, 3);
  assert.equal(d1.satisfaction.ratings, 3);
  assert.equal(d1.satisfaction.rating_mean, 3.33);
  assert.equal(d1.satisfaction.comments, 1);
  assert.equal(d1.no_shows, 1);
  assert.deepEqual([d1.workload.consultations_given, d1.workload.referrals, d1.response.scheduled], [1, 1, 1]);
  const d2 = json.rows.find((r) => r.id === 'd2');
  // p4's visit, the consultation held in endo, and the first part of the one handed on.
  assert.deepEqual([d2.workload.visits, d2.workload.consultations_requested, d2.workload.transfers], [3, 1, 1]);
  // The comments themselves, newest accepted visit first.
  assert.deepEqual(json.comments.map((c) => [c.doctor_name, c.department_id, c.score, c.comment]),
    [['=Wang', 'endo', 4, 'ok'], ['Li, "the elder"', 'cardio', 5, 'clear and kind']]);
  assert.match(json.comments[0].rated_at, /\+08:00$/);
  const inst = (await getJson(`/api/v1/figures?by=institution&period=month&${range()}`)).json.rows[0];
  assert.equal(inst.name, 'Demo Internet Hospital');
  assert.equal(inst.no_shows, 2); // endo's no-show has no doctor: only its department and institution count it
  // One institution's figures: all of them here, none of another's.
  const core = (await getJson(`/api/v1/figures?by=department&period=month&institution=demo-hospital&${range()}`)).json.rows;
  assert.deepEqual(strip(core), expected('department', 'month'));
  assert.deepEqual((await getJson(`/api/v1/figures?by=department&period=month&institution=county-west&${range()}`)).json.rows, []);
});

test("a doctor's own figures of today (GET /me) count the same day as the figures", async () => {
  const today = localDay(Date.now());
  const row = (await getJson(`/api/v1/figures?by=doctor&period=day&from=${today}`)).json.rows.find((r) => r.id === 'd1');
  const me = await getJson('/api/v1/me', srv.token('d1', 'doctor'));
  assert.equal(me.json.today.visits, row.workload.visits);
  assert.equal(me.json.today.ratings, row.satisfaction.ratings);
});

test('CSV (Accept: text/csv or format=csv) holds the same figures, quoted as RFC 4180', async () => {
  const json = (await getJson(`/api/v1/figures?by=doctor&period=day&${range()}`)).json;
  for (const how of [{ q: '', h: { accept: 'text/csv' } }, { q: '&format=csv', h: {} }]) {
    const r = await get(`/api/v1/figures?by=doctor&period=day&${range()}${how.q}`, sup, how.h);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/csv/);
    const [header, ...rows] = parseCsv(r.text);
    assert.equal(header.length, 22);
    assert.deepEqual(header.slice(0, 7), ['period', 'period_start', 'id', 'name', 'department_id', 'institution_id', 'visits']);
    assert.equal(rows.length, json.rows.length);
    rows.forEach((cells, i) => {
      const o = Object.fromEntries(header.map((h, j) => [h, cells[j]]));
      const want = json.rows[i];
      assert.equal(o.id, want.id);
      assert.equal(o.name, want.name.startsWith('=') ? `'${want.name}` : want.name);
      assert.equal(Number(o.visits), want.workload.visits);
      assert.equal(o.accept_p90_ms, want.response.accept_p90_ms === null ? '' : String(want.response.accept_p90_ms));
      assert.equal(o.rating_mean, want.satisfaction.rating_mean === null ? '' : want.satisfaction.rating_mean.toFixed(2));
      assert.equal(Number(o.no_shows), want.no_shows);
    });
  }
  // format=json wins over the Accept header.
  const r = await get(`/api/v1/figures?format=json&${range()}`, sup, { accept: 'text/csv' });
  assert.match(r.headers['content-type'], /^application\/json/);
});

test('bad requests are refused with the reason and audited; other roles are refused', async () => {
  const day = localDay(Date.now());
  const cases = [
    [`from=2026-01-01&to=2026-06-01`, /longer than 92 days/],
    [`period=year`, /period must be day, week or month/],
    [`by=patient`, /by must be doctor, department or institution/],
    [`from=${day}&to=${day}`, /from must be before to/],
    [`from=yesterday`, /from\/to must be/],
    [`from=2026-02-30`, /from\/to must be/],
    [`format=xml`, /format must be json or csv/],
    [`institution=a%20b`, /institution must be an institution id/],
  ];
  for (const [q, why] of cases) {
    const r = await getJson(`/api/v1/figures?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.error.code, 'bad_request');
    assert.match(r.json.error.message, why);
  }
  assert.ok((await getJson(`/api/v1/figures?from=2026-01-01T00:00:00Z&to=2026-04-03T00:00:00Z`)).status === 200, '92 days are fine');
  for (const [sub, role] of [['d1', 'doctor'], ['p1', 'patient']]) {
    const r = await getJson('/api/v1/figures', srv.token(sub, role));
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'forbidden');
  }
  assert.equal((await get('/api/v1/figures', '')).status, 401);
  assert.equal((await getJson('/api/v1/figures', srv.token('admin-1', 'admin'))).status, 200);
  const audit = srv.sql("SELECT actor_id, outcome, detail FROM audit_log WHERE action = 'figures.read'");
  assert.ok(audit.some((a) => a.actor_id === 'sup-1' && a.outcome === 'ok' && /by=doctor/.test(a.detail)));
  assert.ok(audit.some((a) => a.actor_id === 'sup-1' && a.outcome === 'invalid'));
  assert.ok(audit.some((a) => a.actor_id === 'd1' && a.outcome === 'denied'));
  assert.ok(audit.some((a) => a.actor_id === 'p1' && a.outcome === 'denied'));
});

test('the time zone comes from config and an unknown one is refused at start', () => {
  const bad = spawnSync(BIN, ['--check-config', '--figures-time-zone', 'Mars/Olympus'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /figures_time_zone.*Mars\/Olympus.*not a time zone/);
  const good = spawnSync(BIN, ['--check-config', '--figures-time-zone', 'Europe/Berlin'], { encoding: 'utf8' });
  assert.equal(good.status, 0, good.stderr);
});
