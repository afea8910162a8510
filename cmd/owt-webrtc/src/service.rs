//! The daemon service of owt-webrtc: a tokio runtime, the bus connection to the portal
//! (registration and heartbeats through owt_bus::BusClient) with the node as its request
//! handler, and the task that sends the node's events to the portal.

use crate::affinity;
use crate::node::{NetSettings, Node};
use owt_bus::client::BoxFuture;
use owt_bus::load::CpuLoad;
use owt_bus::media::MediaPublisher;
use owt_bus::{BusClient, ClientOptions, ClientState, Handler, RemoteError};
use owt_config::{WebrtcConfig, WorkerConfig};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Bus(#[from] owt_bus::BusError),
}

struct BusHandler {
    node: Node,
    load: Mutex<CpuLoad>,
}

impl Handler for BusHandler {
    fn request(&self, method: &str, params: Value) -> BoxFuture<Result<Value, RemoteError>> {
        let node = self.node.clone();
        let method = method.to_string();
        Box::pin(async move { node.request(&method, params).await })
    }

    fn event(&self, method: &str, params: Value) {
        let node = self.node.clone();
        let method = method.to_string();
        tokio::spawn(async move { node.event(&method, params).await });
    }

    fn load(&self) -> f64 {
        self.load.lock().map(|mut load| load.sample()).unwrap_or(0.0)
    }
}

/// The running node.
pub struct WebrtcService {
    runtime: Option<tokio::runtime::Runtime>,
    client: Option<Arc<BusClient>>,
    node: Node,
    endpoint: String,
    events: Option<tokio::task::JoinHandle<()>>,
    applied: WebrtcConfig,
}

impl WebrtcService {
    pub fn start(config: &WebrtcConfig) -> Result<WebrtcService, StartError> {
        let net = NetSettings::from_config(&config.webrtc).map_err(StartError::Config)?;
        let workers = match config.webrtc.worker_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            threads => threads,
        };
        let cpus = if config.webrtc.pin_worker_threads { worker_cpus(workers) } else { None };
        // Tokio starts its worker threads while it builds the runtime, before any other thread
        // of its pool: the first `workers` threads started are the workers.
        let started = AtomicUsize::new(0);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .on_thread_start(move || {
                let index = started.fetch_add(1, Ordering::Relaxed);
                if let Some(cpu) = cpus.as_ref().and_then(|cpus| cpus.get(index)) {
                    if let Err(err) = affinity::pin_current_thread(*cpu) {
                        tracing::warn!("worker thread {index} not kept on CPU {cpu}: {err}");
                    }
                }
            })
            .thread_name("webrtc")
            .event_interval(EVENT_INTERVAL)
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<(String, Value)>();
        let cluster = config.cluster();
        let media = runtime
            .block_on(MediaPublisher::bind(media_bind_endpoint(&cluster.media_endpoint)))
            .map_err(|err| StartError::Config(format!("cluster.media_endpoint: {err}")))?;
        let mut info = owt_bus::worker::worker_info(WebrtcConfig::KIND, cluster, config.capacity());
        info.media_endpoint = media.endpoint();
        tracing::info!("media link on {}", info.media_endpoint);
        let node = Node::new(net, events_tx, Some(media));
        runtime.block_on(async { node.open_shared_ports() }).map_err(StartError::Config)?;
        tracing::info!("joining the cluster at {} as {} (webrtc)", cluster.portal, info.node_id);
        let handler = Arc::new(BusHandler { node: node.clone(), load: Mutex::new(CpuLoad::new()) });
        let client =
            Arc::new(BusClient::connect(&cluster.portal, info, handler, ClientOptions::default(), runtime.handle())?);
        let sender = client.clone();
        let events = runtime.spawn(async move {
            while let Some((method, params)) = events_rx.recv().await {
                if let Err(err) = sender.event(&method, params).await {
                    tracing::warn!("event {method} not sent to the portal: {err}");
                }
            }
        });
        let mut state = client.watch();
        let endpoint = cluster.portal.clone();
        let status_endpoint = endpoint.clone();
        runtime.spawn(async move {
            while state.changed().await.is_ok() {
                let current = *state.borrow_and_update();
                owt_daemon::notify(&[("STATUS", &status_line(current, &status_endpoint, 0))]);
            }
        });
        Ok(WebrtcService {
            runtime: Some(runtime),
            client: Some(client),
            node,
            endpoint,
            events: Some(events),
            applied: config.clone(),
        })
    }
}

