// institutions.test.mjs - the alliance (issue 18) against the real server:
// members declared in the config and over REST, departments and doctors
// listed with their institution, a doctor whose token names another
// institution refused (signaling and REST), a shift in another institution's
// department refused, a supervisor scoped to one institution seeing only its
// departments, visits, doctors and records (overview, watch, REST visits,
// records and audit) while an unscoped one sees all, and the regulator event
// carrying the visit's institution with its organisation code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitUntil } from './lib/server.mjs';

let srv;
let admin;
const HOSP = 'demo-hospital'; // the default hospital_id: the core
const later = (h) => new Date(Date.now() + h * 3600e3).toISOString();

async function ok(res, status = 200) {
  assert.equal(res.status, status, res.text);
  return res.json;
}

before(async () => {
  srv = await startServer({ args: ['--hospital-org-code', 'ORG-CORE', '--hospital-level', '3A',
    '--institutions', 'west|County West Hospital|ORG-WEST|2A|hospital'] });
  admin = srv.token('admin-1', 'admin');
  await ok(await srv.api('POST', '/api/v1/departments', { id: 'cardio', name: 'Cardiology' }, admin), 201);
  await ok(await srv.api('POST', '/api/v1/departments',
    { id: 'west-im', name: 'Internal Medicine', institution_id: 'west' }, admin), 201);
  for (const [id, dept] of [['d1', 'cardio'], ['dw', 'west-im']]) {
    await ok(await srv.api('POST', '/api/v1/doctors', { id, name: `Dr ${id}`, dept_id: dept, licence_no: `LIC-${id}` }, admin), 201);
    await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: id, dept_id: dept, start: later(-1), end: later(1) }, admin), 201);
  }
});
after(async () => { if (srv) await srv.stop(); });

test('institutions, departments and doctors are listed with their institution', async () => {
  const { institutions } = await ok(await srv.api('GET', '/api/v1/institutions', undefined, srv.token('p9', 'patient')));
  assert.deepEqual(institutions.map((i) => [i.id, i.kind, i.org_code, i.level, i.departments]),
    [[HOSP, 'core', 'ORG-CORE', '3A', 1], ['west', 'hospital', 'ORG-WEST', '2A', 1]]);
  const west = await ok(await srv.api('GET', '/api/v1/institutions/west', undefined, admin));
  assert.deepEqual(west.departments, ['west-im']);
  assert.equal((await srv.api('GET', '/api/v1/institutions/nowhere', undefined, admin)).status, 404);
  const { departments } = await ok(await srv.api('GET', '/api/v1/departments', undefined, admin));
  assert.deepEqual(departments.map((d) => [d.id, d.institution_id]), [['cardio', HOSP], ['west-im', 'west']]);
  const { doctors } = await ok(await srv.api('GET', '/api/v1/doctors', undefined, admin));
  assert.deepEqual(doctors.map((d) => [d.id, d.institution_id]), [['d1', HOSP], ['dw', 'west']]);
});

test('admins of the alliance add members; bad ones are refused and change nothing', async () => {
  const clinic = { id: 'east', name: 'East Clinic', kind: 'clinic', org_code: 'ORG-EAST', level: 'community' };
  const made = await ok(await srv.api('POST', '/api/v1/institutions', clinic, admin), 201);
  assert.deepEqual(made, clinic);
  const scopedAdmin = srv.token('admin-w', 'admin', { inst: 'west' });
  assert.equal((await srv.api('POST', '/api/v1/institutions', { ...clinic, id: 'east2' }, scopedAdmin)).status, 403);
  assert.equal((await srv.api('POST', '/api/v1/institutions', { ...clinic, id: 'east2' }, srv.token('s1', 'supervisor'))).status, 403);
  const bad = await srv.api('POST', '/api/v1/institutions', { ...clinic, id: 'east3', kind: 'pharmacy' }, admin);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'bad_request');
  const core = await srv.api('POST', '/api/v1/institutions', { ...clinic, id: HOSP }, admin);
  assert.equal(core.status, 409);
  assert.equal((await srv.api('POST', '/api/v1/departments', { id: 'x', name: 'X', institution_id: 'nowhere' }, admin)).status, 400);
  // An admin of one institution puts departments in it only.
  assert.equal((await srv.api('POST', '/api/v1/departments', { id: 'x', name: 'X', institution_id: 'east' }, scopedAdmin)).status, 403);
  assert.equal((await srv.api('POST', '/api/v1/departments', { id: 'cardio', name: 'Cardiology' }, scopedAdmin)).status, 403);
  const { institutions } = await ok(await srv.api('GET', '/api/v1/institutions', undefined, admin));
  assert.deepEqual(institutions.map((i) => i.id), [HOSP, 'east', 'west']);
  assert.deepEqual(srv.sql("SELECT id FROM departments WHERE id = 'x'"), []);
});

