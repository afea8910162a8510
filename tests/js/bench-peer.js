// Benchmark (not a test): owt-peer against a minimal Node.js relay on npm socket.io 4
// (ref-peer-server.js, what OWT's own peer server is built on), side by side in one run.
//
//   node bench-peer.js <owt-peer binary> [--clients 1000] [--seconds 10] [--workers 4]
//                      [--window 4] [--rate 15000] [--out bench/peer.json]
//
// For each server: start it on a loopback port, connect `clients` socket.io-client 4.x
// clients (WebSocket) from `workers` node processes, log them in as pairs (c0<->c1, ...),
// then send owt-message events to the partners for `seconds`, twice:
// - paced: `rate` messages per second in total, spread over all clients (the same load for
//   both servers, so the CPU cost per message compares directly);
// - saturated: every client keeps `window` messages in flight (the next one is sent when the
//   ack arrives), as fast as server and clients go on this machine.
// Reported per server and load: relayed messages per CPU-second of the server process
// (utime+stime from /proc/<pid>/stat during the traffic), and server memory per connection
// ((VmRSS with every client connected - VmRSS before) / clients).
'use strict';
const { spawn, fork, execSync } = require('child_process');
const fs = require('fs'), net = require('net'), os = require('os'), path = require('path');

const DATA = JSON.stringify({
  type: 'chat-signal', connectionId: '2f7c3a9e-51b0-4c43-9a5e-3f8d0c1b6a77',
  data: { type: 'candidates', candidate: 'candidate:842163049 1 udp 1677729535 198.51.100.7 61665 typ srflx raddr 192.168.1.20 rport 61665 generation 0 ufrag 4ZcD network-cost 999',
          sdpMid: '0', sdpMLineIndex: 0 },
});

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

// ---------------------------------------------------------------- worker: a batch of clients
async function worker() {
  const [url, first, count, window] = process.argv.slice(3, 7).map((v, i) => (i === 0 ? v : Number(v)));
  const io = require('socket.io-client');
  const clients = [];
  let received = 0, acked = 0, errors = 0;
  const connectOne = (n) => new Promise((resolve, reject) => {
    const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20000 });
    s.on('owt-message', () => { received++; });
    s.on('connect_error', (e) => reject(new Error('connect_error ' + e.message)));
    s.on('connect', () => s.emit('authentication', { token: 'c' + n }, (reply) => {
      if (!reply || reply.uid !== 'c' + n) return reject(new Error('login failed ' + JSON.stringify(reply)));
      resolve({ s, partner: 'c' + (n ^ 1) });
    }));
  });
  for (let i = 0; i < count; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 50); j++) batch.push(connectOne(first + j));
    clients.push(...await Promise.all(batch));
  }
  process.send({ ready: clients.length });
  process.on('message', (m) => {
    if (m.cmd === 'go') {
      let sending = true, inflight = 0, timer = null;
      acked = 0; received = 0; errors = 0;
      const t0 = Date.now();
      const send = (c, again) => {
        inflight++;
        c.s.emit('owt-message', { to: c.partner, data: DATA }, (err) => {
          inflight--;
          if (err) errors++; else acked++;
          if (again && sending) send(c, true);
        });
      };
      if (m.rate) {
        // Paced: this worker's share of the rate, in 10 ms ticks, clients in turn.
        let next = 0, due = 0;
        timer = setInterval(() => {
          due += m.rate / 100;
          for (; due >= 1; due--) { send(clients[next], false); next = (next + 1) % clients.length; }
        }, 10);
      } else {
        for (const c of clients) for (let w = 0; w < window; w++) send(c, true);
      }
      setTimeout(() => {
        sending = false;
        if (timer) clearInterval(timer);
        const stopped = Date.now();
        const wait = () => (inflight === 0 || Date.now() - stopped > 5000)
          ? setTimeout(() => process.send({ done: { acked, received, errors, inflight, ms: stopped - t0 } }), 200)
          : setTimeout(wait, 10);
        wait();
      }, m.seconds * 1000);
    } else if (m.cmd === 'close') {
      for (const c of clients) c.s.close();
      setTimeout(() => process.exit(0), 200);
    }
  });
}

// ---------------------------------------------------------------- driver
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const cpuSeconds = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
};
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function waitPort(port, ms) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const attempt = () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('connect', () => { c.destroy(); resolve(); });
      c.on('error', () => (Date.now() > deadline ? reject(new Error('server did not listen')) : setTimeout(attempt, 50)));
    };
    attempt();
  });
}

