//! The portal's view of the cluster: the bus server and the worker registry behind one
//! owner task, driven through a command channel.
//!
//! [`Cluster::start`] binds `[cluster] bus` of portal.toml and schedules with its
//! `[scheduling]` strategies. Workers register, heartbeat and quit on their own; the portal
//! asks [`Cluster::schedule`] for a worker per task, [`Cluster::release`]s tasks when done,
//! sends workers requests ([`Cluster::request`]) and follows [`ClusterEvent`]s:
//! `WorkerJoined`, `WorkerDied` (missed heartbeats or quit; with the tasks that
//! were bound to it, for the caller to apply the user guide's Table 2-6) and `WorkerEvent`
//! (one-way events workers send). [`Cluster::workers`] is a snapshot for REST and `owtctl`.

use crate::error::BusError;
use crate::message::{
    codes, methods, Capacity, Heartbeat, RegisterReply, RemoteError, WorkerInfo, HEARTBEAT_OK, WHOAREYOU,
};
use crate::registry::{DeadWorker, DeathReason, Preference, Registration, Registry, RegistryConfig};
use crate::server::{BusServer, Inbound, PeerId, ServerHandle};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Errors of [`Cluster`] operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Bus(#[from] BusError),
    /// No live worker of the kind can take the task (none registered, all at their
    /// max_load, or none matching the preference).
    #[error("no {kind} worker available")]
    NoWorker { kind: String },
    #[error("no worker {0} in the cluster")]
    UnknownNode(String),
    #[error("the cluster is stopped")]
    Stopped,
}

/// What happens in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    WorkerJoined {
        node_id: String,
        kind: String,
        info: WorkerInfo,
    },
    /// The worker is gone (silent past its deadline, or quit); `tasks` were bound to it and
    /// are now unbound.
    WorkerDied {
        node_id: String,
        kind: String,
        tasks: Vec<String>,
        reason: DeathReason,
    },
    /// A one-way event a registered worker sent.
    WorkerEvent {
        node_id: String,
        method: String,
        params: Value,
    },
}

/// One worker as REST and `owtctl cluster` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerView {
    pub kind: String,
    pub node_id: String,
    pub media_endpoint: String,
    pub load: f64,
    pub max_load: f64,
    /// Seconds since it registered.
    pub age_s: u64,
    pub last_seen_ms_ago: u64,
    pub hostname: String,
    pub pid: u32,
    pub version: String,
    pub capacity: Capacity,
    /// Tasks bound to it.
    pub tasks: usize,
}

#[derive(Debug, Clone)]
struct Snapshot {
    info: WorkerInfo,
    load: f64,
    joined: Instant,
    last_seen: Instant,
    tasks: usize,
}

enum Command {
    Schedule { kind: String, task: String, preference: Preference, reply: oneshot::Sender<Option<String>> },
    Release { kind: String, task: String, reply: oneshot::Sender<Option<String>> },
    Route { node_id: String, reply: oneshot::Sender<Option<PeerId>> },
}

/// The running cluster manager of a portal.
pub struct Cluster {
    endpoint: String,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<ClusterEvent>,
    snapshot: watch::Receiver<Arc<Vec<Snapshot>>>,
    server: ServerHandle,
    stop: Option<oneshot::Sender<()>>,
    owner: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Binds `[cluster] bus` of `config` and starts the owner task on `runtime`.
    pub fn start(config: &owt_config::PortalConfig, runtime: &Handle) -> Result<Cluster, ClusterError> {
        Cluster::start_with(&config.cluster.bus, Registry::new(RegistryConfig::from_portal(config)), runtime)
    }

