// peer.js - the page's one RTCPeerConnection with the server for a visit.
// Every participant is the offerer: the page creates the offer (sendrecv
// camera and microphone, or recvonly transceivers for a supervisor), sends
// media.offer, applies the media.answer push, trickles media.candidate both
// ways, keeps the media path alive (recovery below), and turns getStats()
// into a connection-quality figure.
//
// Recovery, one path whatever broke (issue 14): a watchdog puts together
// what this page sees (bytes arriving on the transport, RTCP included, which
// the server sends every second; ICE and DTLS state) and what the server
// sees of this peer (media.state), and when either says the path is dead it
// restarts ICE, and again while nothing arrives: ICE on a dead path gives up
// too slowly to notice the network's return. Restarts are paced, one offer
// at a time, RESTART_FIRST_MS apart doubling to RESTART_MAX_MS, back to the
// first once connected again: on a saturated link each restart re-keys every
// stream with keyframes the link cannot carry, and restarting again at once
// (11 in 10 s) kept it down. ICE "disconnected" alone is no dead path while
// media arrives (the browser says it after a few lost checks), and a
// recovery the server called for lasts until the server says it is back.
// A restart only resumes media over the DTLS session both ends still hold;
// when the server answers with a new one (it forgot this peer) or ICE comes
// up and nothing arrives, the page makes a fresh RTCPeerConnection.
//
// Visits of more than two: the page asks for more receive slots with
// ensureRecv() as visit.participants grows; recvonly transceivers are added
// (never removed) and a new offer renegotiates the same connection.
//
// Simulcast: the camera goes out in three VP8 layers by rid (a quarter, half
// and full size) and the server gives each receiver the layer that fits its
// link and the size of its tile (media.view), so one thin link does not pull
// the sender down for everyone. A server that takes no simulcast answers
// without a=simulcast; the browser then keeps only the first encoding, which
// is put back to full size (fitSendEncodings).
//
// A refused media.offer: the server's reason says whether it passes
// (TRANSIENT_REFUSALS), and such an offer is sent again with backoff,
// state 'retrying' meanwhile; a final refusal, or the last retry's, makes
// the state 'unavailable' with the reason ('gave_up' after the retries).
// The waits are OFFER_RETRY_MS unless the constructor's offerRetryMs gives
// others: a test that decides when the refusal passes retries as long as
// it needs, not within the product's 23.5 s.
//
// Events: 'track' (detail: {track, streams, transceiver}), 'state'
// (detail: {state, message, reason}: new|connecting|connected|disconnected|
// failed|closed|unavailable|retrying), 'quality' (detail: see quality()).