/// Tasks a busy worker thread runs between two looks at the sockets and timers (tokio's
/// default: 61). Only a parked worker waits on the sockets, and one that parks while another
/// holds the poller sleeps until woken; a worker running fan-out parts (100-200 µs each at
/// 4x50) then left arriving packets waiting for up to 61 of them, and in `perf sched` traces one
/// worker ran 10 ms on end while the other slept. A look costs one `epoll_wait` that returns at
/// once. A/B at 4x50, five pairs: the server's p99 added latency 1.55-1.74 ms with 4 or 8
/// against 1.82-2.45 ms with 61, streams per core within the noise.
const EVENT_INTERVAL: u32 = 4;

/// The CPU of each worker thread (`[webrtc] pin_worker_threads`), or None to leave them to
/// the kernel: not as many threads as CPUs this node may use, or its mask unreadable.
fn worker_cpus(workers: usize) -> Option<Vec<usize>> {
    let allowed = match affinity::allowed_cpus() {
        Ok(allowed) => allowed,
        Err(err) => {
            tracing::warn!("worker threads not pinned: CPU affinity mask unreadable: {err}");
            return None;
        }
    };
    let cpus = affinity::plan(workers, &allowed);
    match &cpus {
        Some(cpus) => tracing::info!("{workers} worker threads, each kept on one CPU: {cpus:?}"),
        None => tracing::info!("{workers} worker threads for {} CPUs: not pinned", allowed.len()),
    }
    cpus
}

/// Where the media link's PUB socket binds: the configured endpoint, or an ephemeral
/// port on loopback (enough when every daemon runs on one machine).
pub fn media_bind_endpoint(configured: &str) -> &str {
    if configured.is_empty() {
        "tcp://127.0.0.1:0"
    } else {
        configured
    }
}

fn status_line(state: ClientState, endpoint: &str, transports: usize) -> String {
    match state {
        ClientState::Registered => format!("registered with portal at {endpoint}; {transports} transports"),
        ClientState::Stopped => "stopped".to_string(),
        ClientState::Connecting | ClientState::Registering => format!("waiting for portal at {endpoint}"),
    }
}

impl owt_daemon::Service<WebrtcConfig> for WebrtcService {
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    fn status(&self) -> String {
        let state = self.client.as_ref().map(|c| c.state()).unwrap_or(ClientState::Stopped);
        status_line(state, &self.endpoint, self.node.transport_count())
    }

    fn reload(&mut self, config: &WebrtcConfig) -> Result<(), String> {
        if (config.cluster(), config.capacity(), &config.webrtc)
            != (self.applied.cluster(), self.applied.capacity(), &self.applied.webrtc)
        {
            return Err("[webrtc], [cluster] and [capacity] take effect on restart".to_string());
        }
        Ok(())
    }

    fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            let node = self.node.clone();
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(2), node.shutdown()).await;
            });
            if let Some(events) = self.events.take() {
                // Awaited, so the task and its share of the bus client are gone before stop().
                events.abort();
                let _ = runtime.block_on(events);
            }
            if let Some(client) = self.client.take() {
                match Arc::try_unwrap(client) {
                    Ok(client) => runtime.block_on(client.stop()),
                    Err(_) => tracing::warn!("bus client still shared at stop"),
                }
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            status_line(ClientState::Registered, "tcp://x:1", 2),
            "registered with portal at tcp://x:1; 2 transports"
        );
        assert!(status_line(ClientState::Connecting, "tcp://x:1", 0).starts_with("waiting"));
    }
}
