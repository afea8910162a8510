// Browser test of the sample web application (share/owt/app, served by owt-portal's [app]):
// headless Chromium pages open the page like a person would and use it.
//
//   unshare -n sh -c 'ip link set lo up; exec node app-browser.js <owt-portal> <portal config dir> <app port> \
//                     [<owt-webrtc> <webrtc config dir>]'
//
// Starts owt-portal (and owt-webrtc when given) in this network namespace, then opens
// alice and bob with ?forward=true (both publish the fake camera) and carol with
// ?publish=false (mixed-stream mode). Checks that each page lists every participant, that a
// chat message typed by alice appears on bob's and carol's page, and that the page shows the
// outcome of publishing. The Socket.IO traffic of each page is read off the wire (polling
// bodies and WebSocket frames): when the server refused the publication (ack error or
// `progress` error) the page must show the server's exact words; when it took it, the page
// shows the publication ready or names the browser-side failure. Every error string the
// server sent must appear in the page's log. Prints JSON lines, an `outcome` line per page
// (which of these happened), then PASS or FAIL.
'use strict';
const fs = require('fs'), os = require('os'), path = require('path'), net = require('net');
const { spawn } = require('child_process');
const { chromium } = require('playwright-core');

const [portalBin, portalConfig, appPort, webrtcBin, webrtcConfig, mixerBin] = process.argv.slice(2);
const log = (obj) => console.log(JSON.stringify(obj));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function waitPort(port, deadlineMs) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + deadlineMs;
    const attempt = () => {
      const c = net.connect(Number(port), '127.0.0.1');
      c.on('connect', () => { c.destroy(); resolve(); });
      c.on('error', () => { if (Date.now() > deadline) reject(new Error('port ' + port + ' not listening')); else setTimeout(attempt, 50); });
    };
    attempt();
  });
}

// Starts a daemon; resolves `ready` when its stderr shows `readyText` (or at once without one).
function daemon(name, bin, configDir, readyText) {
  const child = spawn(bin, ['--config-dir', configDir], { stdio: ['ignore', 'ignore', 'pipe'], env: Object.assign({}, process.env, { RUST_LOG: 'info' }) });
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let seen = '';
  const ready = new Promise((resolve, reject) => {
    if (!readyText) resolve();
    child.stderr.on('data', (chunk) => {
      const text = chunk.toString();
      seen += text;
      process.stderr.write(text.replace(/^/gm, name + ': '));
      if (readyText && seen.includes(readyText)) resolve();
    });
    exit.then((status) => reject(new Error(name + ' exited early: ' + JSON.stringify(status))));
  });
  ready.catch(() => {});
  return { child, exit, ready };
}

// What one page and the server said to each other over Socket.IO, read off the wire
// (long-polling bodies and WebSocket frames): the requests the page sent with ack ids,
// the acks, and `progress` notifications.
class Wire {
  constructor() { this.requests = new Map(); this.acks = new Map(); this.progress = []; }

