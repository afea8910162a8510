// Browser test of owt-peer: two headless Chromium pages make a P2P video call whose signaling
// (offer, answer, ICE candidates) goes through owt-peer as OWT P2P clients send it:
// `owt-message {to, data}` where data is the JSON string {type: 'chat-signal', connectionId,
// data: {type: 'offer'|'answer', sdp} | {type: 'candidates', candidate, sdpMid, sdpMLineIndex}}.
//
//   unshare -n sh -c 'ip link set lo up; exec node browser-p2p.js <owt-peer binary> <config dir> <port> [metrics port]'
//
// Starts owt-peer (so that it runs in the same network namespace as the browser), serves the
// page and the socket.io-client browser bundle on loopback, and checks that the callee's
// <video> has a size and that its frame counters advance. Prints JSON lines, then PASS or FAIL.
'use strict';
const http = require('http'), fs = require('fs'), os = require('os'), path = require('path');
const { spawn } = require('child_process');
const net = require('net');
const { chromium } = require('playwright-core');

const [peerBin, configDir, peerPort, metricsPort] = process.argv.slice(2);
const log = (obj) => console.log(JSON.stringify(obj));
// socket.io-client's package.json "exports" hides dist/: build the path from the package dir.
const bundle = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');

const page = `<!doctype html>
<html><body>
<video id="remote" autoplay playsinline muted></video>
<script src="/socket.io.min.js"></script>
<script>
'use strict';
const params = new URLSearchParams(location.search);
const me = params.get('uid'), remote = params.get('remote'), caller = params.get('role') === 'caller';
const connectionId = 'conn-' + me;
window.result = { state: 'starting', sent: 0, received: 0, rvfc: 0, errors: [] };
const socket = io(params.get('peer'), { reconnection: false });
let pc = null;
const pendingCandidates = [];

function send(message) {
  window.result.sent++;
  return new Promise((resolve, reject) => {
    socket.emit('owt-message', { to: remote, data: JSON.stringify(message) }, (err) => {
      if (err) { window.result.errors.push('ack ' + err); reject(err); } else { resolve(); }
    });
  });
}
const signal = (data) => send({ type: 'chat-signal', connectionId, data });

function makePc() {
  pc = new RTCPeerConnection({ iceServers: [] });
  pc.onicecandidate = (e) => {
    if (e.candidate) signal({ type: 'candidates', candidate: e.candidate.candidate,
                              sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex });
  };
  pc.onconnectionstatechange = () => { window.result.pc = pc.connectionState; };
  pc.ontrack = (e) => {
    if (e.track.kind !== 'video') return;
    const v = document.getElementById('remote');
    v.srcObject = e.streams[0];
    const cb = () => { window.result.rvfc++; v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
  };
}

async function onSignal(data) {
  if (data.type === 'offer' || data.type === 'answer') {
    if (!pc) makePc();
    await pc.setRemoteDescription({ type: data.type, sdp: data.sdp });
    for (const c of pendingCandidates.splice(0)) await pc.addIceCandidate(c);
    if (data.type === 'offer') {
      await pc.setLocalDescription(await pc.createAnswer());
      await signal({ type: 'answer', sdp: pc.localDescription.sdp });
    }
  } else if (data.type === 'candidates') {
    const c = { candidate: data.candidate, sdpMid: data.sdpMid, sdpMLineIndex: data.sdpMLineIndex };
    if (pc && pc.remoteDescription) await pc.addIceCandidate(c); else pendingCandidates.push(c);
  }
}

socket.on('owt-message', (message) => {
  window.result.received++;
  if (message.from !== remote) { window.result.errors.push('unexpected sender ' + message.from); return; }
  const body = JSON.parse(message.data);
  if (body.type === 'chat-signal') onSignal(body.data).catch((e) => window.result.errors.push(String(e)));
});

socket.on('connect', () => {
  socket.emit('authentication', { token: me }, async (reply) => {
    if (!reply || reply.uid !== me) { window.result.state = 'auth failed ' + JSON.stringify(reply); return; }
    window.result.state = 'authenticated';
    window.result.transport = socket.io.engine.transport.name;
  });
});

// Called by the driver on the caller once both pages are logged in.
window.call = async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  makePc();
  stream.getTracks().forEach((t) => pc.addTrack(t, stream));
  await send({ type: 'chat-ua', connectionId, data: { sdk: { type: 'JavaScript', version: '5.0' } } });
  await pc.setLocalDescription(await pc.createOffer());
  await signal({ type: 'offer', sdp: pc.localDescription.sdp });
  window.result.state = 'calling';
};

window.probe = () => {
  const v = document.getElementById('remote');
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
  return { videoWidth: v.videoWidth, videoHeight: v.videoHeight, totalVideoFrames: q.totalVideoFrames,
           rvfc: window.result.rvfc, pc: window.result.pc, sent: window.result.sent,
           received: window.result.received, transport: socket.io.engine.transport.name,
           errors: window.result.errors };
};
</script>
</body></html>`;

