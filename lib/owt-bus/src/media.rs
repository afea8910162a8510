//! The media link (DESIGN.md §5): encoded frames ([`MediaFrame`]) between daemons on ZeroMQ
//! PUB/SUB, one two-part message per frame: `[stream id, MediaFrame::encode()]`, the stream
//! id being the topic.
//!
//! The node producing a stream binds one [`MediaPublisher`] (`ipc:///PATH` for the same host,
//! `tcp://IP:PORT` for others; port 0 picks a free port, [`MediaPublisher::endpoint`] tells
//! which) and advertises its endpoint over the bus. Consumers connect a [`MediaSubscriber`]
//! to every publisher they need and subscribe to stream ids.
//!
//! **A consumer never blocks a producer.** [`MediaPublisher::publish`] is not async: it
//! queues the frame for the socket task and returns; when that queue is full the frame is
//! dropped and counted ([`MediaPublisher::dropped`]). Behind it the `zeromq` PUB socket
//! gives each subscriber connection its own queue (its high-water mark: 100 000 messages in
//! zeromq 0.7, not configurable) and drops what does not fit, so a stalled subscriber only
//! loses its own frames. A [`MediaSubscriber`] in turn drains its sockets continuously and
//! drops (and counts, [`SubscriberStats::overflow`]) frames its consumer does not take fast
//! enough, so a slow consumer does not push back on the TCP connection either.
//!
//! **Losses are visible.** Every frame carries its stream's sequence number; the subscriber
//! marks the first frame after a hole ([`ReceivedFrame::gap`], from the [`GapDetector`]) so
//! the consumer asks the producer for a keyframe over the bus. Holes come from the drops
//! above, from reconnections (the `zeromq` socket reconnects by itself and subscribes
//! again) and from a publisher that restarted (its sequence numbers start over).
//!
//! **Hostile input is skipped, not fatal.** A message with the wrong number of parts, a
//! topic that is not UTF-8, or bytes [`MediaFrame::decode`] refuses is counted
//! ([`SubscriberStats::malformed`]), logged at debug level and skipped; the subscriber keeps
//! running. (Not covered: `zeromq` 0.7 has no maximum message size, so a peer announcing a
//! huge frame makes the subscriber allocate it; publishers are cluster nodes named by the
//! portal, and the portal's own endpoint has [`crate::guard`].)
//!
//! ZeroMQ subscriptions are prefixes (`stream1` also matches `stream10`); the subscriber
//! keeps only frames whose topic is exactly a subscribed stream id.

use crate::endpoint::{self, BindAddr};
use bytes::Bytes;
use owt_proto::media::{MediaFrame, MAX_PAYLOAD};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use zeromq::{PubSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

/// Frames queued between [`MediaPublisher::publish`] and the socket task.
pub const PUBLISH_QUEUE: usize = 1024;
/// Frames queued between a [`MediaSubscriber`]'s sockets and [`MediaSubscriber::recv`].
pub const RECEIVE_QUEUE: usize = 1024;
/// Longest stream id (topic) in bytes.
pub const MAX_STREAM_ID: usize = 255;
/// Pause between attempts to connect to a publisher that is not there (yet).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What a media link operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MediaLinkError {
    /// The endpoint is not `tcp://HOST:PORT` or `ipc:///PATH`.
    #[error("bad media link endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    /// Binding the publisher's socket failed (port taken, no permission ...).
    #[error("cannot bind the media link at {endpoint}: {source}")]
    Bind { endpoint: String, source: std::io::Error },
    /// Stream ids are 1 to [`MAX_STREAM_ID`] bytes.
    #[error("bad stream id {0:?}: it must be 1 to {MAX_STREAM_ID} bytes")]
    StreamId(String),
    /// The frame's payload is over [`MAX_PAYLOAD`]; no subscriber could decode it.
    #[error("media frame payload of {0} bytes is over the {MAX_PAYLOAD} byte limit")]
    TooLarge(usize),
    /// The publisher's queue is full: the frame was dropped (and counted).
    #[error("media link queue full: frame dropped")]
    QueueFull,
    /// The socket task has ended.
    #[error("the media link is stopped")]
    Stopped,
    /// The call needs a tokio runtime and was made outside one.
    #[error("the media link needs a tokio runtime")]
    NoRuntime,
    /// ZeroMQ failed.
    #[error("zeromq: {0}")]
    Zmq(String),
}

impl From<zeromq::ZmqError> for MediaLinkError {
    fn from(err: zeromq::ZmqError) -> Self {
        MediaLinkError::Zmq(err.to_string())
    }
}

