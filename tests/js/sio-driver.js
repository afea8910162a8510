// Scripted Socket.IO clients for the owt-peer integration tests.
//
//   node sio-driver.js
//
// Reads one JSON command per line on stdin and prints one JSON line per thing that happens on
// stdout, so a test can drive several clients (socket.io-client 2.x, 3.x and 4.x side by side)
// and assert on what each of them received. Every output line has the client `id`.
//
// Commands:
//   {"op":"connect","id":"a","url":"http://127.0.0.1:8095","version":4,"transports":["websocket"],"query":{}}
//       -> {"id":"a","type":"connect"} | {"id":"a","type":"connect_error","message":...}
//   {"op":"emit","id":"a","event":"authentication","args":[{"token":"alice"}],"ack":true,"tag":"t1"}
//       -> {"id":"a","type":"ack","tag":"t1","args":[...]}  (with "ack":true)
//   {"op":"raw","id":"a","text":"42[\"x\""}   raw Engine.IO message (a Socket.IO packet as text)
//   {"op":"flood","id":"a","count":500,"event":"owt-message","args":[{...}],"tag":"f"}
//       emits `count` times at once with acks -> {"id":"a","type":"flood","tag":"f","ok":N,"codes":{"2102":M}}
//   {"op":"close","id":"a"}
//   {"op":"exit"}
// Events received: {"id":"a","type":"event","event":"owt-message","args":[...]}
// Disconnect:      {"id":"a","type":"disconnect","reason":"io server disconnect"}
'use strict';
const readline = require('readline');

const libraries = { 2: 'sio2', 3: 'sio3', 4: 'socket.io-client' };
const clients = new Map();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function connect(cmd) {
  const io = require(libraries[cmd.version || 4]);
  const options = {
    transports: cmd.transports || ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 5000,
    query: cmd.query || {},
  };
  if (cmd.insecure) options.rejectUnauthorized = false;
  if (cmd.extraHeaders) options.extraHeaders = cmd.extraHeaders;
  const socket = io(cmd.url, options);
  clients.set(cmd.id, socket);
  socket.on('connect', () => out({ id: cmd.id, type: 'connect' }));
  socket.on('connect_error', (err) => out({ id: cmd.id, type: 'connect_error', message: String(err && err.message || err) }));
  // socket.io-client 2.x reports a refused namespace connection as an `error` event.
  socket.on('error', (err) => out({ id: cmd.id, type: 'error', message: String(err && err.message || err) }));
  socket.on('disconnect', (reason) => out({ id: cmd.id, type: 'disconnect', reason }));
  const onAny = (event, ...args) => out({ id: cmd.id, type: 'event', event, args });
  if (socket.onAny) {
    socket.onAny(onAny);
  } else {
    // 2.x has no onAny: listen to the events owt-peer sends.
    for (const event of ['owt-message', 'server-authenticated', 'server-disconnect']) {
      socket.on(event, (...args) => onAny(event, ...args));
    }
  }
}

// {"$binary": "<base64>"} in args stands for a Buffer (a binary attachment).
const decode = (arg) => (arg && typeof arg === 'object' && typeof arg.$binary === 'string')
  ? Buffer.from(arg.$binary, 'base64') : arg;

function emit(cmd) {
  const socket = clients.get(cmd.id);
  const args = (cmd.args || []).map(decode);
  if (cmd.ack) {
    socket.emit(cmd.event, ...args, (...reply) => out({ id: cmd.id, type: 'ack', tag: cmd.tag, args: reply }));
  } else {
    socket.emit(cmd.event, ...args);
  }
}

function flood(cmd) {
  const socket = clients.get(cmd.id);
  let answered = 0, ok = 0;
  const codes = {};
  const done = () => out({ id: cmd.id, type: 'flood', tag: cmd.tag, ok, codes, answered });
  const timer = setTimeout(done, cmd.timeoutMs || 10000);
  for (let i = 0; i < cmd.count; i++) {
    socket.emit(cmd.event, ...(cmd.args || []), (err) => {
      answered++;
      if (err === undefined || err === null) ok++; else codes[err] = (codes[err] || 0) + 1;
      if (answered === cmd.count) { clearTimeout(timer); done(); }
    });
  }
}

const handlers = {
  connect,
  emit,
  flood,
  raw: (cmd) => {
    const engine = clients.get(cmd.id).io.engine;
    engine.write ? engine.write(cmd.text) : engine.send(cmd.text);
  },
  close: (cmd) => { const s = clients.get(cmd.id); if (s) s.close(); },
  exit: () => process.exit(0),
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
    handlers[cmd.op](cmd);
  } catch (err) {
    out({ id: cmd && cmd.id, type: 'driver_error', message: String(err && err.stack || err) });
  }
}).on('close', () => process.exit(0));
out({ type: 'ready' });
