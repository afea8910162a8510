// A minimal Node.js peer server on npm socket.io 4 doing what OWT's reference peer server
// (owt-server-p2p, built on socket.io 4 with allowEIO3) does: `authentication {token}` ->
// ack {uid} (+ `server-authenticated`), a second login of the same uid disconnects the first
// after `server-disconnect`, `owt-message {to, data}` -> `owt-message {from, data}` at the
// target and ack() or ack('2201'). The benchmark (bench-peer.js) compares owt-peer with it.
//
//   node ref-peer-server.js <port>      prints READY when listening on 127.0.0.1:<port>
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 8095);
const httpServer = http.createServer((req, res) => {
  res.writeHead(405);
  res.end('OWT signaling server. Please connect it with Socket.IO.');
});
const io = new Server(httpServer, { allowEIO3: true, cors: { origin: (o, cb) => cb(null, true), credentials: true } });
const sessions = new Map();

io.on('connection', (socket) => {
  socket.on('authentication', (data, ack) => {
    const uid = (data && data.token) || (require('crypto').randomBytes(16).toString('hex') + '@anonymous');
    const old = sessions.get(uid);
    if (old && old !== socket) {
      old.emit('server-disconnect');
      old.uid = null;
      old.disconnect();
    }
    socket.uid = uid;
    sessions.set(uid, socket);
    socket.emit('server-authenticated', { uid });
    if (typeof ack === 'function') ack({ uid });
  });
  socket.on('owt-message', (data, ack) => {
    if (typeof ack !== 'function') ack = () => {};
    if (!socket.uid) { ack(2120); socket.disconnect(); return; }
    const target = data && sessions.get(data.to);
    if (!target) { ack('2201'); return; }
    target.emit('owt-message', { from: socket.uid, data: data.data });
    ack();
  });
  socket.on('disconnect', () => {
    if (socket.uid && sessions.get(socket.uid) === socket) sessions.delete(socket.uid);
  });
});

httpServer.listen(port, '127.0.0.1', () => console.log('READY'));
process.on('SIGTERM', () => { io.close(); process.exit(0); });
