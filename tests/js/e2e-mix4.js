// MCU layout test with four publishers (run inside `unshare -n`, see tests/e2e/mix4.sh): four
// pages of one headless Chromium publish solid-colour canvases (red, green, blue, yellow) and
// are mixed into a view whose layout is a custom template (one tall region on the left, three
// on the right) on a white bgColor; a fifth page subscribes the mixed stream and samples the
// centre of every region; then green is unmixed and its region must show bgColor.
//   node e2e-mix4.js <signaling url> <room> <token>...(5: four publishers, one subscriber)
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');
const [url, room, ...tokens] = process.argv.slice(2);
const owtctl = (...args) => {
  const [bin, ...base] = process.env.OWTCTL.split(' ');
  return JSON.parse(execFileSync(bin, [...base, '--json', ...args], { encoding: 'utf8' }));
};

const bundle = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');
const page = fs.readFileSync(path.join(__dirname, 'e2e-page.html'));
const server = http.createServer((req, res) => {
  if (req.url === '/socket.io.js') { res.setHeader('Content-Type', 'text/javascript'); return res.end(fs.readFileSync(bundle)); }
  res.setHeader('Content-Type', 'text/html'); res.end(page);
});
const out = (obj, code) => { console.log(JSON.stringify(obj)); process.exit(code); };
setTimeout(() => out({ error: 'timeout after 120 s' }, 2), 120000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const COLOURS = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 220, 30]];
// Centres of the custom template's regions: left half, then the right column's thirds.
const CENTRES = [[0.25, 0.5], [0.75, 1 / 6], [0.75, 0.5], [0.75, 5 / 6]];

server.listen(0, '127.0.0.1', async () => {
  const origin = `http://localhost:${server.address().port}/`;
  let context;
  try {
    context = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), 'owt-mix4-')), {
      executablePath: '/usr/bin/chromium', headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
        '--disable-quic', '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
        '--autoplay-policy=no-user-gesture-required'],
    });
    const published = [];
    for (let i = 0; i < 4; i++) {
      const p = await context.newPage();
      await p.goto(origin);
      const result = await p.evaluate(([u, t, c]) => window.publishCanvas(u, t, c), [url, tokens[i], COLOURS[i]]);
      owtctl('stream', 'mix', room, result.id, 'common');
      published.push(result.id);
    }
    const sub = await context.newPage();
    await sub.goto(origin);
    await sub.evaluate(([u, t, s]) => window.subscribe(u, t, s), [url, tokens[4], `${room}-common`]);
    await sleep(5000);
    const probe = await sub.evaluate(() => window.probe());
    const four = { width: probe.width, height: probe.height, frames: probe.frames,
                   pixels: await sub.evaluate((pts) => window.pixels(pts), CENTRES),
                   layout: (await sub.evaluate(() => window.updates || {}))['video.layout'] };
    owtctl('stream', 'unmix', room, published[1], 'common');
    // Until the new layout reaches the subscriber (the last region turns white), at most 8 s.
    let pixels;
    for (const until = Date.now() + 8000; ;) {
      pixels = await sub.evaluate((pts) => window.pixels(pts), CENTRES);
      if (pixels[3].every((v) => v > 200) || Date.now() > until) break;
      await sleep(250);
    }
    const three = { pixels,
                    frames: (await sub.evaluate(() => window.probe())).frames };
    out({ published, four, three }, 0);
  } catch (err) {
    out({ error: String(err && err.stack || err) }, 1);
  } finally {
    if (context) await context.close().catch(() => {});
  }
});