test('a doctor whose token names another institution is refused', async () => {
  await assert.rejects(srv.client('d1', 'doctor', { inst: 'west' }),
    (e) => e.code === 'forbidden' && /institution west.*cardio belongs to demo-hospital/.test(e.message));
  const rest = await srv.api('GET', '/api/v1/me', undefined, srv.token('dw', 'doctor', { inst: HOSP }));
  assert.equal(rest.status, 403);
  assert.match(rest.json.error.message, /belongs to west/);
  // Its own institution, named or not, is fine.
  const dw = await srv.client('dw', 'doctor', { inst: 'west' });
  assert.equal(dw.hello.institution, 'west');
  const d1 = await srv.client('d1', 'doctor');
  assert.equal(d1.hello.institution, HOSP);
  const me = await ok(await srv.api('GET', '/api/v1/me', undefined, srv.token('dw', 'doctor')));
  assert.equal(me.institution, 'west');
  await assert.rejects(srv.client('s-x', 'supervisor', { inst: 'nowhere' }),
    (e) => e.code === 'forbidden' && /nowhere/.test(e.message));
  await dw.close();
  await d1.close();
});

test('a shift in another institution\'s department is refused', async () => {
  const r = await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'west-im', start: later(2), end: later(3) }, admin);
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /another institution/);
  assert.deepEqual(srv.sql("SELECT id FROM shifts WHERE doctor_id = 'd1' AND dept_id = 'west-im'"), []);
});

test('a supervisor scoped to an institution sees only its part; unscoped sees all', async () => {
  const d1 = await srv.client('d1', 'doctor');
  const dw = await srv.client('dw', 'doctor');
  await d1.request('doctor.status', { status: 'available' });
  const p1 = await srv.client('p1', 'patient');
  const p2 = await srv.client('p2', 'patient');
  const core = await p1.request('checkin', { dept: 'cardio' });
  const west = await p2.request('checkin', { dept: 'west-im' });
  await d1.waitFor('visit.offer', (m) => m.visit_id === core.visit_id);
  await d1.request('visit.accept', { visit_id: core.visit_id });
  await p1.waitFor('visit.state', (m) => m.state === 'active');

  const sw = await srv.client('sw', 'supervisor', { inst: 'west' });
  assert.equal(sw.hello.institution, 'west');
  await sw.request('overview.subscribe');
  const ov = await sw.waitFor('overview', (m) => m.visits.length > 0);
  assert.equal(ov.institution, 'west');
  assert.deepEqual(ov.departments.map((d) => d.id), ['west-im']);
  assert.deepEqual(ov.visits.map((v) => v.id), [west.visit_id]);
  assert.deepEqual(ov.doctors.map((d) => d.id), ['dw']);
  assert.ok(ov.alerts.every((a) => a.visit_id === west.visit_id), JSON.stringify(ov.alerts));
  assert.equal(ov.feed, undefined);

  const all = await srv.client('s-all', 'supervisor');
  assert.equal(all.hello.institution, null);
  await all.request('overview.subscribe');
  const ova = await all.waitFor('overview', (m) => m.visits.length === 2);
  assert.equal(ova.institution, null);
  assert.deepEqual(ova.departments.map((d) => [d.id, d.institution_id]), [['cardio', HOSP], ['west-im', 'west']]);
  assert.deepEqual(ova.doctors.map((d) => d.id).sort(), ['d1', 'dw']);

  await assert.rejects(sw.request('visit.watch', { visit_id: core.visit_id }),
    (e) => e.code === 'forbidden' && /another institution/.test(e.message));
  const denied = srv.sql(`SELECT outcome, detail FROM audit_log WHERE action = 'visit.watch' AND actor_id = 'sw'`);
  assert.deepEqual(denied, [{ outcome: 'denied', detail: 'another institution' }]);
  await all.request('visit.watch', { visit_id: core.visit_id });
  await all.request('visit.unwatch');

  // REST: the scoped supervisor's visits, records and audit are its institution's.
  const swt = srv.token('sw', 'supervisor', { inst: 'west' });
  const { visits } = await ok(await srv.api('GET', '/api/v1/visits', undefined, swt));
  assert.deepEqual(visits.map((v) => v.id), [west.visit_id]);
  const allVisits = await ok(await srv.api('GET', '/api/v1/visits', undefined, srv.token('s-all', 'supervisor')));
  assert.equal(allVisits.visits.length, 2);
  await ok(await srv.api('GET', `/api/v1/visits/${west.visit_id}`, undefined, swt));
  for (const path of [`/api/v1/visits/${core.visit_id}`, `/api/v1/visits/${core.visit_id}/fhir`,
    `/api/v1/visits/${core.visit_id}/chain`, `/api/v1/audit`, `/api/v1/audit?target=${core.visit_id}`]) {
    const r = await srv.api('GET', path, undefined, swt);
    assert.equal(r.status, 403, `${path}: ${r.text}`);
  }
  const { audit } = await ok(await srv.api('GET', `/api/v1/audit?target=${west.visit_id}`, undefined, swt));
  assert.ok(audit.length >= 1);
  assert.ok(audit.every((a) => a.target === west.visit_id));
  const rov = await ok(await srv.api('GET', '/api/v1/overview', undefined, swt));
  assert.deepEqual(rov.visits.map((v) => v.id), [west.visit_id]);
  // The figures too: its institution's, and another's refused.
  assert.equal((await srv.api('GET', `/api/v1/figures?by=institution&institution=${HOSP}`, undefined, swt)).status, 403);
  const fig = await ok(await srv.api('GET', '/api/v1/figures?by=institution', undefined, swt));
  const allFig = await ok(await srv.api('GET', '/api/v1/figures?by=institution', undefined, srv.token('s-all', 'supervisor')));
  assert.ok(JSON.stringify(allFig).includes(`"${HOSP}"`), JSON.stringify(allFig)); // the core's accept counts
  assert.ok(!JSON.stringify(fig).includes(`"${HOSP}"`), JSON.stringify(fig));
  // The patient's course: the county's supervisor reads its own patient's, not the core's.
  assert.equal((await srv.api('GET', '/api/v1/patients/p2/timeline', undefined, swt)).status, 200);
  assert.equal((await srv.api('GET', '/api/v1/patients/p1/timeline', undefined, swt)).status, 403);
  assert.equal((await srv.api('GET', '/api/v1/patients/p1/timeline', undefined, srv.token('s-all', 'supervisor'))).status, 200);
  const reads = srv.sql(`SELECT outcome FROM audit_log WHERE actor_id = 'sw' AND action = 'visit.read'`);
  assert.deepEqual(reads.map((r) => r.outcome).sort(), ['denied', 'ok']);

  for (const c of [d1, dw, p1, p2, sw, all]) await c.close();
});

