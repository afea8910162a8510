// What every e2e-*.js browser driver needs (run inside `unshare -n`, see tests/e2e/*.sh): the
// test page (e2e-page.html with a socket.io-client bundle as /socket.io.js) on a loopback
// port, headless Chromium with fake capture devices, `owtctl` for REST steps, and the one
// JSON line a driver prints before it exits.
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');

// socket.io-client 4.x, what the JS SDK 5.1 samples load.
const SOCKET_IO_4 = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
  '--disable-quic', '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required'];

// Prints the driver's result line and exits with `code`.
const out = (obj, code) => { console.log(JSON.stringify(obj)); process.exit(code); };

// Gives up with a result line after `ms`.
const deadline = (ms) => setTimeout(() => out({ error: `timeout after ${ms / 1000} s` }, 2), ms);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `owtctl --config-dir DIR` from OWTCTL, with --json; its parsed output.
const owtctl = (...args) => {
  const [bin, ...base] = process.env.OWTCTL.split(' ');
  return JSON.parse(execFileSync(bin, [...base, '--json', ...args], { encoding: 'utf8' }));
};

// Serves the test page with `bundle` as /socket.io.js on a loopback port, then runs `run(origin)`.
const serve = (bundle, run) => {
  const page = fs.readFileSync(path.join(__dirname, 'e2e-page.html'));
  const server = http.createServer((req, res) => {
    if (req.url === '/socket.io.js') { res.setHeader('Content-Type', 'text/javascript'); return res.end(fs.readFileSync(bundle)); }
    res.setHeader('Content-Type', 'text/html'); res.end(page);
  });
  server.listen(0, '127.0.0.1', () => run(`http://localhost:${server.address().port}/`));
};

// A headless Chromium with its own profile directory (`prefix` names it; removed at exit, when
// Chromium no longer writes to it) and `extraArgs`.
const launch = async (prefix, extraArgs = []) => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => {
    try { fs.rmSync(profile, { recursive: true, force: true }); } catch (_) { /* left to TMPDIR's owner */ }
  });
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, args: [...CHROMIUM_ARGS, ...extraArgs],
  });
};

module.exports = { SOCKET_IO_4, out, deadline, sleep, owtctl, serve, launch };