  packets(payload) {
    const out = [];
    for (const record of String(payload).split('\x1e')) {
      const m = /^4([23])(\d*)(\[.*)$/s.exec(record);
      if (!m) continue;
      try { out.push({ type: m[1], id: m[2], args: JSON.parse(m[3]) }); } catch (e) { /* not JSON */ }
    }
    return out;
  }

  sent(payload) {
    for (const p of this.packets(payload)) if (p.type === '2' && p.id) this.requests.set(p.id, p.args[0]);
  }

  received(payload) {
    for (const p of this.packets(payload)) {
      if (p.type === '3') this.acks.set(p.id, p.args);
      else if (p.args[0] === 'progress' && p.args[1]) this.progress.push(p.args[1]);
    }
  }

  // Every error string the server sent: ack errors and progress errors.
  errors() {
    const acks = Array.from(this.acks.values()).filter((a) => a[0] === 'error').map((a) => String(a[1]));
    const progress = this.progress.filter((m) => m.status === 'error').map((m) => String(m.data));
    return acks.concat(progress);
  }

  // What the server answered to the page's publish: {error} from the ack or a progress
  // error of the publication (or of its whole transport), {id} when it said nothing bad.
  publishOutcome() {
    const id = Array.from(this.requests.entries()).filter(([, name]) => name === 'publish').map(([id]) => id).pop();
    if (id === undefined) return null;
    const ack = this.acks.get(id);
    if (!ack) return { pending: true };
    if (ack[0] === 'error') return { error: String(ack[1]) };
    const failed = this.progress.find((m) => m.status === 'error' && (m.sessionId === ack[1].id || !m.sessionId));
    return failed ? { error: String(failed.data) } : { id: ack[1].id };
  }
}

async function openPage(ctx, name, query) {
  const page = await ctx.newPage();
  const wire = new Wire();
  page.on('console', (m) => log({ page: name, console: m.text() }));
  page.on('pageerror', (e) => log({ page: name, pageerror: String(e) }));
  // APP_BROWSER_TRACE=1 prints every Socket.IO frame of the page (SDP included).
  const trace = (direction, payload) => { if (process.env.APP_BROWSER_TRACE) log({ page: name, [direction]: String(payload) }); };
  page.on('websocket', (ws) => {
    ws.on('framereceived', (f) => { trace('received', f.payload); wire.received(f.payload); });
    ws.on('framesent', (f) => { trace('sent', f.payload); wire.sent(f.payload); });
  });
  page.on('request', (r) => {
    if (r.url().includes('/socket.io/') && r.method() === 'POST') { trace('sent', r.postData()); wire.sent(r.postData()); }
  });
  page.on('response', async (r) => {
    if (!r.url().includes('/socket.io/') || r.request().method() !== 'GET') return;
    try { const body = await r.text(); trace('received', body); wire.received(body); } catch (e) { /* body gone */ }
  });
  await page.goto(`http://127.0.0.1:${appPort}/?${query}`);
  return { name, page, wire };
}

const texts = (page, selector) => page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent));

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await sleep(200);
  }
}

// Where a page stands: publication, remote videos, log.
function snapshot(p) {
  return p.page.evaluate(() => ({
    status: document.getElementById('status').textContent,
    publication: { state: document.getElementById('publication').dataset.state, text: document.getElementById('publication').textContent },
    remote: Array.from(document.querySelectorAll('#remote-videos figure')).map((f) => {
      const v = f.querySelector('video');
      return { stream: f.dataset.stream, state: f.dataset.state || 'subscribing', text: f.querySelector('.state').textContent,
               videoWidth: v.videoWidth, videoHeight: v.videoHeight };
    }),
    log: Array.from(document.querySelectorAll('#log li')).map((li) => li.textContent),
  }));
}