    /// Like [`Cluster::start`], with a given endpoint and registry (tests inject randomness).
    pub fn start_with(endpoint: &str, registry: Registry, runtime: &Handle) -> Result<Cluster, ClusterError> {
        let server = BusServer::bind(endpoint, runtime)?;
        let endpoint = server.endpoint().to_string();
        let handle = server.handle();
        let (commands, commands_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let (snapshot_tx, snapshot) = watch::channel(Arc::new(Vec::new()));
        let (stop, stop_rx) = oneshot::channel();
        let owner = Owner {
            registry,
            server: handle.clone(),
            routes: HashMap::new(),
            nodes: HashMap::new(),
            events: events.clone(),
            snapshot: snapshot_tx,
            dirty: false,
            outbox: Vec::new(),
        };
        let owner = runtime.spawn(owner.run(server, commands_rx, stop_rx));
        Ok(Cluster { endpoint, commands, events, snapshot, server: handle, stop: Some(stop), owner: Some(owner) })
    }

    /// The bound bus endpoint (with the real port when configured with port 0).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The registered workers, in registration order.
    pub fn workers(&self) -> Vec<WorkerView> {
        let now = Instant::now();
        self.snapshot
            .borrow()
            .iter()
            .map(|s| WorkerView {
                kind: s.info.kind.clone(),
                node_id: s.info.node_id.clone(),
                media_endpoint: s.info.media_endpoint.clone(),
                load: s.load,
                max_load: s.info.max_load,
                age_s: now.saturating_duration_since(s.joined).as_secs(),
                last_seen_ms_ago: now.saturating_duration_since(s.last_seen).as_millis() as u64,
                hostname: s.info.hostname.clone(),
                pid: s.info.pid,
                version: s.info.version.clone(),
                capacity: s.info.capacity.clone(),
                tasks: s.tasks,
            })
            .collect()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| ClusterError::Stopped)?;
        answer.await.map_err(|_| ClusterError::Stopped)
    }

    /// The worker of `kind` for `task`: the one the task is bound to, else one picked by the
    /// kind's strategy among the live workers below their max_load that match `preference`.
    pub async fn schedule(&self, kind: &str, task: &str, preference: &Preference) -> Result<String, ClusterError> {
        let (kind, task, preference) = (kind.to_string(), task.to_string(), preference.clone());
        let kind_name = kind.clone();
        self.ask(|reply| Command::Schedule { kind, task, preference, reply })
            .await?
            .ok_or(ClusterError::NoWorker { kind: kind_name })
    }

    /// Unbinds a task; returns the worker it was bound to.
    pub async fn release(&self, kind: &str, task: &str) -> Result<Option<String>, ClusterError> {
        let (kind, task) = (kind.to_string(), task.to_string());
        self.ask(|reply| Command::Release { kind, task, reply }).await
    }

    async fn route(&self, node_id: &str) -> Result<PeerId, ClusterError> {
        let node = node_id.to_string();
        self.ask(|reply| Command::Route { node_id: node, reply })
            .await?
            .ok_or_else(|| ClusterError::UnknownNode(node_id.to_string()))
    }

    /// Sends a request to a worker and waits for its reply until `timeout`.
    pub async fn request(
        &self,
        node_id: &str,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClusterError> {
        let peer = self.route(node_id).await?;
        Ok(self.server.request(&peer, method, params, timeout).await?)
    }

    /// Sends a one-way event to a worker.
    pub async fn event(&self, node_id: &str, method: &str, params: Value) -> Result<(), ClusterError> {
        let peer = self.route(node_id).await?;
        Ok(self.server.event(&peer, method, params).await?)
    }

    /// Joins, deaths and worker events from now on. A subscriber more than 1024 events
    /// behind gets `RecvError::Lagged` and should resynchronise from [`Cluster::workers`].
    pub fn subscribe_events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }

    /// Stops the bus (closing every worker connection and the listener) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(owner) = self.owner.take() {
            let _ = owner.await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.abort();
        }
    }
}

struct Owner {
    registry: Registry,
    server: ServerHandle,
    /// Connection → node id, and back.
    routes: HashMap<PeerId, String>,
    nodes: HashMap<String, PeerId>,
    events: broadcast::Sender<ClusterEvent>,
    snapshot: watch::Sender<Arc<Vec<Snapshot>>>,
    dirty: bool,
    outbox: Vec<ClusterEvent>,
}

