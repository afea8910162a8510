// End-to-end MCU test in headless Chromium (run inside `unshare -n`, see tests/e2e/mix.sh):
// two browsers publish solid-colour video (y4m files) and different tones through owt-portal
// and owt-webrtc; a third page subscribes the room's mixed stream, rendered by owt-mixer.
// Prints one JSON line with what the subscriber saw: size, frames, colours at the regions of
// the layout, audio levels at both tones; then again after one publisher left.
//   node e2e-mix.js <signaling url> <token A> <token B> <subscriber token> <mixed stream id>
// FAKE_A / FAKE_B: "<video.y4m>:<audio.wav>" of each publisher.
const { out, deadline, sleep, owtctl, serve, launch, SOCKET_IO_4 } = require('./e2e-harness');
const fs = require('fs');
const os = require('os');
const path = require('path');
const [url, tokenA, tokenB, subToken, mixedId, transToken, variantToken] = process.argv.slice(2);

deadline(150000);
const isRed = (p) => p[0] > 150 && p[2] < 100;
const isBlue = (p) => p[2] > 150 && p[0] < 100;
// Samples `points` until `check` holds (a layout change has reached the subscriber) or
// `ms` pass; returns the last sample (the test judges it).
const settle = async (page, points, check, ms = 8000) => {
  const until = Date.now() + ms;
  for (;;) {
    const pixels = await page.evaluate((pts) => window.pixels(pts), points);
    if (check(pixels) || Date.now() > until) return pixels;
    await sleep(250);
  }
};

// One browser per publisher: Chromium's fake capture files are per browser.
const launchWithFakes = (fake) => {
  const [video, audio] = fake.split(':');
  return launch('owt-mix-', [`--use-file-for-fake-video-capture=${video}`, `--use-file-for-fake-audio-capture=${audio}`]);
};

