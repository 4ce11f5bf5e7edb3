// tianjin_platform.mjs - a stand-in for the Tianjin internet-hospital
// supervision platform (自建平台数据监管接口规范 v1.0, as its SDK implements
// it), for the tianjin profile's tests. Node built-ins only (Node's crypto
// has SM3 and SM4 through OpenSSL 3).
//
// The contract it enforces (docs/regulator-feed.md, "The tianjin profile"):
// - POST, body = lowercase hex of SM4-CBC(appSecret, IV, ISO 7816-4 padded
//   JSON array);
// - headers X-Service-Id, X-Service-Method, X-Ca-Key, X-Ca-Nonce,
//   X-Ca-Timestamp (ms), X-Content-MD5 (= uppercase hex SM3 of the body),
//   X-Ca-Signature-Headers, X-Ca-Signature (= SM3 of the headers named in
//   X-Ca-Signature-Headers, sorted, "name:value" joined by "&");
// - answers HTTP 200 {"code":C,"body":{"msgCode":M,"msg":...}}: code 40004
//   wrong key, 40010 bad signature or reused nonce, 40011 timestamp outside
//   the window, 40001 body that does not decrypt or parse; msgCode -99
//   missing fields (msg lists them with "|"), -1 a record it refuses (a
//   patient certificate it does not know, a rating whose visit it has not
//   accepted); one bad record rejects the whole batch and nothing of it is
//   kept; 200/200 accepted.
//
// In-process use: const p = await startPlatform({ appKey, appSecret, organId });
//   p.url; p.mode = 'ok' | 'down' (503) | 'reset' (connection destroyed);
//   p.hangNextRecords = true (accept and keep the next records batch, never
//   answer: the sender dies or times out not knowing); p.state; p.close().

import crypto from 'node:crypto';
import http from 'node:http';

export const DEFAULT_IV = 'abcd0863ef9087ced675985321bedf67';

export function sm3Upper(data) {
  return crypto.createHash('sm3').update(data).digest('hex').toUpperCase();
}

export function sm4Decrypt(hex, secretHex, ivHex = DEFAULT_IV) {
  if (!/^([0-9a-fA-F]{32})+$/.test(hex)) throw new Error('body is not whole SM4 blocks of hex');
  const d = crypto.createDecipheriv('sm4-cbc', Buffer.from(secretHex, 'hex'), Buffer.from(ivHex, 'hex'));
  d.setAutoPadding(false);
  const buf = Buffer.concat([d.update(Buffer.from(hex, 'hex')), d.final()]);
  let end = buf.length;
  while (end > buf.length - 16 && buf[end - 1] === 0) end--;
  if (buf[end - 1] !== 0x80) throw new Error('bad ISO 7816-4 padding');
  return buf.subarray(0, end - 1).toString('utf8');
}

const TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;

const REQUIRED = {
  uploadReferralIndicators: ['organID', 'bussID', 'returnVisitType', 'deptID', 'patientCertType',
    'patientCertID', 'applyDate', 'endDate', 'answerFlag', 'updateTime'],
  uploadBusinessInfoAfter: ['organID', 'evaluateID', 'bussID', 'businessType', 'deptID', 'doctorId',
    'doctorCertID', 'satisfaction', 'evaluationTime', 'updateTime'],
};
const ANSWERED = ['doctorId', 'doctorCertID', 'mainDiagnoseCode', 'startDate'];
const REFUSED = ['refuseTime', 'refuseReason'];

