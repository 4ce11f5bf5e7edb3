// docs/protocol.md and docs/api.md against the code and a running server:
// every request handler, push, error code and REST route is documented, every
// JSON example parses, and every push example has exactly the fields of a
// push of that type that the real server sends in a scripted visit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, setupHospital, Client, sleep } from './lib/server.mjs';

const SRC = process.env.TELEMED_SRC_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (p) => readFileSync(join(SRC, p), 'utf8');
const protocol = read('docs/protocol.md');
const api = read('docs/api.md');
// The signaling module's rooms, each with its handler table and pushes.
const signaling = readdirSync(join(SRC, 'signaling')).filter((f) => f.endsWith('.c'))
  .map((f) => read(`signaling/${f}`)).join('\n');
const handled = new Set(['hello', ...[...signaling.matchAll(/\{"([a-z._]+)", handle_[a-z_]+\}/g)].map((m) => m[1])]);
// Pushes built with jansson ("type", "x") or formatted by hand (\"type\":\"x\").
const pushed = new Set([...signaling.matchAll(/"type", "([a-z._]+)"|\\"type\\":\\"([a-z._]+)\\"/g)]
  .map((m) => m[1] || m[2]));
// A request carries an id and a handled type (visit.participant's "id" is a user id).
const isRequest = (e) => e.id !== undefined && handled.has(e.type);

// Section headings ("### a / b") name the messages they document.
const headings = protocol.split('\n').filter((l) => l.startsWith('### '))
  .flatMap((l) => l.slice(4).split('/').map((s) => s.trim()));

// Every object in the ```json blocks: a block is one object, or one per line.
function jsonExamples(md) {
  const out = [];
  for (const m of md.matchAll(/```json\n([\s\S]*?)```/g)) {
    const text = m[1].trim();
    try {
      out.push(JSON.parse(text));
    } catch {
      for (const line of text.split('\n')) out.push(JSON.parse(line));
    }
  }
  return out;
}

test('every request type the server handles has a section', () => {
  const types = [...handled];
  assert.ok(types.length > 15, `found only ${types.length} handlers`);
  for (const t of types) assert.ok(headings.includes(t), `no section for request ${t}`);
});

test('every push type the server sends has a section', () => {
  const types = new Set(pushed);
  for (const t of ['result', 'error']) types.delete(t);
  assert.ok(types.size > 10, `found only ${types.size} push types`);
  for (const t of types) assert.ok(headings.includes(t), `no section for push ${t}`);
});

test('every stable error code is documented in both documents', () => {
  const codes = new Set([...read('core/common.c').matchAll(/\{TM_E[A-Z]+, "([a-z_]+)"/g)].map((m) => m[1]));
  assert.ok(codes.size >= 7);
  for (const c of codes) {
    assert.ok(protocol.includes(`| \`${c}\` |`), `protocol.md misses error code ${c}`);
    assert.ok(api.includes(`| \`${c}\` |`), `api.md misses error code ${c}`);
  }
});

test('every REST route is documented', () => {
  const names = [...read('server/api.c').matchAll(/\{"([a-z-]+)", tm__api_[a-z_]+\}/g)].map((m) => m[1]);
  assert.ok(names.length >= 9);
  for (const n of names) assert.ok(api.includes(`/api/v1/${n}`), `api.md misses /api/v1/${n}`);
  for (const p of ['/healthz', '/metrics']) assert.ok(api.includes(`### GET ${p}`), p);
});

test('every JSON example parses and requests name a handled type', () => {
  const examples = jsonExamples(protocol);
  assert.ok(examples.length > 50, `only ${examples.length} examples`);
  for (const e of examples) {
    if (typeof e.type !== 'string') continue;
    assert.ok(handled.has(e.type) || pushed.has(e.type), `example of unknown type ${e.type}`);
    if (e.type === 'result') assert.ok(typeof e.re === 'string' && typeof e.data === 'object');
    if (e.type === 'error') assert.ok(typeof e.code === 'string' && 're' in e);
  }
  jsonExamples(api); // throws on a broken block
});

test('the permission table of protocol.md is the one in signaling/party.c', () => {
  const code = new Map([...read('signaling/party.c').matchAll(/\[(TM_ACT_[A-Z_]+)\] = \{([^}]*)\}/g)]
    .map((m) => [m[1], m[2].split(',').map((x) => x.trim() === 'true')]));
  assert.equal(code.size, 11);
  const lines = protocol.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| action | patient | attending | consulting |'));
  assert.ok(start > 0, 'no permission table');
  const rows = [];
  for (let i = start + 2; lines[i] && lines[i].startsWith('|'); i++)
    rows.push(lines[i].split('|').slice(1, -1).map((c) => c.trim()));
  const byLabel = (prefix) => rows.find((r) => r[0].startsWith(prefix)).slice(1);
  const ticks = (cells) => cells.map((c) => c.includes('✓'));
  const simple = { 'invite staff': 'TM_ACT_INVITE', 'cancel own invite': 'TM_ACT_INVITE_CANCEL',
    'create / revoke / list guest links': 'TM_ACT_GUEST_LINK', 'remove a participant': 'TM_ACT_REMOVE',
    'leave without ending': 'TM_ACT_LEAVE', 'end the visit': 'TM_ACT_END', 'chat': 'TM_ACT_CHAT',
    'see the patient card': 'TM_ACT_PATIENT_CARD', 'media send + receive': 'TM_ACT_MEDIA' };
  for (const [label, act] of Object.entries(simple))
    assert.deepEqual(ticks(byLabel(label)), code.get(act), label);
  const notes = byLabel('read notes / write notes');
  assert.deepEqual(ticks(notes), code.get('TM_ACT_NOTE_READ'), 'read notes');
  assert.deepEqual(notes.map((c) => c.includes('/') && c.split('/')[1].includes('✓')),
    code.get('TM_ACT_NOTE_WRITE'), 'write notes');
});

