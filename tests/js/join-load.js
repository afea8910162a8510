// node join-load.js <url> <tokens.json> [version]
// Connects one socket.io client per token, all at once, logs each in, waits until every
// login is answered, then logs all out. Prints a JSON report on stdout:
// {joined, errors, maxParticipantsSeen, latencyMs: {p50, p90, p99, max}, wallMs}.
const fs = require('fs');
const [url, tokenFile, version = '4'] = process.argv.slice(2);
const io = require({ 2: 'sio2', 3: 'sio3', 4: 'socket.io-client' }[version]);
const tokens = JSON.parse(fs.readFileSync(tokenFile, 'utf8'));
const ua = { sdk: { version: '5.1', type: 'JavaScript' } };
const started = Date.now();
const latencies = [];
const errors = [];
let maxParticipantsSeen = 0;
let answered = 0;
const sockets = [];

let logoutMs = null;
let logoutStarted = 0;
function finish() {
  logoutStarted = Date.now();
  let loggedOut = 0;
  for (const s of sockets) {
    s.emit('logout', () => {
      s.disconnect();
      if (++loggedOut === sockets.length) { logoutMs = Date.now() - logoutStarted; report(); }
    });
  }
  setTimeout(report, 5000);
}

let reported = false;
function report() {
  if (reported) return;
  reported = true;
  latencies.sort((a, b) => a - b);
  const pick = (q) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null;
  console.log(JSON.stringify({
    joined: latencies.length, errors, maxParticipantsSeen,
    latencyMs: { p50: pick(0.5), p90: pick(0.9), p99: pick(0.99), max: latencies[latencies.length - 1] },
    wallMs: Date.now() - started, logoutMs, loggedOut: logoutMs !== null,
  }));
  process.exit(errors.length ? 1 : 0);
}

tokens.forEach((token) => {
  const s = io(url, { reconnection: false, forceNew: true, transports: ['websocket'] });
  sockets.push(s);
  const t0 = Date.now();
  s.on('connect_error', (e) => { errors.push('connect_error ' + e.message); if (++answered === tokens.length) finish(); });
  s.on('connect', () => s.emit('login', { token, userAgent: ua, protocol: '1.2' }, (status, data) => {
    if (status === 'ok') {
      latencies.push(Date.now() - t0);
      maxParticipantsSeen = Math.max(maxParticipantsSeen, data.room.participants.length);
    } else {
      errors.push(String(data));
    }
    if (++answered === tokens.length) finish();
  }));
  s.on('participant', () => {});
});
setTimeout(() => { errors.push('timeout'); report(); }, 30000);