test('the regulator event carries the visit\'s institution with its organisation code', async () => {
  await waitUntil('check-in events', () =>
    srv.sql("SELECT count(*) AS n FROM outbox WHERE type = 'visit.checked_in'")[0].n >= 2);
  const rows = srv.sql("SELECT payload FROM outbox WHERE type = 'visit.checked_in' ORDER BY seq");
  const byDept = Object.fromEntries(rows.map((r) => JSON.parse(r.payload)).map((d) => [d.department_id, d.institution]));
  assert.deepEqual(byDept['west-im'], { id: 'west', name: 'County West Hospital', org_code: 'ORG-WEST' });
  assert.deepEqual(byDept.cardio, { id: HOSP, name: 'Demo Internet Hospital', org_code: 'ORG-CORE' });
});

test('copy-week: a week\'s shifts to the next, once; an overlap refused with nothing written', async () => {
  const sw = srv.token('sw', 'supervisor', { inst: 'west' });
  const week = Date.parse('2027-03-01T00:00:00Z'); // a Monday
  const at = (day, h) => new Date(week + day * 86400e3 + h * 3600e3).toISOString();
  for (const [day, from, to] of [[0, 8, 12], [2, 13, 17]])
    await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: 'dw', dept_id: 'west-im', start: at(day, from), end: at(day, to), capacity: 2 }, sw), 201);
  // The core's shift in that week is not the county supervisor's to copy or add.
  await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'cardio', start: at(1, 8), end: at(1, 12) }, admin), 201);
  assert.equal((await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'cardio', start: at(3, 8), end: at(3, 12) }, sw)).status, 403);

  const first = await ok(await srv.api('POST', '/api/v1/shifts/copy-week', { from: new Date(week).toISOString() }, sw));
  assert.deepEqual(first, { copied: 2, skipped: 0 });
  const again = await ok(await srv.api('POST', '/api/v1/shifts/copy-week', { from: week }, sw));
  assert.deepEqual(again, { copied: 0, skipped: 2 });
  const next = srv.sql(`SELECT doctor_id, dept_id, start_at, end_at, capacity FROM shifts
    WHERE start_at >= ${week + 7 * 86400e3} AND start_at < ${week + 14 * 86400e3} ORDER BY start_at`);
  assert.deepEqual(next, [
    { doctor_id: 'dw', dept_id: 'west-im', start_at: week + 7 * 86400e3 + 8 * 3600e3, end_at: week + 7 * 86400e3 + 12 * 3600e3, capacity: 2 },
    { doctor_id: 'dw', dept_id: 'west-im', start_at: week + 9 * 86400e3 + 13 * 3600e3, end_at: week + 9 * 86400e3 + 17 * 3600e3, capacity: 2 },
  ]);

  // The week after: dw already has a different shift on the Monday that the
  // copy would overlap: refused, naming it, and the Wednesday not copied either.
  await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: 'dw', dept_id: 'west-im', start: at(14, 10), end: at(14, 18) }, sw), 201);
  const clash = await srv.api('POST', '/api/v1/shifts/copy-week', { from: week + 7 * 86400e3 }, sw);
  assert.equal(clash.status, 409, clash.text);
  assert.match(clash.json.error.message, /^dw's shift from 2027-03-15T08:00:00.000Z would overlap shift-/);
  assert.deepEqual(srv.sql(`SELECT count(*) AS n FROM shifts WHERE start_at >= ${week + 14 * 86400e3}`), [{ n: 1 }]);
  assert.equal((await srv.api('POST', '/api/v1/shifts/copy-week', { from: 'last week' }, sw)).status, 400);
  assert.equal((await srv.api('POST', '/api/v1/shifts/copy-week', { from: week }, srv.token('dw', 'doctor'))).status, 403);
  const audit = srv.sql("SELECT outcome FROM audit_log WHERE action = 'shift.copy_week' ORDER BY id");
  assert.deepEqual(audit.map((a) => a.outcome), ['ok', 'ok', 'denied']);
});