// ---- the live part ----------------------------------------------------

let srv;
const seen = new Map(); // push type -> [sorted key list, ...]

function record(c) {
  const on = c.onMessage.bind(c);
  c.onMessage = (m) => {
    if (m.type !== 'result' && m.type !== 'error') {
      const keys = Object.keys(m).sort().join(',');
      if (!seen.has(m.type)) seen.set(m.type, new Set());
      seen.get(m.type).add(keys);
    }
    on(m);
  };
  return c;
}

async function connect(sub, role, extra = {}) {
  const c = record(new Client(srv.url()));
  await c.open();
  c.hello = await c.request('hello', { token: srv.token(sub, role, extra), ua: 'docs-test/1' });
  return c;
}

before(async () => {
  srv = await startServer({ args: ['--offer-timeout-s', '5', '--grace-s', '3',
    '--stun-urls', 'stun:stun.example.org:3478', '--turn-urls', 'turn:turn.example.org:3478',
    '--turn-secret', 'docs-turn-secret',
    // A higher-level member for neurology: the referral down from it to cardio follows levels.
    '--hospital-level', '2A', '--institutions', 'top|Top Hospital|ORG-TOP|3A|hospital'] });
  const admin = await setupHospital(srv, { depts: ['cardio'], doctors: [['d1', 'cardio'], ['d2', 'cardio']] });
  const r = await srv.api('POST', '/api/v1/doctors', { id: 'n1', name: 'Nurse n1', dept_id: 'cardio', kind: 'nurse' }, admin);
  assert.equal(r.status, 201);
  // issue 18 (transfer18): a second department, for a transfer and a referral.
  await setupHospital(srv, { depts: ['neuro'], doctors: [['d5', 'neuro'], ['d6', 'neuro']] });
  const top = await srv.api('POST', '/api/v1/departments', { id: 'neuro', name: 'Dept neuro', institution_id: 'top' }, admin);
  assert.equal(top.status, 201, top.text);
});
after(async () => { if (srv) await srv.stop(); });