async function run(name, startServer, opts) {
  const port = await freePort();
  const server = startServer(port);
  const exited = new Promise((resolve) => server.on('exit', resolve));
  await waitPort(port, 15000);
  await sleep(1000);
  const rssBefore = rssKb(server.pid);
  const url = `http://127.0.0.1:${port}`;
  const per = opts.clients / opts.workers;
  const workers = [];
  const tConnect = Date.now();
  for (let w = 0; w < opts.workers; w++) {
    workers.push(fork(__filename, ['--worker', url, String(w * per), String(per), String(opts.window)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }
  const message = (child, key) => new Promise((resolve, reject) => {
    child.on('message', (m) => { if (m[key] !== undefined) resolve(m[key]); });
    child.on('exit', (code) => reject(new Error(`worker exited (${code}) before ${key}`)));
  });
  await Promise.all(workers.map((w) => message(w, 'ready')));
  const connectMs = Date.now() - tConnect;
  await sleep(1500);
  const rssConnected = rssKb(server.pid);
  const phase = async (rate) => {
    const cpu0 = cpuSeconds(server.pid);
    const done = workers.map((w) => message(w, 'done'));
    workers.forEach((w) => w.send({ cmd: 'go', seconds: opts.seconds, rate: rate / opts.workers }));
    const results = await Promise.all(done);
    const cpu = cpuSeconds(server.pid) - cpu0;
    const sum = (k) => results.reduce((a, r) => a + r[k], 0);
    const relayed = sum('acked');
    return { relayed, received: sum('received'), errors: sum('errors'), cpu_seconds: +cpu.toFixed(2),
             messages_per_second: Math.round(relayed / opts.seconds), messages_per_cpu_second: Math.round(relayed / cpu) };
  };
  const paced = await phase(opts.rate);
  const saturated = await phase(0);
  const rssLoaded = rssKb(server.pid);
  workers.forEach((w) => w.send({ cmd: 'close' }));
  await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r() : w.on('exit', r)))));
  server.kill('SIGTERM');
  await exited;
  return {
    server: name, connect_ms: connectMs, paced, saturated,
    rss_before_kb: rssBefore, rss_connected_kb: rssConnected, rss_after_traffic_kb: rssLoaded,
    kb_per_connection: +((rssConnected - rssBefore) / opts.clients).toFixed(2),
  };
}

async function main() {
  const peerBin = path.resolve(process.argv[2] || '');
  if (!process.argv[2] || !fs.existsSync(peerBin)) {
    console.error('usage: node bench-peer.js <owt-peer binary> [--clients N] [--seconds S] [--workers W] [--window K] [--rate R] [--out FILE]');
    process.exit(2);
  }
  const opts = { clients: Number(arg('clients', 1000)), seconds: Number(arg('seconds', 10)),
                 workers: Number(arg('workers', 4)), window: Number(arg('window', 4)), rate: Number(arg('rate', 15000)) };
  if (opts.clients % (2 * opts.workers) !== 0) throw new Error('clients must be a multiple of 2 x workers');
  const out = path.resolve(arg('out', path.join(__dirname, '..', '..', 'bench', 'peer.json')));
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'owt-peer-bench-'));
  const startPeer = (port) => {
    // The rate limiter stays on (at its maximum) so its cost is measured too.
    fs.writeFileSync(path.join(configDir, 'peer.toml'),
      `[log]\nlevel = "warn"\n\n[peer]\nip_address = "127.0.0.1"\nport = ${port}\nmessages_per_second = 1000000\n`);
    return spawn(peerBin, ['--config-dir', configDir], { stdio: ['ignore', 'ignore', 'inherit'] });
  };
  const startNode = (port) => spawn(process.execPath, [path.join(__dirname, 'ref-peer-server.js'), String(port)],
                                    { stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(`owt-peer benchmark: ${opts.clients} socket.io-client 4 clients (WebSocket) in ${opts.clients / 2} pairs, ` +
              `${opts.seconds} s paced at ${opts.rate} messages/s, then ${opts.seconds} s saturated ` +
              `(${opts.window} in flight per client); ${os.cpus().length} CPUs shared by servers and clients`);
  const results = [];
  for (const [name, start] of [['owt-peer', startPeer], ['node socket.io 4', startNode]]) {
    const r = await run(name, start, opts);
    results.push(r);
    console.log(`  ${name}: done (connect ${r.connect_ms} ms)`);
  }
  fs.rmSync(configDir, { recursive: true, force: true });
  const [rust, node] = results;
  const ratio = (a, b) => +(a / b).toFixed(2);
  const ratios = {
    paced_messages_per_cpu_second: ratio(rust.paced.messages_per_cpu_second, node.paced.messages_per_cpu_second),
    saturated_messages_per_cpu_second: ratio(rust.saturated.messages_per_cpu_second, node.saturated.messages_per_cpu_second),
    memory_per_connection: +(rust.kb_per_connection / node.kb_per_connection).toFixed(3),
  };
  const pad = (v, n) => String(v).padStart(n);
  console.log('\nserver            load        relayed   msg/s  CPU-s  msg/CPU-s  errors');
  for (const r of results) {
    for (const load of ['paced', 'saturated']) {
      const x = r[load];
      console.log(`${r.server.padEnd(17)} ${load.padEnd(10)} ${pad(x.relayed, 8)} ${pad(x.messages_per_second, 7)} ` +
                  `${pad(x.cpu_seconds, 6)} ${pad(x.messages_per_cpu_second, 10)} ${pad(x.errors, 7)}`);
    }
  }
  console.log('\nserver            RSS before  RSS connected  KB/connection');
  for (const r of results) {
    console.log(`${r.server.padEnd(17)} ${pad(r.rss_before_kb + ' KB', 10)} ${pad(r.rss_connected_kb + ' KB', 14)} ${pad(r.kb_per_connection, 14)}`);
  }
  console.log(`\nowt-peer / node: ${ratios.paced_messages_per_cpu_second}x messages per CPU-second paced, ` +
              `${ratios.saturated_messages_per_cpu_second}x saturated (target >= 3); ` +
              `${ratios.memory_per_connection}x memory per connection (target <= 0.1)`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, options: opts, results, ratios }, null, 2) + '\n');
  console.log(`written ${out}`);
}

if (process.argv[2] === '--worker') worker().catch((e) => { console.error(e); process.exit(1); });
else main().catch((e) => { console.error(e); process.exit(1); });