impl Owner {
    async fn run(
        mut self,
        mut server: BusServer,
        mut commands: mpsc::Receiver<Command>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let period = (self.registry.config().heartbeat / 4).max(Duration::from_millis(20));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                inbound = server.next() => match inbound {
                    Some(inbound) => self.inbound(inbound),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                _ = ticker.tick() => {
                    for dead in self.registry.tick(Instant::now()) {
                        self.died(dead);
                    }
                }
            }
            // The snapshot first, so a subscriber told of a change sees it in `workers()`.
            if self.dirty {
                self.publish();
            }
            for event in self.outbox.drain(..) {
                let _ = self.events.send(event);
            }
        }
        server.stop().await;
        tracing::info!("bus stopped");
    }

    fn emit(&mut self, event: ClusterEvent) {
        self.outbox.push(event);
    }

    fn publish(&mut self) {
        let snapshot = self
            .registry
            .workers()
            .into_iter()
            .map(|w| Snapshot {
                info: w.info.clone(),
                load: w.load,
                joined: w.joined,
                last_seen: w.last_seen,
                tasks: w.tasks.len(),
            })
            .collect();
        self.snapshot.send_replace(Arc::new(snapshot));
        self.dirty = false;
    }

    fn reply(&self, peer: PeerId, id: u64, result: Result<Value, RemoteError>) {
        let server = self.server.clone();
        tokio::spawn(async move {
            if let Err(err) = server.reply(&peer, id, result).await {
                tracing::debug!("bus: cannot answer {peer}: {err}");
            }
        });
    }

    fn inbound(&mut self, inbound: Inbound) {
        let now = Instant::now();
        match inbound {
            Inbound::Request { peer, id, method, params } => {
                let result = match method.as_str() {
                    methods::REGISTER => self.register(&peer, params, now),
                    methods::HEARTBEAT => self.heartbeat(&peer, params, now),
                    _ => match self.routes.get(&peer) {
                        None => Err(RemoteError::new(codes::NOT_REGISTERED, "register first")),
                        Some(node_id) => {
                            tracing::debug!("bus: {node_id} asked for unknown method {method}");
                            Err(RemoteError::new(codes::UNKNOWN_METHOD, format!("the portal has no method {method:?}")))
                        }
                    },
                };
                self.reply(peer, id, result);
            }
            Inbound::Event { peer, method, params } => {
                let Some(node_id) = self.routes.get(&peer).cloned() else {
                    tracing::debug!("bus: event {method} from unregistered peer {peer} ignored");
                    return;
                };
                if method == methods::QUIT {
                    if let Some(dead) = self.registry.leave(&node_id) {
                        self.died(dead);
                    }
                } else {
                    self.emit(ClusterEvent::WorkerEvent { node_id, method, params });
                }
            }
        }
    }

    fn register(&mut self, peer: &PeerId, params: Value, now: Instant) -> Result<Value, RemoteError> {
        let info: WorkerInfo = serde_json::from_value(params)
            .map_err(|err| RemoteError::new(codes::BAD_PARAMS, format!("register: {err}")))?;
        info.check().map_err(|err| RemoteError::new(codes::BAD_PARAMS, format!("register: {err}")))?;
        let node_id = info.node_id.clone();
        let kind = info.kind.clone();
        match self.registry.register(info.clone(), now) {
            Registration::Joined => {
                tracing::info!(
                    "bus: {kind} worker {node_id} joined (pid {} on {}, max_load {}, media {:?})",
                    info.pid,
                    info.hostname,
                    info.max_load,
                    info.media_endpoint
                );
                self.emit(ClusterEvent::WorkerJoined { node_id: node_id.clone(), kind, info });
            }
            Registration::Refreshed => tracing::info!("bus: {kind} worker {node_id} registered again"),
            Registration::Refused { hostname, pid } => {
                tracing::warn!(
                    "bus: refused {kind} worker {node_id} (pid {} on {}): pid {pid} on {hostname} has that node id",
                    info.pid,
                    info.hostname
                );
                return Err(RemoteError::new(
                    codes::NODE_ID_IN_USE,
                    format!("node id {node_id} is in use by pid {pid} on {hostname}"),
                ));
            }
            Registration::Replaced(old) => {
                tracing::warn!("bus: {kind} worker {node_id} was taken over by pid {} on {}", info.pid, info.hostname);
                self.died(old);
                self.emit(ClusterEvent::WorkerJoined { node_id: node_id.clone(), kind, info });
            }
        }
        if let Some(old_node) = self.routes.insert(peer.clone(), node_id.clone()) {
            if old_node != node_id {
                self.nodes.remove(&old_node);
            }
        }
        if let Some(old_peer) = self.nodes.insert(node_id, peer.clone()) {
            if &old_peer != peer {
                self.routes.remove(&old_peer);
            }
        }
        self.dirty = true;
        let heartbeat_ms = self.registry.config().heartbeat.as_millis() as u64;
        Ok(serde_json::to_value(RegisterReply { heartbeat_ms }).expect("serializable"))
    }

    fn heartbeat(&mut self, peer: &PeerId, params: Value, now: Instant) -> Result<Value, RemoteError> {
        let Some(node_id) = self.routes.get(peer).cloned() else {
            return Ok(Value::from(WHOAREYOU));
        };
        let beat: Heartbeat = serde_json::from_value(params)
            .map_err(|err| RemoteError::new(codes::BAD_PARAMS, format!("heartbeat: {err}")))?;
        if self.registry.heartbeat(&node_id, beat.load, now) {
            self.dirty = true;
            Ok(Value::from(HEARTBEAT_OK))
        } else {
            self.routes.remove(peer);
            self.nodes.remove(&node_id);
            Ok(Value::from(WHOAREYOU))
        }
    }

    fn died(&mut self, dead: DeadWorker) {
        let node_id = dead.info.node_id.clone();
        let kind = dead.info.kind.clone();
        if let Some(peer) = self.nodes.remove(&node_id) {
            self.routes.remove(&peer);
        }
        let reason = match dead.reason {
            DeathReason::MissedHeartbeats => "missed its heartbeats",
            DeathReason::Quit => "quit",
        };
        if dead.reason == DeathReason::Quit {
            tracing::info!("bus: {kind} worker {node_id} {reason}; tasks {:?}", dead.tasks);
        } else {
            tracing::warn!("bus: {kind} worker {node_id} {reason}; tasks {:?}", dead.tasks);
        }
        self.emit(ClusterEvent::WorkerDied { node_id, kind, tasks: dead.tasks, reason: dead.reason });
        self.dirty = true;
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Schedule { kind, task, preference, reply } => {
                let chosen = self.registry.schedule(&kind, &task, &preference, Instant::now());
                match &chosen {
                    Some(node_id) => tracing::debug!("bus: {kind} task {task} → {node_id}"),
                    None => tracing::info!("bus: no {kind} worker available for {task} ({preference:?})"),
                }
                // Published before the answer, so the caller's next `workers()` counts the task.
                self.publish();
                let _ = reply.send(chosen);
            }
            Command::Release { kind, task, reply } => {
                let released = self.registry.release(&kind, &task);
                self.publish();
                let _ = reply.send(released);
            }
            Command::Route { node_id, reply } => {
                let _ = reply.send(self.nodes.get(&node_id).cloned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{BoxFuture, BusClient, ClientOptions, ClientState, Handler};
    use owt_config::Strategy;
    use serde_json::json;

    struct TestHandler {
        load: f64,
    }

    impl Handler for TestHandler {
        fn request(&self, method: &str, params: Value) -> BoxFuture<Result<Value, RemoteError>> {
            let method = method.to_string();
            Box::pin(async move {
                match method.as_str() {
                    "echo" => Ok(params),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(Value::Null)
                    }
                    _ => Err(RemoteError::new(codes::UNKNOWN_METHOD, method)),
                }
            })
        }
        fn load(&self) -> f64 {
            self.load
        }
    }

    fn registry(heartbeat_ms: u64) -> Registry {
        let mut portal = owt_config::PortalConfig::default();
        portal.cluster.heartbeat_ms = heartbeat_ms;
        portal.scheduling.mixer = Strategy::RoundRobin.name().into();
        Registry::new(RegistryConfig::from_portal(&portal))
    }

    fn info(kind: &str, node_id: &str) -> WorkerInfo {
        WorkerInfo {
            kind: kind.into(),
            node_id: node_id.into(),
            capacity: Capacity::default(),
            max_load: 0.85,
            media_endpoint: "127.0.0.1:7000".into(),
            version: "test".into(),
            hostname: "localhost".into(),
            pid: std::process::id(),
        }
    }

    fn client(endpoint: &str, kind: &str, node_id: &str, load: f64) -> BusClient {
        let options = ClientOptions { heartbeat: Duration::from_millis(100), ..ClientOptions::default() };
        BusClient::connect(endpoint, info(kind, node_id), Arc::new(TestHandler { load }), options, &Handle::current())
            .unwrap()
    }

    async fn until_registered(client: &BusClient) {
        let mut watch = client.watch();
        tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|s| *s == ClientState::Registered))
            .await
            .expect("registered in time")
            .unwrap();
    }

    async fn next_event(events: &mut broadcast::Receiver<ClusterEvent>) -> ClusterEvent {
        tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event in time").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_register_heartbeat_and_get_scheduled() {
        let cluster = Cluster::start_with("tcp://127.0.0.1:0", registry(100), &Handle::current()).unwrap();
        let mut events = cluster.subscribe_events();
        let a = client(cluster.endpoint(), "mixer", "mixer-a", 0.25);
        until_registered(&a).await;
        let b = client(cluster.endpoint(), "mixer", "mixer-b", 0.5);
        until_registered(&b).await;
        for expected in ["mixer-a", "mixer-b"] {
            match next_event(&mut events).await {
                ClusterEvent::WorkerJoined { node_id, kind, info } => {
                    assert_eq!((node_id.as_str(), kind.as_str()), (expected, "mixer"));
                    assert_eq!(info.media_endpoint, "127.0.0.1:7000");
                }
                other => panic!("{other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // a few heartbeats
        let workers = cluster.workers();
        assert_eq!(workers.iter().map(|w| w.node_id.as_str()).collect::<Vec<_>>(), ["mixer-a", "mixer-b"]);
        assert_eq!(workers[0].load, 0.25);
        assert_eq!(workers[1].load, 0.5);
        assert!(workers[0].last_seen_ms_ago < 250, "{workers:?}");
        assert_eq!(workers[0].pid, std::process::id());

        // Round robin, task binding, release.
        let none = Preference::none();
        assert_eq!(cluster.schedule("mixer", "room1", &none).await.unwrap(), "mixer-a");
        assert_eq!(cluster.schedule("mixer", "room2", &none).await.unwrap(), "mixer-b");
        assert_eq!(cluster.schedule("mixer", "room1", &none).await.unwrap(), "mixer-a");
        assert!(matches!(cluster.schedule("webrtc", "t", &none).await, Err(ClusterError::NoWorker { .. })));
        let tasks = |cluster: &Cluster| cluster.workers().iter().map(|w| w.tasks).collect::<Vec<_>>();
        assert_eq!(tasks(&cluster), [1, 1], "the snapshot counts a task as soon as it is scheduled");
        assert_eq!(cluster.release("mixer", "room2").await.unwrap().as_deref(), Some("mixer-b"));
        assert_eq!(tasks(&cluster), [1, 0], "and no longer counts it as soon as it is released");
        assert_eq!(cluster.release("mixer", "room2").await.unwrap(), None);

        // Requests both ways.
        let echoed = cluster.request("mixer-b", "echo", json!({"x": 1}), Duration::from_secs(2)).await.unwrap();
        assert_eq!(echoed, json!({"x": 1}));
        let err = cluster.request("mixer-b", "nope", Value::Null, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(&err, ClusterError::Bus(BusError::Remote(e)) if e.code == codes::UNKNOWN_METHOD), "{err}");
        let err = cluster.request("mixer-b", "slow", Value::Null, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, ClusterError::Bus(BusError::Timeout { .. })), "{err}");
        let err = cluster.request("ghost", "echo", Value::Null, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ClusterError::UnknownNode(_)), "{err}");
        let err = a.request("frobnicate", Value::Null, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(&err, BusError::Remote(e) if e.code == codes::UNKNOWN_METHOD), "{err}");

        // Worker events reach subscribers.
        a.event("progress", json!({"n": 1})).await.unwrap();
        match next_event(&mut events).await {
            ClusterEvent::WorkerEvent { node_id, method, params } => {
                assert_eq!((node_id.as_str(), method.as_str(), params), ("mixer-a", "progress", json!({"n": 1})));
            }
            other => panic!("{other:?}"),
        }

        // quit: gone at once, with its tasks.
        a.stop().await;
        match next_event(&mut events).await {
            ClusterEvent::WorkerDied { node_id, tasks, reason, .. } => {
                assert_eq!(
                    (node_id.as_str(), tasks, reason),
                    ("mixer-a", vec!["room1".to_string()], DeathReason::Quit)
                );
            }
            other => panic!("{other:?}"),
        }
        // Silence: dead after 3 missed heartbeats (300 ms here).
        cluster.schedule("mixer", "room3", &none).await.unwrap();
        let silenced = Instant::now();
        drop(b); // aborts without quit
        match next_event(&mut events).await {
            ClusterEvent::WorkerDied { node_id, tasks, reason, .. } => {
                assert_eq!(
                    (node_id.as_str(), tasks, reason),
                    ("mixer-b", vec!["room3".to_string()], DeathReason::MissedHeartbeats)
                );
            }
            other => panic!("{other:?}"),
        }
        let took = silenced.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500), "{took:?}");
        assert!(cluster.workers().is_empty());
        cluster.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_portal_gets_whoareyou_answered_by_a_new_registration() {
        let first = Cluster::start_with("tcp://127.0.0.1:0", registry(100), &Handle::current()).unwrap();
        let endpoint = first.endpoint().to_string();
        let worker = client(&endpoint, "webrtc", "webrtc-1", 0.1);
        until_registered(&worker).await;
        first.schedule("webrtc", "t1", &Preference::none()).await.unwrap();
        first.stop().await;
        let mut watch = worker.watch();
        tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|s| *s != ClientState::Registered))
            .await
            .unwrap()
            .unwrap();

        let second = Cluster::start_with(&endpoint, registry(100), &Handle::current()).unwrap();
        let mut events = second.subscribe_events();
        match next_event(&mut events).await {
            ClusterEvent::WorkerJoined { node_id, .. } => assert_eq!(node_id, "webrtc-1"),
            other => panic!("{other:?}"),
        }
        until_registered(&worker).await;
        assert_eq!(second.workers().len(), 1);
        assert_eq!(second.schedule("webrtc", "t1", &Preference::none()).await.unwrap(), "webrtc-1");
        worker.stop().await;
        second.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_process_with_the_same_node_id_waits_for_the_first_to_die() {
        let cluster = Cluster::start_with("tcp://127.0.0.1:0", registry(100), &Handle::current()).unwrap();
        let mut events = cluster.subscribe_events();
        let first = client(cluster.endpoint(), "webrtc", "w", 0.0);
        until_registered(&first).await;
        let _ = next_event(&mut events).await;
        cluster.schedule("webrtc", "t", &Preference::none()).await.unwrap();
        let mut other = info("webrtc", "w");
        other.pid += 1;
        let options = ClientOptions { heartbeat: Duration::from_millis(100), ..ClientOptions::default() };
        let second = BusClient::connect(
            cluster.endpoint(),
            other,
            Arc::new(TestHandler { load: 0.0 }),
            options,
            &Handle::current(),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(second.state(), ClientState::Registering, "refused while the first lives");
        assert_eq!(cluster.workers()[0].pid, std::process::id());
        drop(first); // dies without quit
        match next_event(&mut events).await {
            ClusterEvent::WorkerDied { node_id, tasks, reason, .. } => {
                assert_eq!(
                    (node_id.as_str(), tasks, reason),
                    ("w", vec!["t".to_string()], DeathReason::MissedHeartbeats)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(next_event(&mut events).await, ClusterEvent::WorkerJoined { .. }));
        until_registered(&second).await;
        assert_eq!(cluster.workers()[0].pid, std::process::id() + 1);
        second.stop().await;
        cluster.stop().await;
    }
}