test('a supervisor of one institution lists its shifts, bookings and consultations only', async () => {
  const swt = srv.token('sw-list', 'supervisor', { inst: 'west' });
  const allt = srv.token('s-all', 'supervisor');
  const day = Date.parse('2027-05-03T00:00:00Z');
  const at = (h) => new Date(day + h * 3600e3).toISOString();
  await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: 'd1', dept_id: 'cardio', start: at(8), end: at(12) }, admin), 201);
  await ok(await srv.api('POST', '/api/v1/shifts', { doctor_id: 'dw', dept_id: 'west-im', start: at(8), end: at(12) }, admin), 201);
  const range = `from=${at(0)}&to=${at(24)}`;
  const mine = await ok(await srv.api('GET', `/api/v1/shifts?${range}`, undefined, swt));
  assert.deepEqual(mine.shifts.map((s) => s.dept_id), ['west-im']);
  const all = await ok(await srv.api('GET', `/api/v1/shifts?${range}`, undefined, allt));
  assert.deepEqual(all.shifts.map((s) => s.dept_id).sort(), ['cardio', 'west-im']);
  // Asking for the other institution's department by name gets nothing either.
  const other = await ok(await srv.api('GET', `/api/v1/shifts?${range}&dept=cardio`, undefined, swt));
  assert.deepEqual(other.shifts, []);

  // Bookings: the core's first, so a limit of 1 applied before the scope would starve it.
  await ok(await srv.api('POST', '/api/v1/appointments', { patient_id: 'pa', dept_id: 'cardio', slot: at(9) }, admin), 201);
  await ok(await srv.api('POST', '/api/v1/appointments', { patient_id: 'pb', dept_id: 'west-im', slot: at(10) }, admin), 201);
  const appts = await ok(await srv.api('GET', `/api/v1/appointments?${range}&limit=1`, undefined, swt));
  assert.deepEqual(appts.appointments.map((a) => [a.patient_id, a.dept_id]), [['pb', 'west-im']]);
  const allAppts = await ok(await srv.api('GET', `/api/v1/appointments?${range}`, undefined, allt));
  assert.deepEqual(allAppts.appointments.map((a) => a.dept_id), ['cardio', 'west-im']);

  // A consultation between two core departments (for p1, whom d1 saw above) is not the
  // county's to list or read.
  await ok(await srv.api('POST', '/api/v1/departments', { id: 'neuro', name: 'Neurology' }, admin), 201);
  const c = await ok(await srv.api('POST', '/api/v1/consultations', { patient_id: 'p1', dept_id: 'neuro',
    reason: 'r', question: 'q', window_start: at(30), window_end: at(34) }, srv.token('d1', 'doctor')), 201);
  const id = c.consultation_id;
  const west = await ok(await srv.api('GET', '/api/v1/consultations', undefined, swt));
  assert.ok(!west.consultations.some((x) => x.consultation_id === id), JSON.stringify(west));
  assert.equal((await srv.api('GET', `/api/v1/consultations/${id}`, undefined, swt)).status, 403);
  const core = await ok(await srv.api('GET', '/api/v1/consultations', undefined, allt));
  assert.ok(core.consultations.some((x) => x.consultation_id === id));
});
