// End-to-end forward-stream test in headless Chromium (run inside `unshare -n`, see
// tests/e2e/forward.sh): one page publishes camera+mic through owt-portal and owt-webrtc,
// another subscribes the forward stream. Prints one JSON line with what the subscriber saw
// over time, then after unpublish; exits non-zero on a failure it can name.
//   node e2e-forward.js <signaling url> <publisher token> <subscriber token> [VP8|H264|VP9]
const { out, deadline, owtctl, serve, launch, SOCKET_IO_4 } = require('./e2e-harness');
const [url, pubToken, subToken, codec = 'VP8'] = process.argv.slice(2);
// The room of the REST steps (owtctl from OWTCTL).
const room = process.env.OWT_ROOM;

deadline(120000);

serve(SOCKET_IO_4, async (origin) => {
  const context = await launch('owt-e2e-', process.env.OWT_FAKE_AUDIO ? [`--use-file-for-fake-audio-capture=${process.env.OWT_FAKE_AUDIO}`] : []);
  try {
    const [pub, sub] = [await context.newPage(), await context.newPage()];
    await pub.goto(origin); await sub.goto(origin);
    const published = await pub.evaluate(([u, t, c]) => window.publish(u, t, c).then((r) => { window.publishedId = r.id; return r; }), [url, pubToken, codec]);
    const subscription = await sub.evaluate(([u, t, s]) => window.subscribe(u, t, s), [url, subToken, published.id]);
    const samples = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const p = await sub.evaluate(() => window.probe());
      samples.push({ width: p.width, height: p.height, frames: p.frames, rms: p.rms, peakHz: p.peakHz, codecs: p.codecs, state: p.state, inbound: p.inbound });
    }
    // Transports per webrtc node while both pages are in: with NODES=2, one on each.
    const nodeTasks = owtctl('cluster').filter((w) => w.kind === 'webrtc').map((w) => w.tasks);
    // REST: pause the publication's video for everyone, then resume it.
    const frames = async () => (await sub.evaluate(() => window.probe())).frames;
    const paused = owtctl('stream', 'pause', room, published.id, '--kind', 'video');
    await new Promise((r) => setTimeout(r, 1500));
    const pausedFrom = await frames();
    await new Promise((r) => setTimeout(r, 1000));
    const pausedTo = await frames();
    owtctl('stream', 'play', room, published.id, '--kind', 'video');
    await new Promise((r) => setTimeout(r, 2000));
    const resumed = await frames();
    const pause = { status: paused.media.video.status, pausedFrom, pausedTo, resumed };
    const stats = owtctl('stream', 'stats', room, published.id);
    const subscriptionStats = owtctl('stream', 'stats', room, subscription.id);
    const second = await sub.evaluate((c) => window.publishToo(c), codec);
    if (second.id) {
      await new Promise((r) => setTimeout(r, 500));
      second.restDelete = owtctl('stream', 'delete', room, second.id);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const both = await sub.evaluate(() => window.probe());
    await pub.evaluate(() => window.unpublish());
    await new Promise((r) => setTimeout(r, 1500));
    const after = await sub.evaluate(() => window.probe());
    const streamLog = after.log.filter((l) => l[0] === 'stream');
    // The subscription of the unpublished stream ends: OWT tells its owner 'Source stream loss'.
    const sourceLoss = after.log.filter((l) => l[0] === 'progress' && l[1] === 'error');
    // The publisher's browser tab dies: after reconnection_timeout its participant leaves and
    // its transport is closed on the node.
    const tasksBefore = owtctl('cluster').find((w) => w.kind === 'webrtc').tasks;
    await pub.close();
    await new Promise((r) => setTimeout(r, 4000));
    const killed = {
      participants: owtctl('participant', 'list', room).length,
      tasksBefore,
      tasksAfter: owtctl('cluster').find((w) => w.kind === 'webrtc').tasks,
      leaveSeen: (await sub.evaluate(() => window.participantLog || [])).length,
    };
    // The webrtc node dies (SIGKILL): after the missed heartbeats the portal fails the
    // sessions it carried, and the subscriber is told (user guide Table 2-6: stream-failed).
    let nodeDeath = null;
    if (process.env.WEBRTC_PID) {
      // A session for the node to carry when it dies (the subscription ended with its source).
      const live = await sub.evaluate((c) => window.publishToo(c), codec);
      process.kill(Number(process.env.WEBRTC_PID), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 5000));
      const log = (await sub.evaluate(() => window.probe())).log;
      nodeDeath = { live, progressErrors: log.filter((l) => l[0] === 'progress' && l[1] === 'error'),
                    workers: owtctl('cluster').length };
    }
    await context.close();
    out({ codec, nodeTasks, nodeDeath, published, subscription, sourceLoss, samples, pause, stats, subscriptionStats, killed, second, framesWhilePublishingToo: both.frames, streamLog, framesAfterUnpublish: after.frames }, 0);
  } catch (err) {
    await context.close().catch(() => {});
    out({ error: String(err && err.stack || err) }, 1);
  }
});