fn endpoint_error(endpoint: &str, err: crate::BusError) -> MediaLinkError {
    match err {
        crate::BusError::Endpoint { reason, .. } => MediaLinkError::Endpoint { endpoint: endpoint.to_string(), reason },
        other => MediaLinkError::Endpoint { endpoint: endpoint.to_string(), reason: other.to_string() },
    }
}

fn check_stream_id(stream_id: &str) -> Result<(), MediaLinkError> {
    if stream_id.is_empty() || stream_id.len() > MAX_STREAM_ID {
        return Err(MediaLinkError::StreamId(stream_id.chars().take(64).collect()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Publisher

struct PublisherShared {
    endpoint: String,
    queue: mpsc::Sender<ZmqMessage>,
    queued: AtomicU64,
    dropped: AtomicU64,
}

/// The producing end of the media link: a bound ZeroMQ PUB socket driven by a task. Cheap to
/// clone; the socket closes (and an ipc socket file is removed) when the last clone is gone.
#[derive(Clone)]
pub struct MediaPublisher {
    shared: Arc<PublisherShared>,
}

impl std::fmt::Debug for MediaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPublisher").field("endpoint", &self.shared.endpoint).finish()
    }
}

impl MediaPublisher {
    /// Binds `endpoint`: `tcp://IP:PORT`, `tcp://*:PORT`, `tcp://[IPv6]:PORT` (port 0: any free
    /// port) or `ipc:///PATH` (a stale socket file nobody listens on is replaced). Must be
    /// called inside a tokio runtime, which runs the socket task.
    pub async fn bind(endpoint: &str) -> Result<MediaPublisher, MediaLinkError> {
        Self::bind_with_queue(endpoint, PUBLISH_QUEUE).await
    }

    /// [`MediaPublisher::bind`] with a queue of `queue` frames (at least 1) before the socket.
    pub async fn bind_with_queue(endpoint: &str, queue: usize) -> Result<MediaPublisher, MediaLinkError> {
        let addr = endpoint::parse_bind(endpoint).map_err(|err| endpoint_error(endpoint, err))?;
        let bind_error = |source: std::io::Error| MediaLinkError::Bind { endpoint: endpoint.to_string(), source };
        let mut socket = PubSocket::new();
        let resolved = match &addr {
            BindAddr::Tcp(socket_addr) => {
                let listener = std::net::TcpListener::bind(socket_addr).map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                socket.bind_listener(listener).await?;
                endpoint::format_bind(&BindAddr::Tcp(local))
            }
            BindAddr::Ipc(path) => {
                remove_stale_socket(path);
                let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_error)?;
                socket.bind_listener(listener).await?;
                endpoint::format_bind(&addr)
            }
        };
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(run_publisher(socket, rx));
        tracing::debug!("media link: publishing on {resolved}");
        let shared =
            PublisherShared { endpoint: resolved, queue: tx, queued: AtomicU64::new(0), dropped: AtomicU64::new(0) };
        Ok(MediaPublisher { shared: Arc::new(shared) })
    }

    /// The bound endpoint, with the port the system chose for port 0. When bound to a
    /// wildcard address (`tcp://*:PORT`) the host part is `0.0.0.0` (or `[::]`): advertise
    /// the node's own address with this port instead.
    pub fn endpoint(&self) -> String {
        self.shared.endpoint.clone()
    }

    /// Queues `frame` for the subscribers of `stream_id` and returns at once. A full queue
    /// drops the frame: [`MediaLinkError::QueueFull`], counted in [`MediaPublisher::dropped`];
    /// subscribers see the hole as a gap in the sequence numbers.
    pub fn publish(&self, stream_id: &str, frame: &MediaFrame) -> Result<(), MediaLinkError> {
        check_stream_id(stream_id)?;
        if frame.payload.len() > MAX_PAYLOAD {
            return Err(MediaLinkError::TooLarge(frame.payload.len()));
        }
        let parts = vec![Bytes::copy_from_slice(stream_id.as_bytes()), Bytes::from(frame.encode())];
        let message = ZmqMessage::try_from(parts).expect("two parts");
        match self.shared.queue.try_send(message) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Err(MediaLinkError::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(MediaLinkError::Stopped),
        }
    }

    /// Frames dropped because the queue before the socket was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Frames accepted by [`MediaPublisher::publish`].
    pub fn published(&self) -> u64 {
        self.shared.queued.load(Ordering::Relaxed)
    }
}

async fn run_publisher(mut socket: PubSocket, mut queue: mpsc::Receiver<ZmqMessage>) {
    while let Some(message) = queue.recv().await {
        // PubSocket::send only hands the message to the socket's fan-out queue; it drops
        // instead of waiting for slow subscribers.
        if let Err(err) = socket.send(message).await {
            tracing::debug!("media link: send failed: {err}");
        }
    }
    // All handles are gone: dropping the socket closes it (and removes an ipc socket file).
}

/// A Unix socket file left by a previous run (nobody accepting on it) is removed.
fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false);
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

