// Every media request of the OWT client protocol over an older socket.io-client, in headless
// Chromium (run inside `unshare -n`, see tests/e2e/clients.sh): the page of e2e-page.html gets
// the socket.io-client 2.x (EIO=3) or 3.x (EIO=4) bundle as /socket.io.js. One page publishes
// VP8+Opus, another subscribes; then stream-control pause/play of the publication's video,
// subscription-control pause/play of the subscription's video, unsubscribe and unpublish,
// each with what the subscriber saw. Prints one JSON line; exits non-zero on a failure it can name.
//   node e2e-clients.js <signaling url> <publisher token> <subscriber token> <2|3>
const { out, deadline, sleep, owtctl, serve, launch } = require('./e2e-harness');
const path = require('path');
const [url, pubToken, subToken, version] = process.argv.slice(2);
// The room of the REST checks (owtctl from OWTCTL).
const room = process.env.OWT_ROOM;

// package.json installs socket.io-client 2.x as `sio2` and 3.x as `sio3`.
const packageName = { 2: 'sio2', 3: 'sio3' }[version];
if (!packageName) out({ error: `unknown socket.io-client major version ${version}` }, 2);
const packageDir = path.dirname(require.resolve(`${packageName}/package.json`));
const clientVersion = require(`${packageName}/package.json`).version;
const bundle = path.join(packageDir, 'dist', 'socket.io.js');
deadline(90000);

// Runs in the page: the Socket.IO protocol of the loaded bundle and the Engine.IO transport
// the client ended on; waits (at most 5 s) for the upgrade from long-polling to websocket.
async function transportOf(which) {
  const socket = window[which].socket || window[which].client.socket;
  const engine = socket.io.engine;
  for (let i = 0; i < 50 && engine.transport.name !== 'websocket'; i++) await new Promise((r) => setTimeout(r, 100));
  return { socketIoProtocol: io.protocol, eio: String(engine.transport.query.EIO), transport: engine.transport.name };
}

// Runs in the page: an OWT request whose outcome is recorded instead of thrown.
async function tryRequest([which, event, data]) {
  const socket = window[which].socket || window[which].client.socket;
  try {
    return { ok: true, ack: (await request(socket, event, data)) ?? null };
  } catch (err) {
    return { ok: false, error: String(err.message || err) };
  }
}

serve(bundle, async (origin) => {
  const context = await launch('owt-e2e-');
  try {
    const [pub, sub] = [await context.newPage(), await context.newPage()];
    await pub.goto(origin); await sub.goto(origin);
    const published = await pub.evaluate(([u, t]) => window.publish(u, t, 'VP8').then((r) => { window.publishedId = r.id; return r; }), [url, pubToken]);
    const subscribed = await sub.evaluate(([u, t, s]) => window.subscribe(u, t, s), [url, subToken, published.id]);
    // Every `stream` notification the subscriber gets from now on, whole.
    await sub.evaluate(() => { window.streamNotes = []; window.subscriber.client.socket.on('stream', (m) => window.streamNotes.push(m)); });
    const transports = { publisher: await pub.evaluate(transportOf, 'publisher'), subscriber: await sub.evaluate(transportOf, 'subscriber') };

    const frames = async () => (await sub.evaluate(() => window.probe())).frames;
    // RTP packets of video the subscriber's connection received: the node's sending, not the decoder.
    const packets = () => sub.evaluate(async () => {
      let count = 0;
      (await window.subscriber.client.pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') count += r.packetsReceived; });
      return count;
    });
    // Frames over `ms`, polled until they advance by `enough` (at most `ms`).
    const advance = async (enough, ms) => {
      const from = await frames();
      let to = from;
      for (let waited = 0; waited < ms && to < from + enough; waited += 200) { await sleep(200); to = await frames(); }
      return { from, to };
    };
    // Frames across one second, after a settling pause for frames already on their way.
    const standStill = async () => {
      await sleep(1500);
      const [from, packetsFrom] = [await frames(), await packets()];
      await sleep(1000);
      return { from, to: await frames(), packetsFrom, packetsTo: await packets() };
    };
    const codecs = (await sub.evaluate(() => window.probe())).codecs;
    const flowing = await advance(30, 8000);

    // The publisher pauses its video (SDK Publication.mute): every subscriber is told, frames stop.
    const streamPause = await pub.evaluate(tryRequest, ['publisher', 'stream-control', { id: published.id, operation: 'pause', data: 'video' }]);
    const streamPaused = await standStill();
    const restWhilePaused = owtctl('stream', 'show', room, published.id);
    const streamPlay = await pub.evaluate(tryRequest, ['publisher', 'stream-control', { id: published.id, operation: 'play', data: 'video' }]);
    const streamResumed = await advance(15, 8000);
    const restWhilePlaying = owtctl('stream', 'show', room, published.id);
    // REST streams have OWT's 1.0 form: media.video.status.
    const videoStatus = (info) => info.media.video.status;

    // The subscriber pauses its own subscription's video (SDK Subscription.mute).
    const subPause = await sub.evaluate(tryRequest, ['subscriber', 'subscription-control', { id: subscribed.id, operation: 'pause', data: 'video' }]);
    const subPaused = await standStill();
    const subPlay = await sub.evaluate(tryRequest, ['subscriber', 'subscription-control', { id: subscribed.id, operation: 'play', data: 'video' }]);
    const subResumed = await advance(15, 8000);

    // Unsubscribe: the subscription is gone from the portal (controlling or ending it again is
    // refused), its media stops, and the publication goes on.
    const unsubscribe = await sub.evaluate(tryRequest, ['subscriber', 'unsubscribe', { id: subscribed.id }]);
    const unsubscribed = await standStill();
    const controlAfter = await sub.evaluate(tryRequest, ['subscriber', 'subscription-control', { id: subscribed.id, operation: 'play', data: 'video' }]);
    const unsubscribeAgain = await sub.evaluate(tryRequest, ['subscriber', 'unsubscribe', { id: subscribed.id }]);
    const streamsAfterUnsubscribe = owtctl('stream', 'list', room).map((s) => s.id);

    const unpublish = await pub.evaluate(tryRequest, ['publisher', 'unpublish', { id: published.id }]);
    await sleep(1000);
    const streamsAfterUnpublish = owtctl('stream', 'list', room).map((s) => s.id);
    const streamNotes = await sub.evaluate(() => window.streamNotes);
    const transportsAtEnd = { publisher: await pub.evaluate(transportOf, 'publisher'), subscriber: await sub.evaluate(transportOf, 'subscriber') };
    await context.close();
    out({
      version, clientVersion, transports, transportsAtEnd, published, subscribed, codecs, flowing,
      streamControl: { pause: streamPause, paused: streamPaused, play: streamPlay, resumed: streamResumed,
        restVideoStatus: { paused: videoStatus(restWhilePaused), playing: videoStatus(restWhilePlaying) } },
      subscriptionControl: { pause: subPause, paused: subPaused, play: subPlay, resumed: subResumed },
      unsubscribe: { ack: unsubscribe, frames: unsubscribed, controlAfter, again: unsubscribeAgain, streams: streamsAfterUnsubscribe },
      unpublish: { ack: unpublish, streams: streamsAfterUnpublish },
      streamNotes,
    }, 0);
  } catch (err) {
    await context.close().catch(() => {});
    out({ error: String(err && err.stack || err) }, 1);
  }
});