(async () => {
  const t0 = Date.now();
  const daemons = [];
  let ok = false, ctx = null;
  try {
    const portal = daemon('portal', portalBin, portalConfig, 'owt-portal ready');
    daemons.push(portal);
    await portal.ready;
    await waitPort(appPort, 10000);
    if (webrtcBin) {
      const webrtc = daemon('webrtc', webrtcBin, webrtcConfig, 'bus: registered with the portal');
      daemons.push(webrtc);
      await Promise.race([webrtc.ready, sleep(10000).then(() => { throw new Error('owt-webrtc did not register in 10 s'); })]);
    }
    if (mixerBin) {
      // The mixer reads mixer.toml from the same directory: the embedded defaults serve.
      const mixer = daemon('mixer', mixerBin, webrtcConfig, 'bus: registered with the portal');
      daemons.push(mixer);
      await Promise.race([mixer.ready, sleep(10000).then(() => { throw new Error('owt-mixer did not register in 10 s'); })]);
    }
    log({ step: 'daemons up', ms: Date.now() - t0, webrtc: Boolean(webrtcBin), mixer: Boolean(mixerBin) });
    ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), 'owt-app-chr-')), {
      executablePath: '/usr/bin/chromium', headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
             '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
             '--autoplay-policy=no-user-gesture-required'] });
    const alice = await openPage(ctx, 'alice', 'user=alice&forward=true');
    const bob = await openPage(ctx, 'bob', 'user=bob&forward=true');
    const carol = await openPage(ctx, 'carol', 'user=carol&publish=false');
    const pages = [alice, bob, carol];

    // Everybody sees everybody.
    for (const p of pages) {
      await waitFor(p.name + "'s participant list", async () => {
        const users = await texts(p.page, '#participants .user');
        return ['alice', 'bob', 'carol'].every((u) => users.includes(u)) && users;
      }, 15000);
    }
    log({ step: 'every participant list shows alice, bob and carol', ms: Date.now() - t0 });

    // Chat typed by alice reaches the others.
    const message = 'hello from alice ' + Math.random().toString(36).slice(2, 8);
    await alice.page.fill('#chat-input', message);
    await alice.page.click('#chat-send');
    for (const p of [bob, carol]) {
      await waitFor(p.name + "'s chat", async () => (await texts(p.page, '#chat-messages li')).includes('alice: ' + message), 10000);
    }
    log({ step: 'chat message arrived', message, ms: Date.now() - t0 });

    // Publication outcome on the publishing pages.
    for (const p of [alice, bob]) {
      await waitFor(p.name + "'s publication outcome", async () => {
        const state = await p.page.$eval('#publication', (e) => e.dataset.state);
        return state === 'ready' || state === 'error';
      }, 30000);
    }
    // Let subscriptions settle (ready, error or still pending after 15 s).
    await waitFor('subscriptions to settle', async () => {
      for (const p of pages) {
        const s = await snapshot(p);
        if (s.remote.some((r) => r.state === 'subscribing' || (r.state === 'pending' && Date.now() - t0 < 15000))) return false;
      }
      return true;
    }, 45000).catch((err) => log({ note: String(err.message) }));
    await sleep(1500);

    ok = true;
    for (const p of pages) {
      const s = await snapshot(p);
      const serverErrors = p.wire.errors();
      const server = p.wire.publishOutcome();
      log({ page: p.name, snapshot: s, serverErrors, publish: server });
      let outcome = 'not publishing';
      if (p.name !== 'carol') {
        if (s.publication.state === 'ready') outcome = 'publication ready';
        else if (server && server.error) outcome = 'publish refused by the server: ' + server.error;
        else outcome = 'publish failed in the browser: ' + s.publication.text;
      }
      console.log(`outcome ${p.name}: ${outcome}; remote: ${JSON.stringify(s.remote.map((r) => ({ state: r.state, text: r.text, size: r.videoWidth + 'x' + r.videoHeight })))}`);
      // APP_BROWSER_SCREENSHOTS=<dir> keeps a picture of every page.
      if (process.env.APP_BROWSER_SCREENSHOTS) {
        await p.page.screenshot({ path: path.join(process.env.APP_BROWSER_SCREENSHOTS, p.name + '.png'), fullPage: true });
      }
      const check = (good, what) => { if (!good) { ok = false; log({ page: p.name, failed: what }); } };
      const logText = s.log.join('\n');
      for (const error of serverErrors) check(logText.includes(error), 'server error missing from the log: ' + error);
      if (p.name === 'carol') {
        // With a mixer, carol (?publish=false) watches the mixed view the pages mixed into.
        if (mixerBin) check(s.remote.some((r) => r.state === 'ready' && r.videoWidth > 0), 'carol sees the mixed stream');
        continue;
      }
      check(server !== null, 'the page sent no publish request');
      if (server && server.error) {
        // The server refused: the page shows its words, unchanged.
        check(s.publication.state === 'error' && s.publication.text.includes(server.error), 'publication shows ' + s.publication.text);
      } else if (server && server.id) {
        // The server took it: ready, or a browser-side failure the page names.
        check(s.publication.state === 'ready' ? s.publication.text.includes(server.id) : s.publication.state === 'error',
          'publication shows ' + JSON.stringify(s.publication));
      } else {
        check(false, 'publish got no answer');
      }
    }
  } catch (err) {
    log({ error: String(err && err.stack || err) });
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    for (const d of daemons.reverse()) d.child.kill('SIGTERM');
  }
  for (const d of daemons) {
    const status = await Promise.race([d.exit, sleep(10000).then(() => null)]);
    if (!status) { d.child.kill('SIGKILL'); ok = false; log({ daemonDidNotStop: d.child.spawnfile }); }
    else if (status.code !== 0) { ok = false; log({ daemonExit: d.child.spawnfile, status }); }
  }
  log({ elapsedMs: Date.now() - t0 });
  console.log(ok ? 'PASS' : 'FAIL');
  process.exit(ok ? 0 : 1);
})();
