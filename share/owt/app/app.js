// The owt-rs sample conference page (the counterpart of OWT's sample app page): gets a
// token from this server (POST /tokens), joins the room with OwtClient (owt-client.js),
// publishes camera and microphone, subscribes the mixed stream of the default view or,
// with ?forward=true, the other participants' forward streams, and shows participants,
// a text chat and a log in which every error the server sends appears as it came.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const roomParam = params.get('room') || '';
  const forward = params.get('forward') === 'true';
  const publishing = params.get('publish') !== 'false';
  const userName = params.get('user') || 'user-' + Math.floor(1000 + Math.random() * 9000);
  const VIEW = 'common';

  const $ = (id) => document.getElementById(id);
  const client = new OwtClient();
  const remote = new Map(); // stream id -> {view, subscription}
  let publicationId = null;
  window.sampleApp = { client, remote };

  function log(text, isError) {
    const item = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    item.append(time, ' ', text);
    if (isError) item.className = 'error';
    $('log').append(item);
    (isError ? console.error : console.log)(text);
  }

  const status = (text) => { $('status').textContent = text; };

  function setPublication(state, text) {
    $('publication').dataset.state = state;
    $('publication').textContent = text;
  }

  // The message of a REST error body {"error": {"code", "message"}}, else the text itself.
  function restError(text, httpStatus) {
    try {
      const body = JSON.parse(text);
      if (body && body.error && typeof body.error.message === 'string') return body.error.message;
    } catch (e) { /* not JSON */ }
    return text || 'HTTP ' + httpStatus;
  }

  async function appRequest(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(restError(text, response.status));
    return text;
  }

  const nameOf = (id) => (client.participants.get(id) || {}).user || id;

  function renderParticipants() {
    const list = $('participants');
    list.replaceChildren();
    for (const p of client.participants.values()) {
      const item = document.createElement('li');
      item.dataset.id = p.id;
      const user = document.createElement('span');
      user.className = 'user';
      user.textContent = p.user;
      item.append(user, ' ', p.role);
      if (client.me && p.id === client.me.id) item.append(' (you)');
      list.append(item);
    }
    $('participant-count').textContent = String(client.participants.size);
  }

  function addChat(from, message) {
    const item = document.createElement('li');
    const who = document.createElement('strong');
    who.textContent = nameOf(from) + ':';
    item.append(who, ' ', String(message));
    $('chat-messages').append(item);
  }

  // ---- publishing --------------------------------------------------------------------

  async function publish() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    } catch (err) {
      setPublication('error', 'no camera or microphone: ' + err.message);
      log('camera or microphone: ' + err.message, true);
      return;
    }
    $('local-video').srcObject = stream;
    setPublication('pending', 'publishing…');
    let publication;
    try {
      publication = await client.publish(stream);
      publicationId = publication.id;
      log('publication ' + publication.id + ' accepted, waiting for media');
      await publication.ready;
    } catch (err) {
      setPublication('error', 'publish failed: ' + err.message);
      log('publish failed: ' + err.message, true);
      return;
    }
    setPublication('ready', 'publication ' + publication.id + ' ready');
    log('publication ' + publication.id + ' ready');
    // As OWT's sample app: streams are not mixed automatically, the app asks for it.
    if (!forward) {
      const path = '/rooms/' + encodeURIComponent(client.roomId) + '/streams/' + encodeURIComponent(publication.id);
      appRequest('PATCH', path, [{ op: 'add', path: '/info/inViews', value: VIEW }])
        .then(() => log('publication ' + publication.id + ' added to view ' + VIEW))
        .catch((err) => log('mixing publication ' + publication.id + ' failed: ' + err.message, true));
    }
  }

  // ---- subscribing -------------------------------------------------------------------

  function wantedForward(info) {
    return info.type === 'forward' && info.info && info.info.type !== 'selecting'
      && info.info.owner !== client.me.id;
  }

  function mixedStream() {
    const mixed = Array.from(client.streams.values()).filter((s) => s.type === 'mixed');
    return mixed.find((s) => s.info && s.info.label === VIEW) || mixed[0];
  }

  function remoteFigure(info) {
    const figure = document.createElement('figure');
    figure.className = 'remote';
    figure.dataset.stream = info.id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const owner = info.type === 'mixed' ? 'mixed view ' + ((info.info && info.info.label) || '') : nameOf(info.info && info.info.owner);
    video.setAttribute('aria-label', 'Stream ' + info.id + ' of ' + owner);
    const caption = document.createElement('figcaption');
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = 'subscribing…';
    caption.append('Stream ', Object.assign(document.createElement('code'), { textContent: info.id }),
      ' of ' + owner + ': ', state);
    figure.append(video, caption);
    $('remote-videos').append(figure);
    return { figure, video, state };
  }

  async function subscribe(info) {
    if (remote.has(info.id)) return;
    const view = remoteFigure(info);
    const entry = { view, subscription: null };
    remote.set(info.id, entry);
    const setState = (state, text) => { view.figure.dataset.state = state; view.state.textContent = text; };
    try {
      const subscription = await client.subscribe(info);
      entry.subscription = subscription;
      view.video.srcObject = subscription.stream;
      setState('pending', 'waiting for media');
      log('subscription ' + subscription.id + ' to stream ' + info.id + ' accepted');
      await subscription.ready;
      setState('ready', 'playing');
      log('subscription ' + subscription.id + ' ready');
    } catch (err) {
      setState('error', err.message);
      log('subscribing stream ' + info.id + ' failed: ' + err.message, true);
    }
  }

  function streamRemoved(id) {
    const entry = remote.get(id);
    if (!entry) return;
    remote.delete(id);
    entry.view.figure.remove();
    log('stream ' + id + ' ended');
  }

  function subscribeExisting() {
    if (forward) {
      for (const info of client.streams.values()) if (wantedForward(info)) subscribe(info);
      return;
    }
    const mixed = mixedStream();
    if (mixed) subscribe(mixed);
    else log('this room has no mixed stream to subscribe', true);
  }

  // ---- notifications -----------------------------------------------------------------

  client.addEventListener('participant', (event) => {
    const message = event.detail;
    if (message.action === 'join') log(message.data.user + ' joined');
    else if (message.action === 'leave') log(nameOf(message.data) + ' left');
    renderParticipants();
  });
  client.addEventListener('stream', (event) => {
    const message = event.detail;
    if (message.status === 'add' && forward && wantedForward(message.data)) subscribe(message.data);
    else if (message.status === 'remove') streamRemoved(message.id);
  });
  client.addEventListener('text', (event) => addChat(event.detail.from, event.detail.message));
  client.addEventListener('error', (event) => {
    const { message, sessionId } = event.detail;
    log(message, true);
    // A publication or subscription that fails after it was ready.
    if (sessionId && sessionId === publicationId) setPublication('error', 'publication failed: ' + message);
    for (const entry of remote.values()) {
      if (entry.subscription && entry.subscription.id === sessionId) {
        entry.view.figure.dataset.state = 'error';
        entry.view.state.textContent = message;
      }
    }
  });
  client.addEventListener('connectionstate', (event) => log('peer connection ' + event.detail.state));
  client.addEventListener('disconnected', (event) => {
    status('Disconnected: ' + event.detail.reason);
    log('disconnected: ' + event.detail.reason, true);
    $('chat-input').disabled = $('chat-send').disabled = true;
  });

  $('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text) return;
    client.send(text)
      .then(() => { input.value = ''; })
      .catch((err) => log('message not sent: ' + err.message, true));
  });

  window.addEventListener('pagehide', () => { client.leave().catch(() => {}); });

  async function start() {
    status('Getting a token…');
    const body = { user: userName, role: 'presenter' };
    if (roomParam) body.room = roomParam;
    const token = await appRequest('POST', '/tokens', body);
    status('Joining…');
    const info = await client.join(token);
    $('room-id').textContent = info.room.id;
    $('me').textContent = info.user;
    status('Joined room ' + info.room.id + (forward ? ' (forward streams)' : ' (mixed stream)'));
    log('joined room ' + info.room.id + ' as ' + info.user + ' (' + info.id + ')');
    renderParticipants();
    $('chat-input').disabled = $('chat-send').disabled = false;
    if (publishing) publish();
    subscribeExisting();
  }

  start().catch((err) => {
    status('Could not join: ' + err.message);
    log('could not join: ' + err.message, true);
  });
})();