// ---------------------------------------------------------------------------------------
// Gap detection

/// Per-stream check that frame sequence numbers follow each other (sans-IO).
#[derive(Debug, Default, Clone)]
pub struct GapDetector {
    last: HashMap<String, u32>,
}

impl GapDetector {
    pub fn new() -> GapDetector {
        GapDetector::default()
    }

    /// Records frame `sequence` of `stream_id`: true when it is not the previous one + 1
    /// (frames were lost, or the publisher started over). The first frame of a stream is no
    /// gap.
    pub fn check(&mut self, stream_id: &str, sequence: u32) -> bool {
        match self.last.get_mut(stream_id) {
            Some(last) => {
                let gap = sequence != last.wrapping_add(1);
                *last = sequence;
                gap
            }
            None => {
                self.last.insert(stream_id.to_string(), sequence);
                false
            }
        }
    }

    /// Forgets a stream: its next frame is a first frame again.
    pub fn forget(&mut self, stream_id: &str) {
        self.last.remove(stream_id);
    }
}

// ---------------------------------------------------------------------------------------
// Subscriber

/// A frame from the media link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    pub stream_id: String,
    pub frame: MediaFrame,
    /// Frames of this stream were lost before this one (its sequence number is not the
    /// previous one + 1): ask the producer for a keyframe. False on a stream's first frame.
    pub gap: bool,
}

/// Counters of a [`MediaSubscriber`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Frames handed to [`MediaSubscriber::recv`].
    pub received: u64,
    /// Messages skipped as malformed (part count, topic, frame bytes).
    pub malformed: u64,
    /// Frames dropped because the consumer did not keep up ([`RECEIVE_QUEUE`]).
    pub overflow: u64,
    /// Frames received with [`ReceivedFrame::gap`] set.
    pub gaps: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    malformed: AtomicU64,
    overflow: AtomicU64,
    gaps: AtomicU64,
}

#[derive(Default)]
struct SubState {
    topics: HashSet<String>,
    gaps: GapDetector,
}

/// What the socket tasks share with the subscriber.
struct Core {
    state: Mutex<SubState>,
    counters: Counters,
    frames: mpsc::Sender<(String, MediaFrame)>,
}

impl Core {
    fn subscribed(&self, stream_id: &str) -> bool {
        self.state.lock().expect("media subscriber state").topics.contains(stream_id)
    }
}

struct Link {
    changed: Arc<Notify>,
    task: JoinHandle<()>,
}

struct Control {
    core: Arc<Core>,
    links: Mutex<HashMap<String, Link>>,
}

impl Drop for Control {
    fn drop(&mut self) {
        for (_, link) in self.links.get_mut().expect("media subscriber links").drain() {
            link.task.abort();
        }
    }
}

/// Connects, subscribes and unsubscribes for a [`MediaSubscriber`]; cheap to clone, so one
/// task can receive while others change the subscriptions. The sockets close when the
/// subscriber and all handles are gone.
#[derive(Clone)]
pub struct SubscriberHandle {
    control: Arc<Control>,
}