function waitPort(port, deadlineMs) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + deadlineMs;
    const attempt = () => {
      const c = net.connect(Number(port), '127.0.0.1');
      c.on('connect', () => { c.destroy(); resolve(); });
      c.on('error', () => { if (Date.now() > deadline) reject(new Error('owt-peer did not listen')); else setTimeout(attempt, 50); });
    };
    attempt();
  });
}

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => { let body = ''; res.on('data', (d) => body += d); res.on('end', () => resolve(body)); }).on('error', reject);
  });
}

(async () => {
  const t0 = Date.now();
  const peer = spawn(peerBin, ['--config-dir', configDir], { stdio: ['ignore', 'inherit', 'inherit'] });
  const peerExit = new Promise((resolve) => peer.on('exit', (code, signal) => resolve({ code, signal })));
  let ok = false, ctx = null, srv = null;
  try {
    await waitPort(peerPort, 10000);
    srv = http.createServer((q, r) => {
      if (q.url === '/socket.io.min.js') {
        r.writeHead(200, { 'content-type': 'text/javascript' });
        return r.end(fs.readFileSync(bundle));
      }
      r.writeHead(200, { 'content-type': 'text/html' });
      r.end(page);
    });
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const base = `http://localhost:${srv.address().port}/`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), 'owt-peer-chr-')), {
      executablePath: '/usr/bin/chromium', headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
             '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
             '--autoplay-policy=no-user-gesture-required'] });
    const open = async (uid, remote, role) => {
      const p = await ctx.newPage();
      p.on('console', (m) => log({ page: uid, console: m.text() }));
      p.on('pageerror', (e) => log({ page: uid, error: String(e) }));
      await p.goto(`${base}?uid=${uid}&remote=${remote}&role=${role}&peer=${encodeURIComponent(peerUrl)}`);
      await p.waitForFunction(() => window.result.state === 'authenticated', null, { timeout: 15000 });
      return p;
    };
    const alice = await open('alice', 'bob', 'caller');
    const bob = await open('bob', 'alice', 'callee');
    log({ step: 'both pages authenticated', ms: Date.now() - t0 });
    await alice.evaluate(() => window.call());
    await bob.waitForFunction(() => document.getElementById('remote').videoWidth > 0, null, { timeout: 20000 });
    const first = await bob.evaluate(() => window.probe());
    log({ callee: first });
    await bob.waitForTimeout(1500);
    const second = await bob.evaluate(() => window.probe());
    const caller = await alice.evaluate(() => window.probe());
    log({ callee: second, caller });
    const metrics = metricsPort ? await get(`http://127.0.0.1:${metricsPort}/metrics`) : '';
    const relayed = Number((/^owt_peer_messages_relayed_total (\d+)$/m.exec(metrics) || [])[1] || -1);
    log({ relayed, signalingSent: caller.sent + second.sent });
    ok = second.videoWidth > 0 && second.totalVideoFrames > first.totalVideoFrames && second.rvfc > first.rvfc
      && second.pc === 'connected' && second.errors.length === 0 && caller.errors.length === 0
      && (!metricsPort || relayed === caller.sent + second.sent);
  } catch (err) {
    log({ error: String(err && err.stack || err) });
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    if (srv) srv.close();
    peer.kill('SIGTERM');
  }
  const exit = await peerExit;
  log({ peerExit: exit, elapsedMs: Date.now() - t0 });
  ok = ok && exit.code === 0;
  console.log(ok ? 'PASS' : 'FAIL');
  process.exit(ok ? 0 : 1);
})();
