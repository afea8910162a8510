//! owt-peer: the P2P signaling server of owt-rs, wire-compatible with the OWT reference peer
//! server (open-webrtc-toolkit/owt-server-p2p; spec/owt-compat.md §5).
//!
//! Layout: [`core`] is the sans-IO registry (logins, relay decisions, rate limits, metrics),
//! [`signaling`] binds it to the lean Socket.IO server of `owt-sio`, [`http`] serves the
//! listeners (plain, TLS, metrics) around it, and this file is the daemon: configuration,
//! start, reload, stop.

pub mod core;
pub mod http;
pub mod signaling;

use crate::core::{Limits, Origins};
use crate::http::{SioServer, TlsSlot};
use crate::signaling::{Shared, Signaling};
use owt_config::PeerConfig;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

const LONG_ABOUT: &str = "\
owt-peer is the P2P signaling server of owt-rs: OWT P2P clients (JavaScript, Android, iOS, Windows SDKs) \
exchange their WebRTC offers, answers and candidates through it, as with the reference peer server. \
It reads /etc/owt/peer.toml (see owt.toml(5)) and is normally started by systemd as owt-peer.service.

Listeners: Socket.IO (Engine.IO 3 and 4, so socket.io-client 2.x to 4.x) on peer.port (8095, http/ws) and, \
with peer.ssl = true, on peer.ssl_port (8096, https/wss, TLS 1.2 or newer) with the PEM certificate and key \
at peer.keystorePath and peer.keyPath (default /var/lib/owt/cert/certificate.pem and key.pem, as made by \
`owtctl cert`). Any other HTTP request gets 405. Browser origins are checked against peer.cors_origins.

Protocol (namespace /): the client emits `authentication` {token} with an ack; the server answers \
{uid: token}, or {uid: <32 hex digits>@anonymous} when the token is empty, and also emits \
`server-authenticated` {uid}. A second login with the same uid closes the first connection after sending it \
`server-disconnect`. `owt-message` {to, data} (data a string) is forwarded to the user `to` as \
`owt-message` {from, data} and acked with no arguments. Error acks: '2201' target not online, 2120 (a number, \
then disconnect) not authenticated, '2110' malformed payload or data larger than peer.max_message_bytes, \
'2102' over peer.messages_per_second (bursts of twice that pass) or the target's queue full, \
{error: '2121'} (then disconnect) a token that is not a string. Beyond peer.max_clients connections the \
client gets a connect_error '2102'; a client that does not authenticate within peer.login_timeout is \
disconnected. On SIGTERM every client gets `server-disconnect` before the server closes. SIGHUP reloads \
cors_origins, the limits and the certificate files.

Metrics: with metrics.port set, Prometheus text at http://127.0.0.1:<port>/metrics (owt_peer_users, \
owt_peer_connections, owt_peer_messages_relayed_total, owt_peer_messages_refused_total{reason}, ...); \
the same figures are logged every 60 s when they change.";

/// Command line of owt-peer.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-peer",
    version,
    about = "owt-rs P2P signaling server for OWT P2P clients",
    long_about = LONG_ABOUT
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Why owt-peer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] http::TlsError),
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("peer.ip_address {0:?} is not an IP address")]
    Address(String),
}

/// Keys that need a restart to change.
fn restart_keys(old: &PeerConfig, new: &PeerConfig) -> Vec<&'static str> {
    let (a, b) = (&old.peer, &new.peer);
    let mut keys = Vec::new();
    if a.ip_address != b.ip_address {
        keys.push("peer.ip_address");
    }
    if a.port != b.port {
        keys.push("peer.port");
    }
    if a.ssl_port != b.ssl_port {
        keys.push("peer.ssl_port");
    }
    if a.ssl != b.ssl {
        keys.push("peer.ssl");
    }
    if a.max_message_bytes != b.max_message_bytes {
        keys.push("peer.max_message_bytes");
    }
    if old.metrics.port != new.metrics.port {
        keys.push("metrics.port");
    }
    keys
}

fn tls_enabled(config: &PeerConfig) -> bool {
    config.peer.ssl && config.peer.ssl_port != 0
}

/// Simultaneous TCP connections allowed: every client may hold a long-poll and a send
/// request at once, plus some room for new arrivals.
fn connection_slots(max_clients: usize) -> usize {
    max_clients.saturating_mul(2).saturating_add(64)
}

/// The running server.
pub struct PeerService {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    tls: Option<TlsSlot>,
    stop: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    slot_count: usize,
    config: PeerConfig,
    listening: Vec<String>,
}

