// signaling.js - the telemed.v1 connection of a page: WSS to /ws, hello with
// the token, requests answered by id, server pushes as events, automatic
// reconnect with exponential backoff and jitter, and a ping that notices a
// dead connection faster than TCP does.
//
// Events (addEventListener): 'state' (detail: {state, attempt, delay_ms, error}),
// 'hello' (detail: the hello result; fired on every (re)connect, check
// detail.resumed), 'push' (detail: the message) and one event per push type
// (e.g. 'visit.state').
//
// States: idle, connecting, open, reconnecting, auth_failed, replaced, closed.
//
// Other nodes (docs/protocol.md, "Several nodes"): hello names this node and
// the others' URLs. When the node says it drains (server.draining, close
// 4503, or a node_draining error), or it cannot be reached twice in a row,
// the next URL is tried, with the same backoff; the state events then carry
// moving: true, and the 'open' after a move carries moved: true and the node.
// A visit held by another node (session.move) is followed at once and
// quietly: the states are 'connecting' then 'open' with placed: true. A
// page for which only some moves are meant (a supervisor's: the watch it
// asked for, not its wall's) says which with followMove(push).

export class SignalingError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const PING_EVERY_MS = 15000;
const PING_TIMEOUT_MS = 10000;
// Failed attempts at one node before the next is tried.
const TRIES_PER_NODE = 2;
const CLOSE_DRAINING = 4503;

export class Signaling extends EventTarget {
  // credentials: a function returning the hello fields instead of the
  // token (a guest's link code, then their resume secret).
  constructor({ token, url, ua, credentials = null, followMove = () => true } = {}) {
    super();
    this.token = token;
    this.credentials = credentials;
    this.followMove = followMove;
    const loc = window.location;
    this.url = url || `${loc.protocol === 'http:' ? 'ws' : 'wss'}://${loc.host}/ws`;
    this.ua = ua || `telemed-web/1 ${navigator.userAgent}`.slice(0, 250);
    this.state = 'idle';
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.hello = null;
    this.wanted = false;
    this.urls = [this.url]; // this node first, then hello's nodes
    this.failsHere = 0;
    this.moving = false; // told to leave, or gave up on this node
    this.movedFrom = null; // the node the last hello came from, once moving
    this.placing = false; // following a session.move: reconnect at once, quietly
    this.quietOpen = false; // the next 'open' ends such a move
  }

  // Hello's other nodes join the list after the ones known already.
  learnNodes(nodes) {
    if (!Array.isArray(nodes)) return;
    for (const u of nodes) if (typeof u === 'string' && !this.urls.includes(u)) this.urls.push(u);
  }

  // The next node in turn (back to the first after the last).
  nextNode() {
    if (this.urls.length < 2) return;
    const at = this.urls.indexOf(this.url);
    this.url = this.urls[(at + 1) % this.urls.length];
    this.failsHere = 0;
  }

