//! The daemon service of a worker binary (owt-webrtc, owt-mixer, owt-record, owt-stream,
//! owt-sip) while its media work is not implemented: it joins the cluster for real —
//! registers with the portal, heartbeats its CPU load, answers `status` — and says plainly
//! in its status and its answers that it does no media work.

use crate::client::{BoxFuture, BusClient, ClientOptions, ClientState, Handler};
use crate::error::BusError;
use crate::load::CpuLoad;
use crate::message::{codes, methods, Capacity, RemoteError, WorkerInfo};
use owt_config::{CapacitySection, WorkerClusterSection, WorkerConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// This host's name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `<kind>-<hostname>-<pid>`, with characters a node id cannot hold replaced by `-`.
pub fn default_node_id(kind: &str, hostname: &str, pid: u32) -> String {
    let host: String = hostname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    let mut id = format!("{kind}-{host}-{pid}");
    id.truncate(255);
    id
}

/// The registration a worker sends for its configuration.
pub fn worker_info(kind: &str, cluster: &WorkerClusterSection, capacity: &CapacitySection) -> WorkerInfo {
    let hostname = hostname();
    let pid = std::process::id();
    let node_id = match cluster.node_id.as_str() {
        "" => default_node_id(kind, &hostname, pid),
        id => id.to_string(),
    };
    WorkerInfo {
        kind: kind.to_string(),
        node_id,
        capacity: Capacity { isp: capacity.isp.clone(), region: capacity.region.clone() },
        max_load: cluster.max_load,
        media_endpoint: cluster.media_endpoint.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname,
        pid,
    }
}

struct StubHandler {
    kind: String,
    node_id: String,
    what: &'static str,
    started: Instant,
    load: Mutex<CpuLoad>,
}

impl Handler for StubHandler {
    fn request(&self, method: &str, _params: Value) -> BoxFuture<Result<Value, RemoteError>> {
        let result = match method {
            methods::STATUS => Ok(json!({
                "kind": self.kind,
                "node_id": self.node_id,
                "implemented": false,
                "uptime_s": self.started.elapsed().as_secs(),
            })),
            _ => Err(RemoteError::new(
                codes::NOT_IMPLEMENTED,
                format!("{method}: {} is not implemented in this release", self.what),
            )),
        };
        Box::pin(async move { result })
    }

    fn load(&self) -> f64 {
        self.load.lock().map(|mut load| load.sample()).unwrap_or(0.0)
    }
}

/// A worker daemon that registers with the portal but does no media work yet.
pub struct WorkerService {
    runtime: Option<tokio::runtime::Runtime>,
    client: Option<BusClient>,
    what: &'static str,
    endpoint: String,
    applied: (WorkerClusterSection, CapacitySection),
}

impl WorkerService {
    /// Starts the bus connection of a worker of kind `C::KIND`; `what` names the work it
    /// does not do yet (e.g. "WebRTC media").
    pub fn start<C: WorkerConfig>(config: &C, what: &'static str) -> Result<WorkerService, BusError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bus")
            .enable_all()
            .build()
            .map_err(|err| BusError::Zmq(format!("cannot start the bus runtime: {err}")))?;
        let cluster = config.cluster();
        let info = worker_info(C::KIND, cluster, config.capacity());
        let handler = Arc::new(StubHandler {
            kind: info.kind.clone(),
            node_id: info.node_id.clone(),
            what,
            started: Instant::now(),
            load: Mutex::new(CpuLoad::new()),
        });
        tracing::info!("joining the cluster at {} as {} ({})", cluster.portal, info.node_id, info.kind);
        let client = BusClient::connect(&cluster.portal, info, handler, ClientOptions::default(), runtime.handle())?;
        let mut state = client.watch();
        let endpoint = cluster.portal.clone();
        let status_endpoint = endpoint.clone();
        runtime.spawn(async move {
            while state.changed().await.is_ok() {
                let current = *state.borrow_and_update();
                owt_daemon::notify(&[("STATUS", &status_line(current, &status_endpoint, what))]);
            }
        });
        Ok(WorkerService {
            runtime: Some(runtime),
            client: Some(client),
            what,
            endpoint,
            applied: (cluster.clone(), config.capacity().clone()),
        })
    }

    /// The node id this worker registers as.
    pub fn node_id(&self) -> &str {
        self.client.as_ref().map(|c| c.node_id()).unwrap_or_default()
    }
}

fn status_line(state: ClientState, endpoint: &str, what: &str) -> String {
    match state {
        ClientState::Registered => {
            format!("registered with portal at {endpoint}; {what} not implemented in this release")
        }
        ClientState::Stopped => format!("stopped; {what} not implemented in this release"),
        ClientState::Connecting | ClientState::Registering => {
            format!("waiting for portal at {endpoint}; {what} not implemented in this release")
        }
    }
}

impl<C: WorkerConfig> owt_daemon::Service<C> for WorkerService {
    fn status(&self) -> String {
        let state = self.client.as_ref().map(|c| c.state()).unwrap_or(ClientState::Stopped);
        status_line(state, &self.endpoint, self.what)
    }

    fn reload(&mut self, config: &C) -> Result<(), String> {
        if (config.cluster(), config.capacity()) != (&self.applied.0, &self.applied.1) {
            return Err("[cluster] and [capacity] take effect on restart".to_string());
        }
        Ok(())
    }

    fn stop(mut self) {
        if let (Some(runtime), Some(client)) = (self.runtime.take(), self.client.take()) {
            runtime.block_on(client.stop());
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        assert_eq!(default_node_id("webrtc", "media-1.example", 42), "webrtc-media-1.example-42");
        assert_eq!(default_node_id("sip", "weird host!", 7), "sip-weird-host--7");
        let info = worker_info("mixer", &WorkerClusterSection::default(), &CapacitySection::default());
        assert!(info.node_id.starts_with("mixer-") && info.node_id.ends_with(&format!("-{}", std::process::id())));
        assert_eq!(info.check(), Ok(()));
        let named = WorkerClusterSection { node_id: "m1".into(), ..WorkerClusterSection::default() };
        assert_eq!(worker_info("mixer", &named, &CapacitySection::default()).node_id, "m1");
    }

    #[test]
    fn status_lines_say_what_is_not_done() {
        let line = status_line(ClientState::Registered, "tcp://127.0.0.1:5555", "WebRTC media");
        assert_eq!(
            line,
            "registered with portal at tcp://127.0.0.1:5555; WebRTC media not implemented in this release"
        );
        let line = status_line(ClientState::Connecting, "tcp://127.0.0.1:5555", "WebRTC media");
        assert!(line.starts_with("waiting for portal at tcp://127.0.0.1:5555"), "{line}");
    }

    #[test]
    fn the_stub_answers_status_and_refuses_the_rest() {
        let handler = StubHandler {
            kind: "record".into(),
            node_id: "r".into(),
            what: "recording",
            started: Instant::now(),
            load: Mutex::new(CpuLoad::new()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let status = runtime.block_on(handler.request("status", Value::Null)).unwrap();
        assert_eq!(status, json!({"kind": "record", "node_id": "r", "implemented": false, "uptime_s": 0}));
        let err = runtime.block_on(handler.request("record", Value::Null)).unwrap_err();
        assert_eq!(err.code, codes::NOT_IMPLEMENTED);
        let load = handler.load();
        assert!((0.0..=1.0).contains(&load));
    }
}