export async function startPlatform(opts) {
  const appKey = opts.appKey;
  const secret = opts.appSecret;
  const iv = opts.iv ?? DEFAULT_IV;
  const windowMs = opts.windowMs ?? 5 * 60 * 1000;
  const p = {
    mode: 'ok',
    hangNextRecords: false,
    state: {
      requests: 0,
      visits: new Map(), // bussID -> times accepted
      ratings: new Map(), // bussID -> times accepted
      records: new Map(), // bussID -> the last visit record accepted
      ratingBeforeVisit: 0, // ratings refused because their visit was not accepted
      checkins: [], // platform-local dates of accepted check-ins
      rejectedBatches: [], // {method, size, msgCode, msg}
      authFailures: [], // {code, why}
      hung: 0,
    },
  };
  const nonces = new Map(); // nonce -> time seen
  const sockets = new Set();
  const hungRes = [];

  const answer = (res, code, msgCode, msg) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ code, body: { msgCode, msg } }));
  };

  function authenticate(req, body) {
    const h = req.headers;
    if (h['x-ca-key'] !== appKey) return [40004, 'appKey does not match'];
    const names = String(h['x-ca-signature-headers'] ?? '').split(',').filter(Boolean).sort();
    for (const n of ['x-ca-key', 'x-ca-nonce', 'x-ca-timestamp', 'x-content-md5', 'x-service-id',
      'x-service-method']) if (!names.includes(n)) return [40010, `${n} not signed`];
    const signed = names.map((n) => `${n}:${h[n] ?? ''}`).join('&');
    if (sm3Upper(signed) !== h['x-ca-signature']) return [40010, 'signature does not verify'];
    if (sm3Upper(body) !== h['x-content-md5']) return [40010, 'X-Content-MD5 does not match the body'];
    const ts = Number(h['x-ca-timestamp']);
    if (!Number.isFinite(ts) || Math.abs(Date.now() - ts) > windowMs) return [40011, 'request expired'];
    for (const [n, t] of nonces) if (Date.now() - t > windowMs) nonces.delete(n);
    if (nonces.has(h['x-ca-nonce'])) return [40010, 'nonce reused'];
    nonces.set(h['x-ca-nonce'], Date.now());
    return null;
  }

  // The reason the platform refuses rec, or null.
  function refuse(method, rec) {
    const missing = (REQUIRED[method] ?? []).filter((f) => rec[f] === undefined || rec[f] === '');
    if (method === 'uploadReferralIndicators') {
      const extra = rec.answerFlag === '1' ? ANSWERED : REFUSED;
      missing.push(...extra.filter((f) => rec[f] === undefined || rec[f] === ''));
    }
    if (missing.length) return [-99, missing.join('|')];
    if (rec.organID !== opts.organId) return [-1, 'organID is not this institution'];
    for (const f of ['applyDate', 'startDate', 'endDate', 'refuseTime', 'evaluationTime', 'updateTime'])
      if (rec[f] !== undefined && !TIME.test(rec[f])) return [-1, `${f} is not yyyy-MM-dd HH:mm:ss`];
    if (method === 'uploadReferralIndicators') {
      if (rec.returnVisitType !== '3') return [-1, 'returnVisitType must be 3 (video)'];
      if (String(rec.patientCertID).startsWith('DENY')) return [-1, 'patientCertID is not registered'];
    } else if (method === 'uploadBusinessInfoAfter') {
      if (!Number.isInteger(rec.satisfaction) || rec.satisfaction < 1 || rec.satisfaction > 5)
        return [-1, 'satisfaction must be 1-5'];
      if (!p.state.visits.has(rec.bussID)) {
        p.state.ratingBeforeVisit++;
        return [-1, 'the business of this rating was not uploaded'];
      }
    }
    return null;
  }

  function handle(req, res, body) {
    p.state.requests++;
    if (p.mode === 'down') return res.writeHead(503).end('down');
    const auth = authenticate(req, body);
    if (auth) {
      p.state.authFailures.push({ code: auth[0], why: auth[1] });
      return answer(res, auth[0], auth[0], auth[1]);
    }
    let records;
    try {
      records = JSON.parse(sm4Decrypt(body, secret, iv));
      if (!Array.isArray(records)) throw new Error('not an array');
    } catch (e) {
      return answer(res, 40001, 40001, `body: ${e.message}`);
    }
    const method = req.headers['x-service-method'];
    if (method === 'pushMedicalDispute') {
      const day = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
      p.state.checkins.push(day);
      return answer(res, 200, 200, 'ok');
    }
    if (!REQUIRED[method]) return answer(res, 40001, 40001, `unknown method ${method}`);
    if (records.length === 0) return answer(res, 200, -98, 'no data');
    for (const rec of records) {
      const why = refuse(method, rec);
      if (why) {
        p.state.rejectedBatches.push({ method, size: records.length, msgCode: why[0], msg: why[1] });
        return answer(res, 200, why[0], why[1]);
      }
    }
    const into = method === 'uploadReferralIndicators' ? p.state.visits : p.state.ratings;
    for (const rec of records) into.set(rec.bussID, (into.get(rec.bussID) ?? 0) + 1);
    if (into === p.state.visits) for (const rec of records) p.state.records.set(rec.bussID, rec);
    if (p.hangNextRecords) {
      p.hangNextRecords = false;
      p.state.hung++;
      hungRes.push(res);
      return;
    }
    answer(res, 200, 200, 'ok');
  }

  const server = http.createServer((req, res) => {
    if (p.mode === 'reset') return req.socket.destroy();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  p.url = `http://127.0.0.1:${server.address().port}/openapi/api`;
  p.waitFor = async (cond, capMs, what) => {
    const until = Date.now() + capMs;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(p.summary())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  p.summary = () => ({
    requests: p.state.requests,
    visits: p.state.visits.size,
    ratings: p.state.ratings.size,
    checkins: p.state.checkins.length,
    rejected: p.state.rejectedBatches.length,
    auth: p.state.authFailures,
  });
  p.close = async () => {
    for (const r of hungRes) r.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return p;
}