impl SubscriberHandle {
    /// Connects to a publisher's endpoint (`tcp://HOST:PORT` or `ipc:///PATH`) and returns
    /// at once; connecting again to the same endpoint does nothing. A publisher that is not
    /// there yet is tried again in the background, and a lost connection is made again
    /// (with the subscriptions). Must be called inside a tokio runtime.
    pub fn connect(&self, endpoint: &str) -> Result<(), MediaLinkError> {
        endpoint::check_connect(endpoint).map_err(|err| endpoint_error(endpoint, err))?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MediaLinkError::NoRuntime)?;
        let mut links = self.control.links.lock().expect("media subscriber links");
        if let Some(link) = links.get(endpoint) {
            if !link.task.is_finished() {
                return Ok(());
            }
        }
        let changed = Arc::new(Notify::new());
        let task = runtime.spawn(run_link(endpoint.to_string(), self.control.core.clone(), changed.clone()));
        links.insert(endpoint.to_string(), Link { changed, task });
        Ok(())
    }

    /// Closes the connection to `endpoint`; false if there was none.
    pub fn disconnect(&self, endpoint: &str) -> bool {
        let link = self.control.links.lock().expect("media subscriber links").remove(endpoint);
        match link {
            Some(link) => {
                link.task.abort();
                true
            }
            None => false,
        }
    }

    /// The endpoints connected (or being connected) to.
    pub fn endpoints(&self) -> Vec<String> {
        let mut endpoints: Vec<String> =
            self.control.links.lock().expect("media subscriber links").keys().cloned().collect();
        endpoints.sort();
        endpoints
    }

    /// Receives the frames of `stream_id` from every connected publisher. Subscribing twice
    /// is the same as once.
    pub fn subscribe(&self, stream_id: &str) -> Result<(), MediaLinkError> {
        check_stream_id(stream_id)?;
        let added =
            self.control.core.state.lock().expect("media subscriber state").topics.insert(stream_id.to_string());
        if added {
            self.notify_links();
        }
        Ok(())
    }

    /// Stops receiving `stream_id`; frames of it still queued are discarded, and its next
    /// frame after a new subscription counts as a first frame (no gap).
    pub fn unsubscribe(&self, stream_id: &str) {
        let removed = {
            let mut state = self.control.core.state.lock().expect("media subscriber state");
            state.gaps.forget(stream_id);
            state.topics.remove(stream_id)
        };
        if removed {
            self.notify_links();
        }
    }

    /// The subscribed stream ids.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics: Vec<String> =
            self.control.core.state.lock().expect("media subscriber state").topics.iter().cloned().collect();
        topics.sort();
        topics
    }

    pub fn stats(&self) -> SubscriberStats {
        let c = &self.control.core.counters;
        SubscriberStats {
            received: c.received.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            overflow: c.overflow.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
        }
    }

    fn notify_links(&self) {
        for link in self.control.links.lock().expect("media subscriber links").values() {
            link.changed.notify_one();
        }
    }
}

/// The consuming end of the media link. Frames of the subscribed streams from all connected
/// publishers come out of [`MediaSubscriber::recv`] in the order each publisher sent them.
///
/// Each connected endpoint has its own ZeroMQ SUB socket and task: `zeromq` 0.7's `connect`
/// holds the socket until the peer answers (up to 30 s), which would stop the frames of the
/// other publishers meanwhile. The subscriptions are the same on all of them.
pub struct MediaSubscriber {
    handle: SubscriberHandle,
    frames: mpsc::Receiver<(String, MediaFrame)>,
}

impl Default for MediaSubscriber {
    fn default() -> Self {
        MediaSubscriber::new()
    }
}

impl MediaSubscriber {
    pub fn new() -> MediaSubscriber {
        MediaSubscriber::with_queue(RECEIVE_QUEUE)
    }

    /// A subscriber holding up to `queue` frames (at least 1) its consumer has not taken.
    pub fn with_queue(queue: usize) -> MediaSubscriber {
        let (tx, frames) = mpsc::channel(queue.max(1));
        let core = Arc::new(Core { state: Mutex::default(), counters: Counters::default(), frames: tx });
        let control = Arc::new(Control { core, links: Mutex::new(HashMap::new()) });
        MediaSubscriber { handle: SubscriberHandle { control }, frames }
    }

    /// A handle to change connections and subscriptions from elsewhere.
    pub fn handle(&self) -> SubscriberHandle {
        self.handle.clone()
    }

    /// See [`SubscriberHandle::connect`].
    pub fn connect(&self, endpoint: &str) -> Result<(), MediaLinkError> {
        self.handle.connect(endpoint)
    }

    /// See [`SubscriberHandle::disconnect`].
    pub fn disconnect(&self, endpoint: &str) -> bool {
        self.handle.disconnect(endpoint)
    }

    /// See [`SubscriberHandle::subscribe`].
    pub fn subscribe(&self, stream_id: &str) -> Result<(), MediaLinkError> {
        self.handle.subscribe(stream_id)
    }

    /// See [`SubscriberHandle::unsubscribe`].
    pub fn unsubscribe(&self, stream_id: &str) {
        self.handle.unsubscribe(stream_id)
    }

    pub fn stats(&self) -> SubscriberStats {
        self.handle.stats()
    }

    /// The next frame of a subscribed stream. Waits while there is none; `None` only after
    /// [`MediaSubscriber::close`] once the queued frames are taken. Cancel-safe.
    pub async fn recv(&mut self) -> Option<ReceivedFrame> {
        loop {
            let (stream_id, frame) = self.frames.recv().await?;
            if let Some(received) = self.accept(stream_id, frame) {
                return Some(received);
            }
        }
    }

