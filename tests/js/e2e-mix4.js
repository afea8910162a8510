// MCU layout test with four publishers (run inside `unshare -n`, see tests/e2e/mix4.sh): four
// pages of one headless Chromium publish solid-colour canvases (red, green, blue, yellow) and
// are mixed into a view whose layout is a custom template (one tall region on the left, three
// on the right) on a white bgColor; a fifth page subscribes the mixed stream and samples the
// centre of every region; then green is unmixed and its region must show bgColor.
//   node e2e-mix4.js <signaling url> <room> <token>...(5: four publishers, one subscriber)
const { out, deadline, sleep, owtctl, serve, launch, SOCKET_IO_4 } = require('./e2e-harness');
const [url, room, ...tokens] = process.argv.slice(2);

deadline(120000);
const COLOURS = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 220, 30]];
// Centres of the custom template's regions: left half, then the right column's thirds.
const CENTRES = [[0.25, 0.5], [0.75, 1 / 6], [0.75, 0.5], [0.75, 5 / 6]];

serve(SOCKET_IO_4, async (origin) => {
  let context;
  try {
    context = await launch('owt-mix4-');
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
