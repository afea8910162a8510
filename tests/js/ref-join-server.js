// Reference for the join-latency benchmark: socket.io 4 (what OWT's portal is built on)
// answering `login` with a result of the same shape, without checking anything.
//   node ref-join-server.js <port>
const { Server } = require('socket.io');
const port = Number(process.argv[2]);
const io = new Server(port, { allowEIO3: true });
const participants = [];
io.on('connection', (socket) => {
  socket.on('login', (info, ack) => {
    const me = { id: socket.id, user: 'u', role: 'presenter' };
    participants.push(me);
    socket.broadcast.emit('participant', { action: 'join', data: me });
    ack('ok', { user: 'u', role: 'presenter', id: socket.id, room: { id: 'r', views: [], participants, streams: [] } });
  });
  socket.on('logout', (ack) => {
    const i = participants.findIndex((p) => p.id === socket.id);
    if (i >= 0) participants.splice(i, 1);
    ack('ok');
  });
});