/// Starts owt-peer: binds its listeners and serves until [`owt_daemon::Service::stop`].
pub fn start(config: &PeerConfig) -> Result<PeerService, StartError> {
    // One worker: a relay does little work per message, and a second worker costs more in
    // cross-thread wakeups than it saves (about a fifth more CPU per message on loopback).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("owt-peer")
        .build()
        .map_err(StartError::Runtime)?;
    let ip: std::net::IpAddr =
        config.peer.ip_address.parse().map_err(|_| StartError::Address(config.peer.ip_address.clone()))?;
    let tls = if tls_enabled(config) {
        Some(Arc::new(RwLock::new(http::tls_context(&config.certificate_path(), &config.key_path())?)))
    } else {
        None
    };
    let bind = |what: &'static str, addr: SocketAddr| {
        runtime.block_on(TcpListener::bind(addr)).map_err(|source| StartError::Bind { what, addr, source })
    };
    let plain = match config.peer.port {
        0 => None,
        port => Some(bind("peer.port", SocketAddr::new(ip, port))?),
    };
    let secure = match &tls {
        Some(_) => Some(bind("peer.ssl_port", SocketAddr::new(ip, config.peer.ssl_port))?),
        None => None,
    };
    let metrics = match config.metrics.port {
        0 => None,
        port => Some(bind("metrics.port", SocketAddr::from(([127, 0, 0, 1], port)))?),
    };

    // The listeners need the runtime's context.
    let entered = runtime.enter();
    let shared = Shared::new(Limits::from_config(&config.peer), Origins::new(&config.peer.cors_origins));
    // Frames may carry escaped data; data itself is checked against max_message_bytes.
    let frame_limit = config.peer.max_message_bytes.saturating_mul(2).saturating_add(16 * 1024);
    let sio: Arc<SioServer> = owt_sio::Server::new(
        owt_sio::Config {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: frame_limit,
            // Packets queued per client before emits to it fail (answered with 2102).
            max_queue: 1024,
            other_paths_body: http::NOT_SOCKET_IO,
        },
        Signaling(shared.clone()),
    );
    let (stop, stopped) = watch::channel(false);
    let slot_count = connection_slots(config.peer.max_clients);
    let slots = Arc::new(Semaphore::new(slot_count));

    let mut listening = Vec::new();
    for (listener, tls, scheme) in [(plain, None, "http"), (secure, tls.clone(), "https")] {
        let Some(listener) = listener else { continue };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!("Socket.IO listening on {scheme}://{addr}");
        listening.push(format!("{scheme}://{addr}"));
        tokio::spawn(http::accept_loop(listener, tls, sio.clone(), slots.clone(), stopped.clone()));
    }
    if let Some(listener) = metrics {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        tokio::spawn(http::metrics_loop(listener, shared.clone(), stopped.clone()));
    }
    tokio::spawn(housekeeping(shared.clone(), stopped));
    drop(entered);
    Ok(PeerService { runtime: Some(runtime), shared, tls, stop, slots, slot_count, config: config.clone(), listening })
}

/// Every second: close clients past the login deadline; every minute: log the figures if
/// they changed.
async fn housekeeping(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_log = Instant::now();
    let mut logged = shared.stats();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        shared.close_overdue();
        if last_log.elapsed() >= Duration::from_secs(60) {
            last_log = Instant::now();
            let stats = shared.stats();
            if stats != logged {
                tracing::info!("{}", stats.summary());
                logged = stats;
            }
        }
    }
}

impl owt_daemon::Service<PeerConfig> for PeerService {
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    fn status(&self) -> String {
        format!("P2P signaling on {}; {}", self.listening.join(", "), self.shared.stats().summary())
    }

    fn reload(&mut self, config: &PeerConfig) -> Result<(), String> {
        let keys = restart_keys(&self.config, config);
        if !keys.is_empty() {
            return Err(format!("changing {} needs a restart of owt-peer", keys.join(", ")));
        }
        if let Some(slot) = &self.tls {
            let context =
                http::tls_context(&config.certificate_path(), &config.key_path()).map_err(|e| e.to_string())?;
            *slot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = context;
        }
        self.shared.set_origins(Origins::new(&config.peer.cors_origins));
        self.shared.set_limits(Limits::from_config(&config.peer));
        let slot_count = connection_slots(config.peer.max_clients);
        if slot_count > self.slot_count {
            self.slots.add_permits(slot_count - self.slot_count);
            self.slot_count = slot_count;
        } else if slot_count < self.slot_count {
            self.slot_count -= self.slots.forget_permits(self.slot_count - slot_count);
        }
        self.config = config.clone();
        Ok(())
    }

    fn stop(mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        let (shared, slots, slot_count) = (self.shared.clone(), self.slots.clone(), self.slot_count);
        let stop = self.stop.clone();
        runtime.block_on(async move {
            // The listeners stay open meanwhile: a long-polling client fetches the notice
            // with a new request. New clients are refused (2101).
            let notified = shared.disconnect_all();
            tracing::info!("sent server-disconnect to {notified} clients");
            // Give clients a moment to read it and close their connections. A long-polling
            // client has no connection open between two polls, so wait a little in any case.
            let start = Instant::now();
            let (grace, deadline) = (start + Duration::from_millis(300), start + Duration::from_millis(2000));
            while (Instant::now() < grace || slots.available_permits() < slot_count) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = stop.send(true);
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}
