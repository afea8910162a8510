// owt-client.js: a small client of the OWT conference protocol 1.2 (what OWT's JS SDK 5.1
// speaks to the portal), for the owt-rs sample page. No build step and no dependencies
// besides the global `io` of the socket.io browser client (/socket.io.js).
//
//   const client = new OwtClient();
//   client.addEventListener('participant', (e) => ...);   // also: stream, text, progress, error, disconnected
//   const info = await client.join(token);                 // login: {id, user, role, room: {participants, streams}}
//   const pub = await client.publish(mediaStream);         // pub.id; await pub.ready
//   const sub = await client.subscribe(streamInfo);        // sub.id, sub.stream (MediaStream); await sub.ready
//   await client.send('hello');                            // text to everybody
//   await client.leave();
//
// Every request is acknowledged by the server with ("ok", data) or ("error", "message");
// an error rejects the promise with an Error whose message is the server's text, unchanged.
//
// WebRTC: one RTCPeerConnection per client carries every publication and subscription
// (transport). The client always offers: a publication adds sendonly transceivers, a
// subscription recvonly ones, and each change is negotiated with a new offer sent by `soac`.
// Negotiations run one at a time. The first publish/subscribe creates the transport; the
// server tells its id (transportId), which later requests reuse and which `progress`
// notifications carry (`sessionId` names the publication or subscription).
'use strict';