  // This node drains: leave it now for the next one.
  leave() {
    if (!this.moving && this.hello) this.movedFrom = this.hello.node || null;
    this.moving = true;
    this.nextNode();
    this.drop();
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, attempt: this.attempt, ...extra } }));
  }

  // Opens the connection; resolves with the first hello result. Later
  // reconnects fire 'hello' events again.
  start() {
    this.wanted = true;
    return new Promise((resolve, reject) => {
      const onHello = (e) => { cleanup(); resolve(e.detail); };
      const onState = (e) => {
        if (e.detail.state === 'auth_failed' || e.detail.state === 'replaced') {
          cleanup();
          reject(new SignalingError(e.detail.code || 'unauthorized', e.detail.error));
        }
      };
      const cleanup = () => {
        this.removeEventListener('hello', onHello);
        this.removeEventListener('state', onState);
      };
      this.addEventListener('hello', onHello);
      this.addEventListener('state', onState);
      this.connect();
    });
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, 'bye');
    this.setState('closed');
  }

  // The node that holds our visit now (session.move): close ws and say
  // hello there at once. Only a wss URL of the same shape as ours. Taken
  // now, so that a close of ws coming first (the refused hello of a page
  // sent on at hello) goes there too, not to the next node in turn; ws is
  // closed once the push has been seen.
  moveTo(ws, url) {
    if (typeof url !== 'string' || !/^wss?:\/\/[^/\s]+\/ws$/.test(url)) return;
    if (!this.urls.includes(url)) this.urls.unshift(url);
    this.url = url;
    this.failsHere = 0;
    this.placing = true;
    setTimeout(() => { if (ws === this.ws) this.drop(); }, 0);
  }

  connect({ quiet = false } = {}) {
    clearTimeout(this.retryTimer);
    this.setState(quiet || (this.attempt === 0 && !this.hello) ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new WebSocket(this.url, 'telemed.v1');
    } catch (e) {
      this.scheduleRetry(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (ev) => this.onMessage(ws, ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev);
    ws.onerror = () => { /* onclose follows with the details */ };
  }

  async onOpen(ws) {
    if (ws !== this.ws) return;
    try {
      const creds = this.credentials ? this.credentials() : { token: this.token };
      const data = await this.request('hello', { ...creds, ua: this.ua });
      const moved = this.moving;
      const placed = this.quietOpen;
      this.quietOpen = false;
      this.hello = data;
      this.attempt = 0;
      this.failsHere = 0;
      this.moving = false;
      this.learnNodes(data.nodes);
      this.setState('open', { resumed: !!data.resumed, moved, placed, node: data.node || null, from: moved ? this.movedFrom : null });
      this.startPing(ws);
      this.dispatchEvent(new CustomEvent('hello', { detail: data }));
    } catch (e) {
      if (e.code === 'unauthorized' || e.code === 'forbidden') {
        // A refused token does not get better by retrying.
        this.wanted = false;
        this.setState('auth_failed', { error: e.message, code: e.code });
        ws.close(1000, 'auth');
      } else {
        ws.close(4000, 'hello failed');
      }
    }
  }

  startPing(ws) {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
      this.request('ping', {}, PING_TIMEOUT_MS).catch(() => {
        // No answer: the path is dead even if TCP has not noticed yet.
        if (ws === this.ws) this.drop();
      });
    }, PING_EVERY_MS);
  }

  // Closes the socket as a network failure would; reconnects follow.
  drop() {
    if (!this.ws) return;
    const ws = this.ws;
    try { ws.close(4001, 'dropped'); } catch { /* closing anyway */ }
    this.onClose(ws, { code: 4001, reason: 'dropped' });
  }

  onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    for (const [, p] of this.pending) p.reject(new SignalingError('offline', 'connection lost'));
    this.pending.clear();
    if (!this.wanted) return;
    if (this.placing) {
      this.placing = false;
      this.quietOpen = true;
      this.connect({ quiet: true });
      return;
    }
    this.quietOpen = false;
    if (ev && ev.code === CLOSE_DRAINING) {
      this.leaveAfterClose();
    } else if (++this.failsHere >= TRIES_PER_NODE && this.urls.length > 1) {
      if (!this.moving && this.hello) this.movedFrom = this.hello.node || null;
      this.moving = true;
      this.nextNode();
    }
    this.scheduleRetry(ev && ev.reason);
  }

  leaveAfterClose() {
    if (!this.moving && this.hello) this.movedFrom = this.hello.node || null;
    this.moving = true;
    this.nextNode();
  }

  scheduleRetry(error) {
    this.attempt++;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.attempt - 1));
    // Full jitter on half the delay, so a restarted server is not hit by
    // every page at the same instant.
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.setState('reconnecting', { delay_ms: delay, error, moving: this.moving });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // Reconnect now (the "retry now" button).
  retryNow() {
    if (this.state === 'open') return;
    this.wanted = true;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  onMessage(ws, text) {
    if (ws !== this.ws) return;
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (m.re !== undefined && m.re !== null && this.pending.has(m.re)) {
      const p = this.pending.get(m.re);
      this.pending.delete(m.re);
      if (m.type === 'error' && m.code === 'node_draining') setTimeout(() => this.leave(), 0);
      if (m.type === 'error') p.reject(Object.assign(new SignalingError(m.code, m.message), { reason: m.reason }));
      else p.resolve(m.data === undefined ? null : m.data);
      return;
    }
    if (m.type === 'session.replaced') {
      this.wanted = false;
      this.setState('replaced');
    }
    if (m.type === 'session.move' && this.followMove(m)) this.moveTo(ws, m.url);
    if (m.type === 'server.draining') {
      // The close (4503) follows; the next node is tried then.
      this.learnNodes(m.nodes);
      if (!this.moving && this.hello) this.movedFrom = this.hello.node || null;
      this.moving = true;
    }
    this.dispatchEvent(new CustomEvent('push', { detail: m }));
    if (m.type) this.dispatchEvent(new CustomEvent(m.type, { detail: m }));
  }

  // Sends a request; resolves with its data or rejects with a SignalingError.
  request(type, fields = {}, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new SignalingError('offline', 'not connected'));
        return;
      }
      const id = String(this.nextId++);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalingError('timeout', `no answer to ${type}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (d) => { clearTimeout(timer); resolve(d); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  on(type, fn) {
    const h = (e) => fn(e.detail);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }
}

// REST under /api/v1 with the same token as Bearer.
export async function api(token, path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  try { json = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const code = (json && (json.code || (json.error && json.error.code))) || `http_${res.status}`;
    const message = (json && (json.message || (json.error && json.error.message))) || res.statusText;
    const reason = json && json.error && json.error.reason;
    throw Object.assign(new SignalingError(code, message), reason ? { reason } : {});
  }
  return json;
}