const WATCH_MS = 500;
const STALL_MS = 1500; // nothing received this long (the server reports every 1 s): dead path
const RESTART_FIRST_MS = 2000;
const RESTART_MAX_MS = 10000;
const ICE_UP_NO_MEDIA_MS = 3000; // ICE connected after a restart, yet nothing: no session
const REBUILD_WAIT_MS = 6000; // a fresh connection gets this long before the next try
// An offer the server took but has not answered (its media worker is behind)
// holds the next ICE restart this long: the answer is coming, and a restart
// that rolled back such an offer was seen to leave Chromium's new ICE
// session sending no checks (tests/bench/README.md, net_stall).
const ANSWER_WAIT_MS = 10000;
// A refused offer the server says will pass (the visit is not active or not
// on this node yet, the media core failed) is sent again after these waits;
// then the page gives up and says so.
const OFFER_RETRY_MS = [500, 1000, 2000, 4000, 8000, 8000];
const TRANSIENT_REFUSALS = new Set(['not_active', 'visit_not_here', 'media_failed']);
const SIMULCAST = [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f', scaleResolutionDownBy: 1 }];

export class MediaPeer extends EventTarget {
  // sig: Signaling; visitId; iceServers from hello; stream: local
  // MediaStream or null; recv: {audio, video} recvonly transceiver counts
  // (supervisor), used when no stream is sent.
  constructor({ sig, visitId, iceServers = [], stream = null, recv = null, offerRetryMs = OFFER_RETRY_MS }) {
    super();
    this.sig = sig;
    this.visitId = visitId;
    this.iceServers = iceServers;
    this.stream = stream;
    this.recv = recv;
    this.offerRetryMs = offerRetryMs;
    this.extraRecv = 0; // recvonly audio+video pairs beyond the sendrecv ones
    this.renegotiateWanted = false;
    this.pc = null;
    this.remoteSet = false;
    this.pendingCandidates = [];
    this.state = 'new';
    this.closed = false;
    this.prevStats = null;
    this.lastQuality = null;
    this.generation = 0; // fresh RTCPeerConnections made, for tests and logs
    this.serverState = null;
    this.rx = { bytes: 0, at: 0, ever: false };
    this.recovery = null; // {since, lastTry, wait, iceUpAt, tries}
    this.restartPace = { wait: RESTART_FIRST_MS, notBefore: 0 }; // across recoveries
    this.restarts = 0; // ICE restarts asked for, for tests and logs
    this.offerPending = null; // the one offer the server has not answered yet
    this.offerTakenAt = 0; // when the server took the offer awaiting its answer
    this.offerRetry = null; // timer of a refused offer's next try
    this.offerTries = 0; // refused offers in a row
    this.unsubs = [
      sig.on('media.answer', (m) => this.onAnswer(m)),
      sig.on('media.candidate', (m) => this.onRemoteCandidate(m)),
      sig.on('media.state', (m) => this.onServerState(m)),
      sig.on('media.error', (m) => { if (m.visit_id === this.visitId) this.setState('failed', m.message); }),
      // The visit's video codec changed (someone can only do H.264): offer again.
      sig.on('media.renegotiate', (m) => { if (m.visit_id === this.visitId) this.renegotiate(); }),
    ];
    this.statsTimer = setInterval(() => this.quality().catch(() => {}), 1000);
    this.watchTimer = setInterval(() => this.watch().catch(() => {}), WATCH_MS);
  }

  setState(state, message, reason = null) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, message, reason } }));
  }

  build() {
    if (this.pc) {
      this.pc.onicecandidate = null;
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.pc = pc;
    this.generation++;
    this.remoteSet = false;
    this.pendingCandidates = [];
    this.rx = { bytes: 0, at: performance.now(), ever: false };
    this.serverState = null;
    if (this.stream) {
      const tracks = this.stream.getTracks();
      for (const track of tracks) {
        const init = { direction: 'sendrecv', streams: [this.stream] };
        if (track.kind === 'video') init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
        const tr = pc.addTransceiver(track, init);
        // A camera turned off or a microphone muted (call.js) sends nothing on
        // a new connection either.
        if (!track.enabled) tr.sender.replaceTrack(null).catch(() => {});
      }
      // Receive the other side even when we have no camera or microphone.
      if (!tracks.some((t) => t.kind === 'audio')) pc.addTransceiver('audio', { direction: 'recvonly' });
      if (!tracks.some((t) => t.kind === 'video')) pc.addTransceiver('video', { direction: 'recvonly' });
      for (let i = 0; i < this.extraRecv; i++) {
        pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.addTransceiver('video', { direction: 'recvonly' });
      }
    } else {
      const recv = this.recv || { audio: 1, video: 1 };
      for (let i = 0; i < recv.audio; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
      for (let i = 0; i < recv.video; i++) pc.addTransceiver('video', { direction: 'recvonly' });
    }
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      const msg = c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }
        : { candidate: '', sdpMid: '0', sdpMLineIndex: 0 };
      if (c && !c.candidate) return;
      this.sig.request('media.candidate', { visit_id: this.visitId, ...msg }).catch(() => {});
    };
    pc.ontrack = (ev) => {
      this.dispatchEvent(new CustomEvent('track', { detail: { track: ev.track, streams: ev.streams, transceiver: ev.transceiver } }));
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected' || s === 'connecting' || s === 'disconnected' || s === 'failed') this.setState(s);
      if (s === 'failed') this.recover(`ice ${s}`);
    };
    return pc;
  }

  // Creates the connection and sends the first offer.
  async start() {
    this.build();
    this.setState('connecting');
    await this.sendOffer({});
  }

  async sendOffer(opts) {
    clearTimeout(this.offerRetry);
    this.offerRetry = null;
    const pc = this.pc;
    this.offerTakenAt = 0;
    if (pc.signalingState === 'have-local-offer') {
      // An earlier offer was never answered (the server restarted).
      await pc.setLocalDescription({ type: 'rollback' });
    }
    const offer = await pc.createOffer(opts);
    await pc.setLocalDescription(offer);
    this.remoteSet = false;
    const mine = {};
    this.offerPending = mine;
    const settled = () => { if (this.offerPending === mine) this.offerPending = null; };
    try {
      await this.sig.request('media.offer', { visit_id: this.visitId, sdp: pc.localDescription.sdp });
    } catch (e) {
      settled();
      if (this.retryRefused(e, opts)) return;
      if (e.reason || e.code === 'unsupported' || e.code === 'internal' || e.code === 'bad_request') {
        this.setState('unavailable', e.message, e.reason || null);
      } else {
        this.setState('failed', e.message);
      }
      throw e;
    }
    this.offerTries = 0;
    if (this.state === 'retrying') this.setState('connecting');
    if (pc.signalingState === 'have-local-offer') this.offerTakenAt = performance.now();
    settled();
    if (this.renegotiateWanted && this.remoteSet) setTimeout(() => this.renegotiate(), 0);
  }

  // A refusal that passes: the same offer again after the next wait, while
  // there are waits left. False when the page should give up now.
  retryRefused(e, opts) {
    if (this.closed || !TRANSIENT_REFUSALS.has(e.reason)) return false;
    if (this.offerTries >= this.offerRetryMs.length) {
      this.offerTries = 0;
      this.setState('unavailable', e.message, 'gave_up');
      return false;
    }
    const wait = this.offerRetryMs[this.offerTries++];
    console.info(`telemed: media.offer refused (${e.reason}), again in ${wait} ms`);
    this.setState('retrying', e.message, e.reason);
    this.offerRetry = setTimeout(() => {
      this.offerRetry = null;
      if (!this.closed && this.pc) this.sendOffer(opts).catch(() => {});
    }, wait);
    return true;
  }

  // At least `pairs` recvonly audio+video pairs (a sender) or `pairs` of
  // each kind in all (a watcher); renegotiates when transceivers were added.
  ensureRecv(pairs) {
    if (this.stream) {
      if (pairs <= this.extraRecv) return false;
      const add = pairs - this.extraRecv;
      this.extraRecv = pairs;
      if (this.pc) {
        for (let i = 0; i < add; i++) {
          this.pc.addTransceiver('audio', { direction: 'recvonly' });
          this.pc.addTransceiver('video', { direction: 'recvonly' });
        }
      }
    } else {
      const recv = this.recv || { audio: 1, video: 1 };
      if (pairs <= recv.audio && pairs <= recv.video) return false;
      const addA = Math.max(0, pairs - recv.audio), addV = Math.max(0, pairs - recv.video);
      this.recv = { audio: recv.audio + addA, video: recv.video + addV };
      if (this.pc) {
        for (let i = 0; i < addA; i++) this.pc.addTransceiver('audio', { direction: 'recvonly' });
        for (let i = 0; i < addV; i++) this.pc.addTransceiver('video', { direction: 'recvonly' });
      }
    }
    this.renegotiate();
    return true;
  }

  // One offer at a time: a renegotiation asked for while another offer
  // waits for its answer goes out after it.
  renegotiate() {
    if (!this.pc || this.closed) return;
    if (this.offerPending || this.pc.signalingState !== 'stable' || this.sig.state !== 'open') {
      this.renegotiateWanted = true;
      return;
    }
    this.renegotiateWanted = false;
    this.sendOffer({}).catch(() => {});
  }

  // The transceiver that carries mid, for mapping media.streams to tracks.
  transceiver(mid) {
    if (!this.pc) return null;
    return this.pc.getTransceivers().find((tr) => tr.mid === mid) || null;
  }

  // Signaling came back: the path may have changed, so recover. It also says
  // the network is back: a recovery under way tries at once instead of
  // waiting out its pace (up to 10 s after the return), and an answer owed
  // on the old socket is not waited for.
  restart() {
    this.offerTakenAt = 0;
    if (this.recovery) {
      this.restartPace.notBefore = 0;
      this.nextTry();
      return;
    }
    this.recover('signaling back');
  }

  // fresh: a restart cannot help, go straight to a new connection.
  recover(reason, { fresh = false } = {}) {
    if (this.closed || !this.pc) return;
    if (this.recovery && !fresh) return;
    if (!this.recovery) {
      console.info(`telemed: media recovery started (${reason})`);
      this.recovery = { since: performance.now(), lastTry: 0, wait: 0, iceUpAt: 0, tries: 0 };
    }
    this.nextTry({ fresh });
  }

  // One recovery step: an ICE restart, or a fresh connection when restarts
  // cannot help. One offer at a time: the server answers in order and an
  // answer cannot say which offer it is for.
  nextTry({ fresh = false } = {}) {
    const r = this.recovery;
    if (!r || this.closed || this.offerPending || this.sig.state !== 'open') return;
    const now = performance.now();
    const pace = this.restartPace;
    if (!fresh && now < pace.notBefore) return; // the watchdog comes back
    if (!fresh && this.pc.signalingState === 'have-local-offer' && now - this.offerTakenAt < ANSWER_WAIT_MS) return;
    r.tries++;
    r.lastTry = now;
    r.iceUpAt = 0;
    if (fresh) {
      r.wait = REBUILD_WAIT_MS;
      this.start().catch(() => {});
      return;
    }
    r.wait = pace.wait;
    pace.notBefore = now + pace.wait;
    pace.wait = Math.min(pace.wait * 2, RESTART_MAX_MS);
    this.restarts++;
    console.info(`telemed: media ice restart ${this.restarts} at=${Math.round(now)} next_after_ms=${r.wait}`);
    try {
      this.pc.restartIce();
    } catch { /* closed meanwhile */ }
    this.sendOffer({ iceRestart: true }).catch(() => {});
  }

  // The watchdog: what arrives, ICE/DTLS state and the server's word.
  async watch() {
    const pc = this.pc;
    if (!pc || this.closed) return;
    const report = await pc.getStats();
    if (pc !== this.pc) return;
    const now = performance.now();
    let bytes = 0, dtls = null;
    report.forEach((s) => {
      if (s.type === 'transport') {
        bytes += s.bytesReceived || 0;
        dtls = s.dtlsState;
      }
    });
    if (bytes > this.rx.bytes) this.rx = { bytes, at: now, ever: true };
    const ice = pc.iceConnectionState;
    const iceUp = ice === 'connected' || ice === 'completed';
    const serverLost = this.serverState === 'failed' || this.serverState === 'disconnected';
    const r = this.recovery;
    if (r) {
      const flowing = this.rx.at > r.lastTry && now - this.rx.at < STALL_MS && dtls === 'connected';
      if (flowing && !serverLost) {
        console.info(`telemed: media recovered after ${Math.round(now - r.since)} ms, ${r.tries} tries`);
        this.recovery = null;
        if (iceUp) this.restartPace = { wait: RESTART_FIRST_MS, notBefore: 0 };
        return;
      }
      // ICE up without media counts from the try's answer on: before it the
      // browser's old path is the one up.
      if (!iceUp || this.offerPending || pc.signalingState === 'have-local-offer') r.iceUpAt = 0;
      else if (!r.iceUpAt) r.iceUpAt = now;
      // Only after a try of this recovery: before it (its restart waiting for
      // the pace) "connected" is the old path the browser has not given up.
      if (r.iceUpAt && r.tries && now - r.iceUpAt >= ICE_UP_NO_MEDIA_MS) this.nextTry({ fresh: true });
      else if (now - r.lastTry >= r.wait) this.nextTry();
      return;
    }
    const stalled = this.rx.ever && now - this.rx.at >= STALL_MS;
    if (stalled) this.recover('nothing received');
    else if (ice === 'failed') this.recover(`ice ${ice}`);
    else if (dtls === 'failed' || dtls === 'closed') this.recover(`dtls ${dtls}`);
    else if (serverLost) this.recover(`server says ${this.serverState}`);
  }

  async onAnswer(m) {
    if (m.visit_id !== this.visitId || !this.pc) return;
    if (this.pc.signalingState !== 'have-local-offer') return;
    // Offers held up in a dead connection arrive together and are answered
    // in turn: only the answer to the offer in force may be applied.
    const ufrag = /a=ice-ufrag:(\S+)/.exec(this.pc.localDescription.sdp);
    if (m.offer_ufrag && ufrag && m.offer_ufrag !== ufrag[1]) return;
    try {
      const restarting = this.pc.connectionState !== 'new' && this.rx.ever;
      await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      this.remoteSet = true;
      await this.fitSendEncodings();
      // A restart's checks start with its answer, which a held connection
      // may deliver long after the offer: its time to work counts from now.
      if (this.recovery) this.recovery.lastTry = performance.now();
      for (const c of this.pendingCandidates.splice(0)) await this.addCandidate(c);
      // The server has no session to resume: a restart would connect ICE
      // and carry nothing.
      if (m.new_transport && restarting) {
        this.offerPending = null;
        this.recover('server has a new session', { fresh: true });
      } else if (this.renegotiateWanted) {
        setTimeout(() => this.renegotiate(), 0);
      }
    } catch (e) {
      this.setState('failed', String(e));
    }
  }

  // The camera's sender after an answer: one encoding left means the server
  // took no simulcast, and that one must not stay at a quarter size.
  async fitSendEncodings() {
    for (const tr of this.pc.getTransceivers()) {
      const sender = tr.sender;
      // The camera's transceiver, with its track or taken off (camera off).
      if (!sender || tr.receiver.track.kind !== 'video' || (tr.direction !== 'sendrecv' && tr.direction !== 'sendonly')) continue;
      const p = sender.getParameters();
      if (!p.encodings || p.encodings.length !== 1 || (p.encodings[0].scaleResolutionDownBy ?? 1) === 1) continue;
      p.encodings[0].scaleResolutionDownBy = 1;
      await sender.setParameters(p).catch((e) => console.warn(`telemed: setParameters ${e}`));
    }
  }

  async onRemoteCandidate(m) {
    if (m.visit_id !== this.visitId || !this.pc) return;
    if (!this.remoteSet) {
      this.pendingCandidates.push(m);
      return;
    }
    await this.addCandidate(m);
  }

  async addCandidate(m) {
    try {
      if (!m.candidate) await this.pc.addIceCandidate();
      else await this.pc.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdpMid ?? '0', sdpMLineIndex: m.sdpMLineIndex ?? 0 });
    } catch { /* a stale candidate after a restart is harmless */ }
  }

  onServerState(m) {
    if (m.visit_id !== this.visitId) return;
    this.serverState = m.state;
    if (m.state === 'failed') this.recover('server says failed');
  }

  // Replaces the outgoing track of a kind (camera restarted).
  async replaceTrack(kind, track) {
    if (!this.pc) return;
    for (const tr of this.pc.getTransceivers()) {
      if (tr.sender && ((tr.sender.track && tr.sender.track.kind === kind) || tr.receiver.track.kind === kind)) {
        if (tr.direction === 'sendrecv' || tr.direction === 'sendonly') {
          await tr.sender.replaceTrack(track);
          return;
        }
      }
    }
  }

  // One figure for the indicator: level good|fair|poor|unknown with the
  // inbound bitrate, loss, RTT and the decoded video of each stream.
  async quality() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    const now = performance.now();
    let bytesIn = 0, lost = 0, received = 0, rtt = null;
    const video = [];
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        bytesIn += s.bytesReceived || 0;
        lost += s.packetsLost || 0;
        received += s.packetsReceived || 0;
        if (s.kind === 'video') {
          video.push({ id: s.id, trackIdentifier: s.trackIdentifier, framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0, fps: s.framesPerSecond || 0 });
        }
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime !== undefined) {
        rtt = s.currentRoundTripTime * 1000;
      }
    });
    const prev = this.prevStats;
    this.prevStats = { at: now, bytesIn, lost, received };
    let kbps = null, lossPct = null;
    if (prev && now > prev.at) {
      kbps = Math.max(0, ((bytesIn - prev.bytesIn) * 8) / (now - prev.at));
      const dl = lost - prev.lost, dr = received - prev.received;
      lossPct = dl + dr > 0 ? (100 * Math.max(0, dl)) / (dl + dr) : 0;
    }
    let level = 'unknown';
    if (this.pc.connectionState === 'connected' && kbps !== null) {
      // Loss and delay, not bitrate: a camera turned off on the other side
      // sends little and is not a bad connection. Nothing at all is.
      if ((lossPct ?? 0) > 8 || (rtt ?? 0) > 600 || kbps < 1) level = 'poor';
      else if ((lossPct ?? 0) > 2 || (rtt ?? 0) > 300) level = 'fair';
      else level = 'good';
    } else if (this.pc.connectionState === 'failed' || this.pc.connectionState === 'disconnected') {
      level = 'poor';
    }
    const q = { level, kbps, lossPct, rtt, video, state: this.pc.connectionState };
    this.lastQuality = q;
    this.dispatchEvent(new CustomEvent('quality', { detail: q }));
    return q;
  }

  close() {
    this.closed = true;
    clearTimeout(this.offerRetry);
    clearInterval(this.statsTimer);
    clearInterval(this.watchTimer);
    this.recovery = null;
    for (const u of this.unsubs) u();
    if (this.pc) this.pc.close();
    this.pc = null;
    this.setState('closed');
  }
}

// The i18n key that tells a user why their video did not start, from the
// reason of the refused offer (or 'gave_up' after the retries).
export function mediaRefusalText(reason) {
  if (reason === 'sdp_refused') return 'visit.media_refused_sdp';
  if (reason === 'gave_up') return 'visit.media_gave_up';
  return 'visit.media_unavailable';
}

// Camera and microphone with an error kind the page can explain:
// denied | none | busy | insecure | failed. Falls back to audio only when
// there is no camera.
export async function getCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { error: window.isSecureContext ? 'none' : 'insecure' };
  }
  const want = { audio: { echoCancellation: true, noiseSuppression: true }, video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' } };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(want) };
  } catch (e) {
    if (e.name === 'NotFoundError' || e.name === 'OverconstrainedError') {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        return { stream, audioOnly: true };
      } catch (e2) {
        return { error: classify(e2), message: e2.message };
      }
    }
    return { error: classify(e), message: e.message };
  }
}

function classify(e) {
  switch (e.name) {
    case 'NotAllowedError': case 'SecurityError': return 'denied';
    case 'NotFoundError': case 'OverconstrainedError': return 'none';
    case 'NotReadableError': case 'AbortError': case 'TrackStartError': return 'busy';
    default: return 'failed';
  }
}
