// peer.js - the page's one RTCPeerConnection with the server for a visit.
// Every participant is the offerer: the page creates the offer (sendrecv
// camera and microphone, or recvonly transceivers for a supervisor), sends
// media.offer, applies the media.answer push, trickles media.candidate both
// ways, restarts ICE after a reconnect, and turns getStats() into a
// connection-quality figure.
//
// Events: 'track' (detail: {track, streams, transceiver}), 'state'
// (detail: {state}: new|connecting|connected|disconnected|failed|closed|
// unavailable), 'quality' (detail: see quality()).

const RESTART_FALLBACK_MS = 10000;

export class MediaPeer extends EventTarget {
  // sig: Signaling; visitId; iceServers from hello; stream: local
  // MediaStream or null; recv: {audio, video} recvonly transceiver counts
  // (supervisor), used when no stream is sent.
  constructor({ sig, visitId, iceServers = [], stream = null, recv = null }) {
    super();
    this.sig = sig;
    this.visitId = visitId;
    this.iceServers = iceServers;
    this.stream = stream;
    this.recv = recv;
    this.pc = null;
    this.remoteSet = false;
    this.pendingCandidates = [];
    this.state = 'new';
    this.closed = false;
    this.prevStats = null;
    this.lastQuality = null;
    this.unsubs = [
      sig.on('media.answer', (m) => this.onAnswer(m)),
      sig.on('media.candidate', (m) => this.onRemoteCandidate(m)),
      sig.on('media.state', (m) => this.onServerState(m)),
      sig.on('media.error', (m) => { if (m.visit_id === this.visitId) this.setState('failed', m.message); }),
    ];
    this.statsTimer = setInterval(() => this.quality().catch(() => {}), 1000);
  }

  setState(state, message) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, message } }));
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
    this.remoteSet = false;
    this.pendingCandidates = [];
    if (this.stream) {
      const tracks = this.stream.getTracks();
      for (const track of tracks) pc.addTransceiver(track, { direction: 'sendrecv', streams: [this.stream] });
      // Receive the other side even when we have no camera or microphone.
      if (!tracks.some((t) => t.kind === 'audio')) pc.addTransceiver('audio', { direction: 'recvonly' });
      if (!tracks.some((t) => t.kind === 'video')) pc.addTransceiver('video', { direction: 'recvonly' });
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
      if (s === 'failed' && !this.closed) this.restart();
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
    const pc = this.pc;
    if (pc.signalingState === 'have-local-offer') {
      // An earlier offer was never answered (the server restarted).
      await pc.setLocalDescription({ type: 'rollback' });
    }
    const offer = await pc.createOffer(opts);
    await pc.setLocalDescription(offer);
    this.remoteSet = false;
    try {
      await this.sig.request('media.offer', { visit_id: this.visitId, sdp: pc.localDescription.sdp });
    } catch (e) {
      if (e.code === 'unsupported' || e.code === 'internal' || e.code === 'bad_request') {
        this.setState('unavailable', e.message);
      } else {
        this.setState('failed', e.message);
      }
      throw e;
    }
  }

  // After the signaling connection came back: ICE restart, and a fresh
  // connection if that does not bring media back (the server may have
  // restarted and forgotten this peer).
  async restart() {
    if (this.closed || !this.pc) return;
    clearTimeout(this.fallbackTimer);
    try {
      this.pc.restartIce();
      await this.sendOffer({ iceRestart: true });
    } catch {
      /* the fallback below rebuilds */
    }
    this.fallbackTimer = setTimeout(() => {
      if (this.closed || !this.pc || this.pc.connectionState === 'connected') return;
      this.start().catch(() => {});
    }, RESTART_FALLBACK_MS);
  }

  async onAnswer(m) {
    if (m.visit_id !== this.visitId || !this.pc) return;
    if (this.pc.signalingState !== 'have-local-offer') return;
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      this.remoteSet = true;
      for (const c of this.pendingCandidates.splice(0)) await this.addCandidate(c);
    } catch (e) {
      this.setState('failed', String(e));
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
    if (m.state === 'failed' && !this.closed) this.restart();
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
    clearInterval(this.statsTimer);
    clearTimeout(this.fallbackTimer);
    for (const u of this.unsubs) u();
    if (this.pc) this.pc.close();
    this.pc = null;
    this.setState('closed');
  }
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