    /// A frame if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<ReceivedFrame> {
        loop {
            let (stream_id, frame) = self.frames.try_recv().ok()?;
            if let Some(received) = self.accept(stream_id, frame) {
                return Some(received);
            }
        }
    }

    /// Closes every connection; [`MediaSubscriber::recv`] then returns what is queued, then
    /// `None`.
    pub fn close(&mut self) {
        for (_, link) in self.handle.control.links.lock().expect("media subscriber links").drain() {
            link.task.abort();
        }
        self.frames.close();
    }

    fn accept(&mut self, stream_id: String, frame: MediaFrame) -> Option<ReceivedFrame> {
        let core = &self.handle.control.core;
        let gap = {
            let mut state = core.state.lock().expect("media subscriber state");
            if !state.topics.contains(&stream_id) {
                return None; // unsubscribed while queued
            }
            state.gaps.check(&stream_id, frame.sequence)
        };
        core.counters.received.fetch_add(1, Ordering::Relaxed);
        if gap {
            core.counters.gaps.fetch_add(1, Ordering::Relaxed);
        }
        Some(ReceivedFrame { stream_id, frame, gap })
    }
}

/// Why a message from a publisher is not a frame.
fn parse_message(message: ZmqMessage) -> Result<(String, MediaFrame), String> {
    if message.len() != 2 {
        return Err(format!("{} parts instead of 2", message.len()));
    }
    let mut parts = message.into_vec().into_iter();
    let topic = parts.next().expect("two parts");
    let body = parts.next().expect("two parts");
    let stream_id = String::from_utf8(topic.to_vec()).map_err(|_| "topic is not UTF-8".to_string())?;
    let frame = MediaFrame::decode(&body).map_err(|err| format!("stream {stream_id}: {err}"))?;
    Ok((stream_id, frame))
}

/// Brings the socket's subscriptions in line with the subscriber's.
async fn sync_subscriptions(socket: &mut SubSocket, applied: &mut HashSet<String>, core: &Core) {
    let wanted = core.state.lock().expect("media subscriber state").topics.clone();
    for topic in wanted.difference(applied) {
        // The socket remembers the subscription even when sending it fails, and sends it
        // again on every (re)connection.
        if let Err(err) = socket.subscribe(topic).await {
            tracing::debug!("media link: subscribe {topic}: {err}");
        }
    }
    for topic in applied.difference(&wanted) {
        if let Err(err) = socket.unsubscribe(topic).await {
            tracing::debug!("media link: unsubscribe {topic}: {err}");
        }
    }
    *applied = wanted;
}