serve(SOCKET_IO_4, async (origin) => {
  const contexts = [];
  try {
    contexts.push(await launchWithFakes(process.env.FAKE_A), await launchWithFakes(process.env.FAKE_B));
    const [pubA, pubB, sub] = [await contexts[0].newPage(), await contexts[1].newPage(), await contexts[0].newPage()];
    for (const p of [pubA, pubB, sub]) await p.goto(origin);
    const publish = (p, token) => p.evaluate(([u, t]) => window.publish(u, t, 'VP8').then((r) => { window.publishedId = r.id; return r; }), [url, token]);
    // As OWT's sample app: streams are mixed into the view when the application asks.
    const room = mixedId.replace(/-common$/, '');
    const a = await publish(pubA, tokenA);
    a.mixed = owtctl('stream', 'mix', room, a.id, 'common').info.inViews;
    await sleep(500);
    const b = await publish(pubB, tokenB);
    b.mixed = owtctl('stream', 'mix', room, b.id, 'common').info.inViews;
    // A view that does not exist is refused, and changes nothing.
    let badView = null;
    try { owtctl('stream', 'mix', room, a.id, 'nope'); } catch (err) { badView = { status: err.status, stderr: String(err.stderr) }; }
    badView.inViews = owtctl('stream', 'show', room, a.id).info.inViews;
    const joinStart = Date.now();
    const subscribed = await sub.evaluate(([u, t, s]) => window.subscribe(u, t, s), [url, subToken, mixedId]);
    if (subscribed.error) throw new Error('subscribe: ' + subscribed.error);
    let firstFrameMs = null;
    for (let i = 0; i < 200 && firstFrameMs === null; i++) {
      if ((await sub.evaluate(() => window.probe())).frames > 0) firstFrameMs = Date.now() - joinStart;
      else await sleep(50);
    }
    await sleep(3000);
    // Fluid layout with two inputs: 2x2 grid, A top left, B top right, bottom row bgColor.
    const points = [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]];
    const samples = [];
    for (let i = 0; i < 4; i++) {
      await sleep(1000);
      const p = await sub.evaluate(() => window.probe());
      samples.push({ width: p.width, height: p.height, frames: p.frames, codecs: p.codecs, state: p.state,
                     pixels: await sub.evaluate((pts) => window.pixels(pts), points),
                     levels: await sub.evaluate(() => window.levels([440, 1000, 3000])) });
    }
    const updates = await sub.evaluate(() => window.updates || {});
    // The application swaps the two regions (REST /info/layout through owtctl stream layout).
    const current = updates['video.layout'] || [];
    const swapped = current.map((item, i) => (i < 2 ? { stream: current[1 - i].stream, region: item.region } : { region: item.region }));
    const layoutFile = path.join(os.tmpdir(), `owt-layout-${process.pid}.json`);
    fs.writeFileSync(layoutFile, JSON.stringify(swapped));
    const swap = { answer: owtctl('stream', 'layout', room, mixedId, layoutFile).info.layout };
    swap.pixels = await settle(sub, points, (p) => isBlue(p[0]) && isRed(p[1]));
    swap.announced = (await sub.evaluate(() => window.updates || {}))['video.layout'];
    // The mixer rendering the view dies (SIGKILL): the portal moves the view to the other
    // mixer and the subscriber's frames go on without any client action.
    const mixers = owtctl('cluster').filter((w) => w.kind === 'mixer');
    const busy = mixers.find((w) => w.tasks > 0);
    const failover = { mixers: mixers.length, killed: busy && busy.node_id };
    if (busy) {
      process.kill(busy.pid, 'SIGKILL');
      const killedAt = Date.now();
      await sleep(1000);
      const stalled = (await sub.evaluate(() => window.probe())).frames;
      failover.framesAtKill = stalled;
      for (let i = 0; i < 60; i++) {
        await sleep(250);
        const frames = (await sub.evaluate(() => window.probe())).frames;
        if (frames >= stalled + 30) { failover.resumedAfterMs = Date.now() - killedAt; break; }
      }
      await sleep(1000);
      failover.pixels = await sub.evaluate((pts) => window.pixels(pts), points);
      failover.mixersAfter = owtctl('cluster').filter((w) => w.kind === 'mixer').map((w) => ({ node: w.node_id, tasks: w.tasks }));
    }
    // The publishers use OWT's legacy stream-control: A takes region 1 back (B moves to A's
    // old region), then B asks where it is.
    const control = (p, data) => p.evaluate((d) => request(window.publisher.socket, 'stream-control', d), data);
    const regions = {
      setRegion: await control(pubA, { id: a.id, operation: 'set-region', data: { view: 'common', region: '1' } }),
      getRegion: await control(pubB, { id: b.id, operation: 'get-region', data: 'common' }),
      refused: await control(pubB, { id: a.id, operation: 'set-region', data: { view: 'common', region: '2' } }).catch((e) => String(e)),
    };
    regions.pixels = await settle(sub, points, (p) => isRed(p[0]) && isBlue(p[1]));
    // Transcoding: A's VP8 asked for as H.264 at 160x120 and its Opus as PCMU by another page.
    const trans = await contexts[1].newPage();
    await trans.goto(origin);
    const asked = { format: { codec: 'h264' }, parameters: { resolution: { width: 160, height: 120 } } };
    const askedAudio = { format: { codec: 'pcmu' } };
    const transSub = await trans.evaluate(([u, t, s, v, au]) => window.subscribe(u, t, s, v, au), [url, transToken, a.id, asked, askedAudio]);
    let transcoded = { subscribed: transSub };
    if (!transSub.error) {
      await sleep(3000);
      const first = await trans.evaluate(() => window.probe());
      await sleep(1000);
      const p = await trans.evaluate(() => window.probe());
      transcoded = { ...transcoded, width: p.width, height: p.height, framesFrom: first.frames, framesTo: p.frames,
                     codecs: p.codecs, peakHz: p.peakHz, rms: p.rms, pixel: (await trans.evaluate(() => window.pixels([[0.5, 0.5]])))[0] };
    }
    // A variant of the mixed stream: the view in H.264 at 320x240 (same layout).
    const variantSub = await trans.evaluate(([u, t, s, v]) => window.subscribe(u, t, s, v),
      [url, variantToken, mixedId, { format: { codec: 'h264' }, parameters: { resolution: { width: 320, height: 240 } } }]);
    let variant = { subscribed: variantSub };
    if (!variantSub.error) {
      await sleep(3000);
      const p = await trans.evaluate(() => window.probe());
      variant = { ...variant, width: p.width, height: p.height, frames: p.frames, codecs: p.codecs,
                  pixels: await trans.evaluate((pts) => window.pixels(pts), points) };
    }
    transcoded.variant = variant;
    await trans.close();
    // B leaves: one input, the fluid layout's single region fills the frame with A.
    await pubB.evaluate(() => window.unpublish());
    const afterLeave = { pixels: await settle(sub, points, (p) => p.every(isRed)),
                         frames: (await sub.evaluate(() => window.probe())).frames };
    afterLeave.layout = (await sub.evaluate(() => window.updates || {}))['video.layout'];
    out({ published: [a, b], badView, swap, regions, subscribed, firstFrameMs, samples, transcoded, updates, failover, afterLeave }, 0);
  } catch (err) {
    out({ error: String(err && err.stack || err) }, 1);
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
  }
});