(function (global) {
  const SDK = { version: '5.1', type: 'JavaScript' };
  const PROTOCOL = '1.2';
  const REQUEST_TIMEOUT_MS = 15000;
  const ANSWER_TIMEOUT_MS = 10000;

  function decodeToken(token) {
    let parsed;
    try {
      parsed = JSON.parse(atob(token));
    } catch (err) {
      throw new Error('Invalid token: ' + err.message);
    }
    if (!parsed || typeof parsed.host !== 'string') throw new Error('Invalid token: no host');
    return parsed;
  }

  function signalingUrl(token) {
    if (token.host.indexOf('http') === 0) return token.host;
    return (token.secure ? 'https://' : 'http://') + token.host;
  }

  // A promise with its resolve/reject handles, for answers and session readiness.
  function deferred() {
    const d = {};
    d.promise = new Promise((resolve, reject) => { d.resolve = resolve; d.reject = reject; });
    d.promise.catch(() => {}); // rejections are reported through events too
    return d;
  }

  class Session {
    constructor(kind, transceivers) {
      this.kind = kind; // 'publication' | 'subscription'
      this.id = null;
      this.transceivers = transceivers;
      this.status = 'pending'; // pending | ready | error | ended
      this.error = null;
      this._ready = deferred();
      this.ready = this._ready.promise;
    }
  }

  class OwtClient extends EventTarget {
    constructor(options) {
      super();
      this.options = Object.assign({ iceServers: [] }, options || {});
      this.socket = null;
      this.me = null;          // {id, user, role}
      this.roomId = null;
      this.participants = new Map(); // id -> {id, user, role}
      this.streams = new Map();      // id -> StreamInfo
      this.sessions = new Map();     // publication/subscription id -> Session
      this.pc = null;
      this.transportId = null;
      this._chain = Promise.resolve();
      this._answer = null;           // deferred answer of the offer in flight
      this._candidates = [];         // local candidates waiting for a stable signaling state
    }

    _emit(type, detail) {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    // One request with its acknowledgement. Resolves with the data of ("ok", data).
    request(name, data) {
      return new Promise((resolve, reject) => {
        if (!this.socket) { reject(new Error('Not connected')); return; }
        const timer = setTimeout(() => reject(new Error(name + ': no answer from the server')), REQUEST_TIMEOUT_MS);
        const ack = (status, payload) => {
          clearTimeout(timer);
          if (status === 'ok' || status === 'success') resolve(payload);
          else reject(new Error(typeof payload === 'string' ? payload : JSON.stringify(payload)));
        };
        if (data === undefined) this.socket.emit(name, ack);
        else this.socket.emit(name, data, ack);
      });
    }

    async join(token) {
      const decoded = decodeToken(token);
      const url = signalingUrl(decoded);
      const socketOptions = { reconnection: false, forceNew: true, 'force new connection': true };
      // Default transports as the SDK: long-polling first, then the upgrade to WebSocket.
      if (this.options.transports) socketOptions.transports = this.options.transports;
      this.socket = global.io(url, socketOptions);
      await new Promise((resolve, reject) => {
        this.socket.once('connect', resolve);
        this.socket.once('connect_error', (err) => reject(new Error('connect_error:' + decoded.host + ' ' + (err && err.message))));
      });
      this._listen();
      const info = await this.request('login', { token, userAgent: { sdk: SDK }, protocol: PROTOCOL });
      this.me = { id: info.id, user: info.user, role: info.role };
      this.roomId = info.room.id;
      for (const p of info.room.participants || []) this.participants.set(p.id, p);
      for (const s of info.room.streams || []) this.streams.set(s.id, s);
      return info;
    }

    _listen() {
      const socket = this.socket;
      socket.on('participant', (message) => {
        if (!message) return;
        if (message.action === 'join' && message.data) {
          this.participants.set(message.data.id, message.data);
        } else if (message.action === 'leave') {
          this.participants.delete(message.data);
        }
        this._emit('participant', message);
      });
      socket.on('stream', (message) => {
        if (!message) return;
        if (message.status === 'add' && message.data) {
          this.streams.set(message.id, message.data);
        } else if (message.status === 'remove') {
          this.streams.delete(message.id);
        } else if (message.status === 'update' && message.data && message.data.field === '.') {
          this.streams.set(message.id, message.data.value);
        }
        this._emit('stream', message);
      });
      socket.on('text', (message) => this._emit('text', message));
      socket.on('progress', (message) => this._onProgress(message));
      socket.on('drop', () => { this._emit('disconnected', { reason: 'dropped by the server' }); this._close(); });
      socket.on('disconnect', (reason) => this._emit('disconnected', { reason: String(reason) }));
    }

    _onProgress(message) {
      this._emit('progress', message);
      if (!message || message.id !== this.transportId) {
        this._emit('error', { message: 'progress for an unknown transport: ' + JSON.stringify(message) });
        return;
      }
      const session = message.sessionId ? this.sessions.get(message.sessionId) : null;
      if (message.status === 'soac') {
        const data = message.data || {};
        // Only answers matter: the server's candidates are in its answer (as the SDK does).
        if (data.type === 'answer' && this._answer) this._answer.resolve(data);
      } else if (message.status === 'ready') {
        if (session) {
          session.status = 'ready';
          session._ready.resolve(session);
        }
      } else if (message.status === 'error') {
        const reason = typeof message.data === 'string' ? message.data : JSON.stringify(message.data);
        const failed = session ? [session] : Array.from(this.sessions.values());
        for (const s of failed) {
          if (s.status === 'ended') continue;
          s.status = 'error';
          s.error = reason;
          s._ready.reject(new Error(reason));
        }
        if (!session && this._answer) this._answer.reject(new Error(reason));
        this._emit('error', { message: reason, sessionId: message.sessionId || null });
      }
    }

    _peerConnection() {
      if (this.pc) return this.pc;
      const pc = new RTCPeerConnection({ iceServers: this.options.iceServers });
      pc.onicecandidate = (event) => {
        if (!event.candidate || !event.candidate.candidate) return;
        this._candidates.push(event.candidate);
        this._sendCandidates();
      };
      pc.onconnectionstatechange = () => this._emit('connectionstate', { state: pc.connectionState });
      this.pc = pc;
      return pc;
    }

    // Local candidates go out only while no offer is in flight (as the SDK does).
    _sendCandidates() {
      if (!this.pc || !this.transportId || this.pc.signalingState !== 'stable') return;
      for (const c of this._candidates.splice(0)) {
        const candidate = { candidate: 'a=' + c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex };
        this.request('soac', { id: this.transportId, signaling: { type: 'candidate', candidate } })
          .catch((err) => this._emit('error', { message: err.message }));
      }
    }

    // Runs negotiations one after the other.
    _serialize(task) {
      const run = this._chain.then(task);
      this._chain = run.catch(() => {});
      return run;
    }

    // Adds transceivers, offers, tells the server about them with `request`, sends the
    // offer and applies the answer. On failure, the offer is rolled back and the new
    // transceivers stopped.
    _negotiate(session, addTransceivers, request) {
      return this._serialize(async () => {
        const pc = this._peerConnection();
        session.transceivers = addTransceivers(pc);
        try {
          await pc.setLocalDescription(await pc.createOffer());
          const tracks = session.transceivers.map((t) => request.track(t));
          const ack = await this.request(request.name, Object.assign({}, request.body, {
            media: { tracks },
            transport: this.transportId ? { type: 'webrtc', id: this.transportId } : { type: 'webrtc' },
          }));
          session.id = ack.id;
          if (!this.transportId) this.transportId = ack.transportId;
          this.sessions.set(ack.id, session);
          this._answer = deferred();
          const timer = setTimeout(() => this._answer.reject(new Error('No answer within 10 s')), ANSWER_TIMEOUT_MS);
          try {
            await this.request('soac', { id: this.transportId, signaling: { type: 'offer', sdp: pc.localDescription.sdp } });
            const answer = await this._answer.promise;
            await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
          } finally {
            clearTimeout(timer);
            this._answer = null;
          }
          this._sendCandidates();
          return session;
        } catch (err) {
          if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
          // Candidates of an offer the server never took have nowhere to go.
          if (!this.transportId) this._candidates = [];
          for (const t of session.transceivers) { try { t.stop(); } catch (e) { /* already stopped */ } }
          session.status = 'error';
          session.error = err.message;
          session._ready.reject(err);
          throw err;
        }
      });
    }

    // Publishes the tracks of a MediaStream (camera and microphone).
    publish(mediaStream, attributes) {
      const session = new Session('publication', []);
      const body = attributes ? { attributes } : {};
      return this._negotiate(session, (pc) => mediaStream.getTracks().map(
        (track) => pc.addTransceiver(track, { direction: 'sendonly', streams: [mediaStream] })), {
        name: 'publish',
        body,
        track: (t) => ({ type: t.sender.track.kind, mid: t.mid, source: t.sender.track.kind === 'audio' ? 'mic' : 'camera' }),
      });
    }

    // Subscribes the audio and video of a stream (StreamInfo from login or a `stream` add).
    subscribe(streamInfo) {
      const session = new Session('subscription', []);
      const kinds = [];
      for (const track of (streamInfo.media && streamInfo.media.tracks) || []) {
        if ((track.type === 'audio' || track.type === 'video') && !kinds.includes(track.type)) kinds.push(track.type);
      }
      if (kinds.length === 0) return Promise.reject(new Error('Stream ' + streamInfo.id + ' has no audio or video track'));
      return this._negotiate(session, (pc) => kinds.map((kind) => pc.addTransceiver(kind, { direction: 'recvonly' })), {
        name: 'subscribe',
        body: {},
        track: (t) => ({ type: t.receiver.track.kind, mid: t.mid, from: streamInfo.id }),
      }).then((s) => {
        s.stream = new MediaStream(s.transceivers.map((t) => t.receiver.track));
        return s;
      });
    }

    async _end(session, request) {
      if (!session || !session.id) return;
      session.status = 'ended';
      this.sessions.delete(session.id);
      for (const t of session.transceivers) { try { t.stop(); } catch (e) { /* already stopped */ } }
      await this.request(request, { id: session.id });
    }

    unpublish(publication) { return this._end(publication, 'unpublish'); }
    unsubscribe(subscription) { return this._end(subscription, 'unsubscribe'); }

    // Sends a text message to one participant id, or to everybody.
    send(message, to) {
      return this.request('text', { to: to || 'all', message });
    }

    async leave() {
      try { await this.request('logout'); } finally { this._close(); }
    }

    _close() {
      if (this.pc) { this.pc.close(); this.pc = null; }
      if (this.socket) { this.socket.disconnect(); this.socket = null; }
    }
  }

  global.OwtClient = OwtClient;
})(window);
