// Scripted Socket.IO client for the owt-portal signaling tests.
//   node owt-client.js <2|3|4> <url> [websocket|polling]
// Reads one JSON command per line on stdin and prints one JSON event per line on stdout:
//   {"op":"emit","event":"login","data":{...},"id":1}   -> {"ack":1,"args":["ok",{...}]}
//   {"op":"emit","event":"logout","id":2,"noData":true} -> emits with only the ack callback
//   {"op":"raw","event":"login","args":[1,2,3]}         -> emits arbitrary arguments, no ack
//   {"op":"disconnect"} / {"op":"connect"} / {"op":"exit"}
// Every server event is printed as {"event":name,"args":[...]}; connection changes as
// {"event":"connect"|"disconnect"|"connect_error", ...}.
const [ver, url, transport] = process.argv.slice(2);
const io = require({ 2: 'sio2', 3: 'sio3', 4: 'socket.io-client' }[ver]);
const options = { reconnection: false, forceNew: true, 'force new connection': true, timeout: 5000 };
if (transport === 'websocket') options.transports = ['websocket'];
// Test servers use the self-signed certificate of `owtctl init`.
if (url.startsWith('https')) options.rejectUnauthorized = false;
const socket = io(url, options);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

socket.on('connect', () => out({ event: 'connect', id: socket.id }));
socket.on('disconnect', (reason) => out({ event: 'disconnect', reason: String(reason) }));
socket.on('connect_error', (err) => out({ event: 'connect_error', message: String(err && err.message) }));
for (const name of ['participant', 'stream', 'text', 'progress', 'drop', 'session-progress']) {
  socket.on(name, (...args) => out({ event: name, args }));
}

let buffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffer += chunk;
  let newline;
  while ((newline = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, newline).trim();
    buffer = buffer.slice(newline + 1);
    if (line) run(JSON.parse(line));
  }
});
process.stdin.on('end', () => process.exit(0));

function run(cmd) {
  switch (cmd.op) {
    case 'emit': {
      const ack = (...args) => out({ ack: cmd.id, args });
      if (cmd.noData) socket.emit(cmd.event, ack);
      else socket.emit(cmd.event, cmd.data, ack);
      break;
    }
    case 'raw':
      socket.emit(cmd.event, ...cmd.args);
      break;
    case 'disconnect':
      socket.disconnect();
      break;
    case 'connect':
      socket.connect();
      break;
    case 'exit':
      process.exit(0);
  }
}