async fn run_link(endpoint: String, core: Arc<Core>, changed: Arc<Notify>) {
    let mut socket = SubSocket::new();
    let mut applied = HashSet::new();
    sync_subscriptions(&mut socket, &mut applied, &core).await;
    let mut retry = RETRY_MIN;
    loop {
        match socket.connect(&endpoint).await {
            Ok(()) => break,
            Err(err) => {
                tracing::debug!("media link: connecting to {endpoint}: {err}; trying again in {retry:?}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
    tracing::debug!("media link: connected to {endpoint}");
    sync_subscriptions(&mut socket, &mut applied, &core).await;
    loop {
        tokio::select! {
            _ = changed.notified() => sync_subscriptions(&mut socket, &mut applied, &core).await,
            message = socket.recv() => {
                let message = match message {
                    Ok(message) => message,
                    Err(err) => {
                        // The connection broke; the socket reconnects by itself.
                        tracing::debug!("media link: from {endpoint}: {err}");
                        continue;
                    }
                };
                match parse_message(message) {
                    Ok((stream_id, frame)) => {
                        if !core.subscribed(&stream_id) {
                            continue; // a longer topic matching a subscribed prefix
                        }
                        match core.frames.try_send((stream_id, frame)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                core.counters.overflow.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Err(reason) => {
                        core.counters.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("media link: malformed message from {endpoint} skipped: {reason}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use owt_proto::media::Codec;
    use std::time::Instant;

    const WAIT: Duration = Duration::from_secs(10);

    fn frame(sequence: u32, len: usize) -> MediaFrame {
        MediaFrame {
            codec: Codec::Vp8,
            keyframe: sequence.is_multiple_of(30),
            sequence,
            timestamp: 3000 * u64::from(sequence),
            width: 640,
            height: 480,
            payload: (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(sequence) as u8).collect(),
        }
    }

    async fn next(sub: &mut MediaSubscriber) -> ReceivedFrame {
        tokio::time::timeout(WAIT, sub.recv()).await.expect("a frame in time").expect("subscriber open")
    }

    /// Nothing arrives for `quiet`.
    async fn silent(sub: &mut MediaSubscriber, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, sub.recv()).await.is_err()
    }

    /// ZeroMQ subscriptions take effect asynchronously: publishes frames of `stream` until
    /// `sub` gets one, then drains what is still in flight. Returns the next sequence number.
    async fn link_up(publisher: &MediaPublisher, sub: &mut MediaSubscriber, stream: &str) -> u32 {
        let deadline = Instant::now() + WAIT;
        let mut sequence = 0;
        loop {
            assert!(Instant::now() < deadline, "the link to {stream} does not come up");
            publisher.publish(stream, &frame(sequence, 8)).unwrap();
            sequence += 1;
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await {
                break;
            }
        }
        while !silent(sub, Duration::from_millis(150)).await {}
        sequence
    }

    async fn round_trip(endpoint: &str) {
        let publisher = MediaPublisher::bind(endpoint).await.unwrap();
        let advertised = publisher.endpoint();
        if endpoint.starts_with("tcp://") {
            assert!(advertised.starts_with("tcp://127.0.0.1:"), "{advertised}");
            assert!(!advertised.ends_with(":0"), "the real port is advertised: {advertised}");
        } else {
            assert_eq!(advertised, endpoint);
        }
        let mut sub = MediaSubscriber::new();
        sub.connect(&advertised).unwrap();
        sub.connect(&advertised).unwrap(); // idempotent
        assert_eq!(sub.handle().endpoints(), vec![advertised.clone()]);
        sub.subscribe("room1-cam").unwrap();
        let first = link_up(&publisher, &mut sub, "room1-cam").await;

        let sizes = [0usize, 1, 23, 1200, 65_536, 300_000, 7];
        let sent: Vec<MediaFrame> = (0..140).map(|i| frame(first + i, sizes[i as usize % sizes.len()])).collect();
        for f in &sent {
            publisher.publish("room1-cam", f).unwrap();
        }
        for f in &sent {
            let got = next(&mut sub).await;
            assert_eq!(got.stream_id, "room1-cam");
            assert_eq!(&got.frame, f);
            assert!(!got.gap);
        }
        let stats = sub.stats();
        assert_eq!((stats.malformed, stats.gaps, stats.overflow), (0, 0, 0));
        assert_eq!(publisher.dropped(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_frames_arrive_in_order_intact() {
        round_trip("tcp://127.0.0.1:0").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ipc_frames_arrive_in_order_intact_and_the_socket_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("media.sock");
        let endpoint = format!("ipc://{}", path.display());
        round_trip(&endpoint).await;
        // The publisher is dropped at the end of round_trip: its socket file goes with it.
        let deadline = Instant::now() + WAIT;
        while path.exists() {
            assert!(Instant::now() < deadline, "socket file left behind");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A stale socket file (nobody listening) does not stop a new publisher.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        MediaPublisher::bind(&endpoint).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_subscribers_of_one_publisher() {
        let publisher = MediaPublisher::bind("tcp://127.0.0.1:0").await.unwrap();
        let mut a = MediaSubscriber::new();
        let mut b = MediaSubscriber::new();
        for sub in [&a, &b] {
            sub.connect(&publisher.endpoint()).unwrap();
            sub.subscribe("s").unwrap();
        }
        link_up(&publisher, &mut a, "s").await;
        link_up(&publisher, &mut b, "s").await;
        while !silent(&mut a, Duration::from_millis(150)).await {} // b's probes
        let first = 1000;
        for i in 0..50 {
            publisher.publish("s", &frame(first + i, 100 + i as usize)).unwrap();
        }
        for sub in [&mut a, &mut b] {
            for i in 0..50 {
                let got = next(sub).await;
                assert_eq!(got.frame, frame(first + i, 100 + i as usize));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscriptions_filter_exact_stream_ids() {
        let publisher = MediaPublisher::bind("tcp://127.0.0.1:0").await.unwrap();
        let mut sub = MediaSubscriber::new();
        sub.connect(&publisher.endpoint()).unwrap();
        sub.subscribe("cam1").unwrap();
        let first = link_up(&publisher, &mut sub, "cam1").await;
        // "cam10" passes ZeroMQ's prefix filter but is another stream; "cam2" does not pass.
        publisher.publish("cam10", &frame(0, 10)).unwrap();
        publisher.publish("cam2", &frame(0, 10)).unwrap();
        publisher.publish("cam1", &frame(first, 10)).unwrap();
        let got = next(&mut sub).await;
        assert_eq!((got.stream_id.as_str(), got.frame.sequence), ("cam1", first));
        assert!(silent(&mut sub, Duration::from_millis(200)).await);

        sub.unsubscribe("cam1");
        assert!(sub.handle().subscriptions().is_empty());
        for i in 0..5 {
            publisher.publish("cam1", &frame(first + 1 + i, 10)).unwrap();
        }
        assert!(silent(&mut sub, Duration::from_millis(300)).await);

        // Subscribed again: the stream starts over, so no gap is reported.
        sub.subscribe("cam1").unwrap();
        link_up(&publisher, &mut sub, "cam1").await;
        publisher.publish("cam1", &frame(1000, 10)).unwrap();
        assert_eq!(next(&mut sub).await.frame.sequence, 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_publisher_messages_are_counted_and_skipped() {
        let mut raw = PubSocket::new();
        let bound = raw.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let mut sub = MediaSubscriber::new();
        sub.connect(&bound).unwrap();
        sub.subscribe("s1").unwrap();
        let good = |sequence: u32| {
            ZmqMessage::try_from(vec![Bytes::from_static(b"s1"), Bytes::from(frame(sequence, 50).encode())]).unwrap()
        };
        // Link up.
        let deadline = Instant::now() + WAIT;
        let mut sequence = 0;
        loop {
            assert!(Instant::now() < deadline, "no link");
            raw.send(good(sequence)).await.unwrap();
            sequence += 1;
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await {
                break;
            }
        }
        while !silent(&mut sub, Duration::from_millis(150)).await {}
        let malformed_before = sub.stats().malformed;

        let encoded = frame(sequence, 50).encode();
        let mut bad_codec = encoded.clone();
        bad_codec[6] = 99;
        let mut bad_kind = encoded.clone();
        bad_kind[5] = 0;
        let hostile: Vec<Vec<Bytes>> = vec![
            vec![Bytes::from_static(b"s1")], // one part
            vec![Bytes::from_static(b"s1"), Bytes::from_static(b"garbage garbage garbage garbage")], // bad magic
            vec![Bytes::from_static(b"s1"), Bytes::from(encoded[..10].to_vec())], // truncated header
            vec![Bytes::from_static(b"s1"), Bytes::new()], // empty frame
            vec![Bytes::from_static(b"s1"), Bytes::from(bad_codec)], // unknown codec
            vec![Bytes::from_static(b"s1"), Bytes::from(bad_kind)], // kind/codec mismatch
            vec![Bytes::from_static(b"s1"), Bytes::from(encoded.clone()), Bytes::from_static(b"x")], // three parts
            vec![Bytes::from_static(b"s1\xff\xfe"), Bytes::from(encoded.clone())], // topic not UTF-8
        ];
        let count = hostile.len() as u64;
        for parts in hostile {
            raw.send(ZmqMessage::try_from(parts).unwrap()).await.unwrap();
        }
        raw.send(good(sequence)).await.unwrap();
        raw.send(good(sequence + 1)).await.unwrap();
        let got = next(&mut sub).await;
        assert_eq!(got.frame, frame(sequence, 50));
        assert!(!got.gap);
        assert_eq!(next(&mut sub).await.frame.sequence, sequence + 1);
        assert_eq!(sub.stats().malformed - malformed_before, count);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishing_never_waits_for_absent_or_stalled_subscribers() {
        let publisher = MediaPublisher::bind("tcp://127.0.0.1:0").await.unwrap();
        // Nobody subscribed.
        let started = Instant::now();
        for i in 0..10_000 {
            let _ = publisher.publish("s", &frame(i, 1000));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

        // A subscriber that never reads, next to a healthy one.
        let mut stalled = SubSocket::new();
        stalled.subscribe("s").await.unwrap();
        stalled.connect(&publisher.endpoint()).await.unwrap();
        let mut healthy = MediaSubscriber::new();
        healthy.connect(&publisher.endpoint()).unwrap();
        healthy.subscribe("s").unwrap();
        let first = link_up(&publisher, &mut healthy, "s").await;
        let total = 10_000u32;
        let reader = tokio::spawn(async move {
            let mut last = None;
            while let Ok(Some(got)) = tokio::time::timeout(Duration::from_secs(2), healthy.recv()).await {
                last = Some(got.frame.sequence);
            }
            last
        });
        let started = Instant::now();
        let mut refused = 0;
        for i in 0..total {
            if publisher.publish("s", &frame(first + i, 1000)).is_err() {
                refused += 1;
            }
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(refused, publisher.dropped());
        // Keep the last frame from being refused, then the healthy subscriber gets it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.publish("s", &frame(first + total, 1000)).unwrap();
        assert_eq!(reader.await.unwrap(), Some(first + total));
        drop(stalled);
    }

    #[tokio::test]
    async fn a_full_publisher_queue_drops_and_counts() {
        // On this single-threaded runtime the socket task cannot run while we publish.
        let publisher = MediaPublisher::bind_with_queue("tcp://127.0.0.1:0", 4).await.unwrap();
        let results: Vec<_> = (0..100).map(|i| publisher.publish("s", &frame(i, 10))).collect();
        assert!(results[..4].iter().all(|r| r.is_ok()));
        assert!(results[4..].iter().all(|r| matches!(r, Err(MediaLinkError::QueueFull))));
        assert_eq!((publisher.published(), publisher.dropped()), (4, 96));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gaps_are_reported() {
        let publisher = MediaPublisher::bind("tcp://127.0.0.1:0").await.unwrap();
        let mut sub = MediaSubscriber::new();
        sub.connect(&publisher.endpoint()).unwrap();
        sub.subscribe("v").unwrap();
        let n = link_up(&publisher, &mut sub, "v").await;
        for sequence in [n, n + 1, n + 3, n + 4, 0] {
            publisher.publish("v", &frame(sequence, 20)).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(next(&mut sub).await.gap);
        }
        // n + 3 follows n + 1; 0 is a publisher that started over.
        assert_eq!(got, vec![false, false, true, false, true]);
        assert_eq!(sub.stats().gaps, 2);
    }

    #[test]
    fn gap_detector() {
        let mut gaps = GapDetector::new();
        assert!(!gaps.check("a", 7));
        assert!(!gaps.check("a", 8));
        assert!(!gaps.check("b", 100));
        assert!(gaps.check("a", 10));
        assert!(gaps.check("a", 10)); // a repeat is not the next frame either
        assert!(!gaps.check("b", 101));
        assert!(!gaps.check("c", u32::MAX));
        assert!(!gaps.check("c", 0)); // wraps
        gaps.forget("a");
        assert!(!gaps.check("a", 500));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscriber_waits_for_a_late_publisher_and_reconnects() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("ipc://{}", dir.path().join("late.sock").display());
        let mut sub = MediaSubscriber::new();
        sub.subscribe("s").unwrap();
        sub.connect(&endpoint).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await; // nobody there yet
        let publisher = MediaPublisher::bind(&endpoint).await.unwrap();
        let n = link_up(&publisher, &mut sub, "s").await;
        publisher.publish("s", &frame(n, 10)).unwrap();
        assert!(!next(&mut sub).await.gap);

        // The publisher goes away and comes back (a restarted node): the subscriber
        // reconnects, subscribes again, and reports the restart as a gap.
        drop(publisher);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let publisher = MediaPublisher::bind(&endpoint).await.unwrap();
        let deadline = Instant::now() + WAIT;
        let got = loop {
            assert!(Instant::now() < deadline, "no frames after the publisher came back");
            publisher.publish("s", &frame(0, 10)).unwrap();
            if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(50), sub.recv()).await {
                break got;
            }
        };
        assert!(got.gap);
        assert_eq!(sub.stats().malformed, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors() {
        for bad in ["udp://1.2.3.4:5", "tcp://localhost", "ipc://relative"] {
            assert!(matches!(MediaPublisher::bind(bad).await, Err(MediaLinkError::Endpoint { .. })), "{bad}");
        }
        let publisher = MediaPublisher::bind("tcp://127.0.0.1:0").await.unwrap();
        assert!(matches!(MediaPublisher::bind(&publisher.endpoint()).await, Err(MediaLinkError::Bind { .. })));
        assert!(matches!(publisher.publish("", &frame(0, 1)), Err(MediaLinkError::StreamId(_))));
        let long = "x".repeat(MAX_STREAM_ID + 1);
        assert!(matches!(publisher.publish(&long, &frame(0, 1)), Err(MediaLinkError::StreamId(_))));
        let mut huge = frame(0, 0);
        huge.payload = vec![0; MAX_PAYLOAD + 1];
        assert!(matches!(publisher.publish("s", &huge), Err(MediaLinkError::TooLarge(_))));

        let mut sub = MediaSubscriber::new();
        assert!(matches!(sub.connect("tcp://*:5"), Err(MediaLinkError::Endpoint { .. })));
        assert!(matches!(sub.subscribe(""), Err(MediaLinkError::StreamId(_))));
        assert!(!sub.disconnect("tcp://127.0.0.1:9"));
        sub.connect(&publisher.endpoint()).unwrap();
        assert!(sub.disconnect(&publisher.endpoint()));
        sub.close();
        assert!(sub.recv().await.is_none());
    }

    #[test]
    fn connect_needs_a_runtime() {
        let sub = MediaSubscriber::new();
        assert!(matches!(sub.connect("tcp://127.0.0.1:5"), Err(MediaLinkError::NoRuntime)));
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MediaPublisher>();
        check::<SubscriberHandle>();
        fn check_send<T: Send>() {}
        check_send::<MediaSubscriber>();
    }
}