test('push examples have the fields the server sends', async () => {
  const d1 = await connect('d1', 'doctor');
  const p1 = await connect('p1', 'patient', { name: 'Patient One' });
  const p2 = await connect('p2', 'patient', { name: 'Patient Two' });
  assert.equal(d1.hello.ice_servers.length, 2);
  assert.match(d1.hello.ice_servers[1].username, /^\d+:doctor:d1$/);
  const c1 = await p1.request('checkin', { dept: 'cardio' });
  const c2 = await p2.request('checkin', { dept: 'cardio', urgent: true });
  await p1.waitFor('queue.position', (m) => m.position === 2);

  await d1.request('doctor.status', { status: 'available' });
  const o2 = await d1.waitFor('visit.offer');
  assert.equal(o2.visit_id, c2.visit_id);
  await d1.request('visit.decline', { visit_id: c2.visit_id });
  await d1.waitFor('visit.offer_cancelled');
  const o1 = await d1.waitFor('visit.offer', (m) => m.visit_id === c1.visit_id);
  await d1.request('visit.accept', { visit_id: o1.visit_id });
  await p1.waitFor('visit.state', (m) => m.state === 'active');

  const sup = await connect('s1', 'supervisor');
  await sup.request('overview.subscribe');
  await sup.waitFor('overview');
  await sup.request('visit.watch', { visit_id: c1.visit_id });
  await p1.waitFor('visit.supervisor');
  await p1.request('chat.send', { visit_id: c1.visit_id, text: 'hello' });
  await d1.waitFor('chat.message');

  const sdpFile = join(SRC, 'tests/media/data/chrome_offer.sdp');
  if (existsSync(sdpFile)) {
    await p1.request('media.offer', { visit_id: c1.visit_id, sdp: readFileSync(sdpFile, 'utf8') });
    await p1.waitFor('media.answer');
    await p1.waitFor('media.candidate');
    await p1.waitFor('media.state');
  }

  // A nurse invited, accepted, then removed: the pushes of a visit of three.
  const n1 = await connect('n1', 'doctor');
  await n1.request('doctor.status', { status: 'away' });
  const inv = await d1.request('visit.invite', { visit_id: c1.visit_id, user_id: 'n1', role: 'nurse' });
  await n1.waitFor('visit.invited');
  await n1.request('visit.invite_answer', { invite_id: inv.invite_id, accept: true });
  await d1.waitFor('visit.invite_ended');
  await p1.waitFor('visit.participants', (m) => m.participants.length === 3);
  await d1.request('visit.remove', { visit_id: c1.visit_id, user_id: 'n1' });
  await n1.waitFor('visit.removed');

  await p1.drop();
  await d1.waitFor('visit.participant', (m) => m.connected === false);
  const p1b = await connect('p1', 'patient');
  await d1.waitFor('visit.participant', (m) => m.connected === true);
  const p1c = await connect('p1', 'patient');
  await p1b.waitFor('session.replaced');

  // d2 lets the urgent patient's offer lapse: offer_cancelled + doctor.status.
  const d2 = await connect('d2', 'doctor');
  await d2.request('doctor.status', { status: 'available' });
  await d2.waitFor('visit.offer');
  await d2.waitFor('doctor.status', (m) => m.status === 'away');

  await d1.request('visit.note', { visit_id: c1.visit_id, text: 'Rest, fluids.', diagnosis_code: 'G44.2', sign: true });
  await p1c.waitFor('visit.note_released');
  // followup18: the follow-up booked in the visit, pushed to the patient.
  await d1.request('visit.followup', { visit_id: c1.visit_id, slot_at: new Date(Date.now() + 86400e3).toISOString() });
  await p1c.waitFor('visit.followup');
  await d1.request('visit.end', { visit_id: c1.visit_id });
  await p1c.waitFor('visit.state', (m) => m.state === 'ended');

  // issue 18 (transfer18): d5 hands p3 to d6 by name; d6 refers p3 to
  // cardiology, whose doctor on duty (d1) declines.
  const d5 = await connect('d5', 'doctor');
  const d6 = await connect('d6', 'doctor');
  await d5.request('doctor.status', { status: 'available' });
  await d6.request('doctor.status', { status: 'away' });
  const p3 = await connect('p3', 'patient');
  const c3 = await p3.request('checkin', { dept: 'neuro' });
  await d5.waitFor('visit.offer', (m) => m.visit_id === c3.visit_id);
  await d5.request('visit.accept', { visit_id: c3.visit_id });
  await d5.request('visit.transfer', { visit_id: c3.visit_id, doctor_id: 'd6', reason: 'epilepsy clinic' });
  await p3.waitFor('visit.transferred');
  await d6.waitFor('visit.offer', (m) => m.visit_id === c3.visit_id);
  await d6.request('visit.accept', { visit_id: c3.visit_id });
  await d6.request('visit.end', { visit_id: c3.visit_id });
  const t6 = srv.token('d6', 'doctor');
  const rf = await srv.api('POST', '/api/v1/referrals', { visit_id: c3.visit_id, direction: 'down',
    to_dept_id: 'cardio', reason: 'follow-up of blood pressure', summary: 'Stable.' }, t6);
  assert.equal(rf.status, 201, rf.text);
  await d1.waitFor('referral.received');
  const no = await srv.api('POST', `/api/v1/referrals/${rf.json.id}/decline`, { reason: 'not ours' }, srv.token('d1', 'doctor'));
  assert.equal(no.status, 200, no.text);
  await d6.waitFor('referral.answered');
  await sleep(300);

  const examples = jsonExamples(protocol).filter((e) => typeof e.type === 'string' &&
    !isRequest(e) && e.type !== 'result' && e.type !== 'error');
  // media.error needs a media core failure, media.quality media that flows
  // (the browser tests see it: web_words, net_outage), media.speaker real
  // audio levels (tests/media), media.renegotiate a browser offering only
  // H.264 (web_codec).
  const notProduced = new Set(['media.error', 'media.quality', 'media.speaker', 'media.renegotiate']);
  // Consultation requests' pushes (issue 18): tests/integration/consultation.test.mjs.
  for (const t of ['consultation.updated', 'consultation.started']) notProduced.add(t);
  // Issue 19: a draining node's push: tests/cluster/drain.test.mjs.
  notProduced.add('server.draining');
  // A visit moving between nodes sharing PostgreSQL: test_cluster_sync, web_node_placement.
  notProduced.add('session.move');
  if (!existsSync(sdpFile)) for (const t of ['media.answer', 'media.candidate', 'media.state', 'media.streams']) notProduced.add(t);
  let compared = 0;
  for (const e of examples) {
    if (notProduced.has(e.type)) continue;
    const live = seen.get(e.type);
    assert.ok(live, `the server sent no ${e.type} in the scripted visit`);
    const keys = Object.keys(e).sort().join(',');
    assert.ok(live.has(keys), `${e.type} example has fields [${keys}], the server sent ${JSON.stringify([...live])}`);
    compared++;
  }
  assert.ok(compared >= 18, `only ${compared} push examples compared`);
  for (const c of [d1, d2, n1, p2, p1c, sup, d5, d6, p3]) await c.close();
});
