//! The portal's worker registry and scheduler, sans-IO: no sockets, no clock, no tasks.
//! The caller passes the current time (`Instant`) into every call that depends on it and
//! applies what the calls return.
//!
//! - Workers register ([`Registry::register`]) and send heartbeats with their load
//!   ([`Registry::heartbeat`]). A worker silent for `missed_heartbeats` × `heartbeat` is dead:
//!   [`Registry::tick`] removes it and returns it with the tasks that were bound to it, so the
//!   caller applies the OWT fault-tolerance table (user guide Table 2-6: mixer work is
//!   rescheduled, webrtc/stream/record work fails, SIP participants leave).
//! - [`Registry::schedule`] picks a worker of a kind for a task with the kind's [`Strategy`]
//!   (user guide §3.6) among the live workers whose load is below their `max_load` and that
//!   match the isp/region [`Preference`]. The task stays bound to that worker (the same task
//!   gets the same worker) until [`Registry::release`] or the worker's death.
//!
//! Preference rules (user guide §3.6, OWT cluster manager):
//! - a worker with an empty isp list serves every ISP; one that lists ISPs serves only those;
//!   a preference without an ISP is served only by workers with an empty isp list;
//! - with a region preference, workers listing that region are preferred, then workers with
//!   an empty region list (they serve every region), then the others; a preference without a
//!   region is served only by workers with an empty region list.
//!
//! So a client without any preference only gets workers whose isp and region lists are both
//! empty.

use crate::message::WorkerInfo;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

pub use owt_config::Strategy;

/// A client's isp/region preference (from its token).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Preference {
    pub isp: Option<String>,
    pub region: Option<String>,
}

impl Preference {
    pub fn none() -> Preference {
        Preference::default()
    }

    fn isp(&self) -> Option<&str> {
        self.isp.as_deref().filter(|s| !s.is_empty())
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref().filter(|s| !s.is_empty())
    }
}

/// Settings of a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Interval at which workers send heartbeats.
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before it is dead.
    pub missed_heartbeats: u32,
    /// Strategy per worker kind; kinds not listed use `default_strategy`.
    pub strategies: HashMap<String, Strategy>,
    /// OWT's fallback for a kind without a strategy: randomly-pick.
    pub default_strategy: Strategy,
}

impl RegistryConfig {
    /// The settings of portal.toml's `[cluster]` and `[scheduling]`.
    pub fn from_portal(config: &owt_config::PortalConfig) -> RegistryConfig {
        RegistryConfig {
            heartbeat: Duration::from_millis(config.cluster.heartbeat_ms),
            missed_heartbeats: config.cluster.missed_heartbeats,
            strategies: config.scheduling.strategies().into_iter().map(|(k, s)| (k.to_string(), s)).collect(),
            default_strategy: Strategy::RandomlyPick,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::from_portal(&owt_config::PortalConfig::default())
    }
}

/// A registered worker as the registry sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub info: WorkerInfo,
    /// Last reported load, 0..1.
    pub load: f64,
    pub joined: Instant,
    pub last_seen: Instant,
    /// Tasks bound to this worker.
    pub tasks: BTreeSet<String>,
    /// Registration order; earlier workers win ties.
    seq: u64,
}

/// Why a worker left the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeathReason {
    /// It missed `missed_heartbeats` heartbeats.
    MissedHeartbeats,
    /// It said `quit`.
    Quit,
}

/// A worker that left, with the tasks that were bound to it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadWorker {
    pub info: WorkerInfo,
    pub tasks: Vec<String>,
    pub reason: DeathReason,
}

/// What [`Registry::register`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// A new worker.
    Joined,
    /// The same process (same node id, hostname and pid) registered again, e.g. after a
    /// reconnection: its tasks stay bound.
    Refreshed,
    /// A different process took over the node id of a worker that was past its deadline
    /// (not yet removed by [`Registry::tick`]): the old one is gone with its tasks.
    Replaced(DeadWorker),
    /// A different, live process holds the node id: the registration is refused (two
    /// processes configured with one node id would otherwise take it from each other).
    Refused { hostname: String, pid: u32 },
}

/// A worker that could take a task, as the strategies see it.
#[derive(Debug, Clone)]
struct Candidate {
    seq: u64,
    node_id: String,
    load: f64,
}

#[derive(Debug, Default)]
struct KindState {
    last_used: Option<String>,
    round_robin_last: Option<u64>,
}

/// Workers by node id, task bindings, and per-kind scheduling state.
pub struct Registry {
    config: RegistryConfig,
    workers: BTreeMap<String, Worker>,
    /// (kind, task) → node id.
    bindings: HashMap<(String, String), String>,
    kinds: HashMap<String, KindState>,
    next_seq: u64,
    random: Box<dyn FnMut(usize) -> usize + Send>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("workers", &self.workers).field("bindings", &self.bindings).finish()
    }
}

impl Registry {
    /// A registry whose randomly-pick strategy uses the thread RNG.
    pub fn new(config: RegistryConfig) -> Registry {
        use rand::Rng;
        Registry::with_random(config, |n| rand::thread_rng().gen_range(0..n))
    }

    /// A registry with an injected random source: `random(n)` returns an index below `n`
    /// (larger values are reduced modulo `n`).
    pub fn with_random(config: RegistryConfig, random: impl FnMut(usize) -> usize + Send + 'static) -> Registry {
        Registry {
            config,
            workers: BTreeMap::new(),
            bindings: HashMap::new(),
            kinds: HashMap::new(),
            next_seq: 0,
            random: Box::new(random),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Silence after which a worker is dead.
    pub fn deadline(&self) -> Duration {
        self.config.heartbeat * self.config.missed_heartbeats
    }

    pub fn strategy(&self, kind: &str) -> Strategy {
        self.config.strategies.get(kind).copied().unwrap_or(self.config.default_strategy)
    }

    /// Adds or refreshes a worker. The caller has checked `info` ([`WorkerInfo::check`]).
    pub fn register(&mut self, info: WorkerInfo, now: Instant) -> Registration {
        let node_id = info.node_id.clone();
        let deadline = self.deadline();
        if let Some(existing) = self.workers.get_mut(&node_id) {
            let same_process = existing.info.hostname == info.hostname
                && existing.info.pid == info.pid
                && existing.info.kind == info.kind;
            if same_process {
                existing.info = info;
                existing.last_seen = now;
                return Registration::Refreshed;
            }
            if now.saturating_duration_since(existing.last_seen) <= deadline {
                return Registration::Refused { hostname: existing.info.hostname.clone(), pid: existing.info.pid };
            }
            let old = self.remove(&node_id, DeathReason::MissedHeartbeats).expect("present");
            self.insert(info, now);
            return Registration::Replaced(old);
        }
        self.insert(info, now);
        Registration::Joined
    }

    fn insert(&mut self, info: WorkerInfo, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let worker = Worker { info, load: 0.0, joined: now, last_seen: now, tasks: BTreeSet::new(), seq };
        self.workers.insert(worker.info.node_id.clone(), worker);
    }

    /// Records a heartbeat. `false`: the node is unknown (answer `whoareyou`).
    pub fn heartbeat(&mut self, node_id: &str, load: f64, now: Instant) -> bool {
        match self.workers.get_mut(node_id) {
            Some(worker) => {
                worker.load = if load.is_finite() { load.clamp(0.0, 1.0) } else { 1.0 };
                worker.last_seen = now;
                true
            }
            None => false,
        }
    }

    /// Removes a worker that said `quit`.
    pub fn leave(&mut self, node_id: &str) -> Option<DeadWorker> {
        self.remove(node_id, DeathReason::Quit)
    }

    fn remove(&mut self, node_id: &str, reason: DeathReason) -> Option<DeadWorker> {
        let worker = self.workers.remove(node_id)?;
        let kind = worker.info.kind.clone();
        for task in &worker.tasks {
            self.bindings.remove(&(kind.clone(), task.clone()));
        }
        if let Some(state) = self.kinds.get_mut(&kind) {
            if state.last_used.as_deref() == Some(node_id) {
                state.last_used = None;
            }
        }
        Some(DeadWorker { info: worker.info, tasks: worker.tasks.into_iter().collect(), reason })
    }

    fn is_alive(&self, worker: &Worker, now: Instant) -> bool {
        now.saturating_duration_since(worker.last_seen) <= self.deadline()
    }

    /// Removes and returns the workers that missed their heartbeats, oldest registration first.
    pub fn tick(&mut self, now: Instant) -> Vec<DeadWorker> {
        let mut dead: Vec<(u64, String)> =
            self.workers.values().filter(|w| !self.is_alive(w, now)).map(|w| (w.seq, w.info.node_id.clone())).collect();
        dead.sort();
        dead.into_iter().filter_map(|(_, id)| self.remove(&id, DeathReason::MissedHeartbeats)).collect()
    }

    /// The worker for `task` of `kind`: the one it is bound to, else a new pick by the kind's
    /// strategy among the live, available workers matching `preference`, which the task is
    /// then bound to. `None`: no worker can take it.
    pub fn schedule(&mut self, kind: &str, task: &str, preference: &Preference, now: Instant) -> Option<String> {
        let key = (kind.to_string(), task.to_string());
        if let Some(node_id) = self.bindings.get(&key) {
            match self.workers.get(node_id) {
                Some(worker) if self.is_alive(worker, now) => return Some(node_id.clone()),
                _ => {
                    // Bound to a worker that is silent past its deadline: rebind.
                    let node_id = node_id.clone();
                    self.unbind(&key, &node_id);
                }
            }
        }
        let candidates = self.candidates(kind, preference, now);
        let chosen = self.pick(kind, &candidates)?;
        let worker = self.workers.get_mut(&chosen).expect("candidate exists");
        worker.tasks.insert(task.to_string());
        self.bindings.insert(key, chosen.clone());
        Some(chosen)
    }

    /// Unbinds a task; returns the worker it was bound to.
    pub fn release(&mut self, kind: &str, task: &str) -> Option<String> {
        let key = (kind.to_string(), task.to_string());
        let node_id = self.bindings.get(&key)?.clone();
        self.unbind(&key, &node_id);
        Some(node_id)
    }

    fn unbind(&mut self, key: &(String, String), node_id: &str) {
        self.bindings.remove(key);
        if let Some(worker) = self.workers.get_mut(node_id) {
            worker.tasks.remove(&key.1);
        }
    }

    /// The worker a task is bound to.
    pub fn scheduled(&self, kind: &str, task: &str) -> Option<&str> {
        self.bindings.get(&(kind.to_string(), task.to_string())).map(String::as_str)
    }

    /// Live, available, preference-matching workers of `kind`, in registration order.
    fn candidates(&self, kind: &str, preference: &Preference, now: Instant) -> Vec<Candidate> {
        let mut available: Vec<&Worker> = self
            .workers
            .values()
            .filter(|w| w.info.kind == kind && self.is_alive(w, now) && w.load < w.info.max_load)
            .filter(|w| match preference.isp() {
                Some(isp) => w.info.capacity.isp.is_empty() || w.info.capacity.isp.iter().any(|i| i == isp),
                None => w.info.capacity.isp.is_empty(),
            })
            .collect();
        available.sort_by_key(|w| w.seq);
        match preference.region() {
            None => available.retain(|w| w.info.capacity.region.is_empty()),
            Some(region) => {
                let listing = |w: &&Worker| w.info.capacity.region.iter().any(|r| r == region);
                if available.iter().any(listing) {
                    available.retain(listing);
                } else if available.iter().any(|w| w.info.capacity.region.is_empty()) {
                    available.retain(|w| w.info.capacity.region.is_empty());
                }
            }
        }
        available.into_iter().map(|w| Candidate { seq: w.seq, node_id: w.info.node_id.clone(), load: w.load }).collect()
    }

    fn pick(&mut self, kind: &str, candidates: &[Candidate]) -> Option<String> {
        let first = candidates.first()?;
        let strategy = self.strategy(kind);
        let state = self.kinds.entry(kind.to_string()).or_default();
        let chosen: &Candidate = match strategy {
            Strategy::LastUsed => {
                candidates.iter().find(|c| state.last_used.as_deref() == Some(c.node_id.as_str())).unwrap_or(first)
            }
            Strategy::LeastUsed => candidates.iter().fold(first, |best, c| if c.load < best.load { c } else { best }),
            Strategy::MostUsed => candidates.iter().fold(first, |best, c| if c.load > best.load { c } else { best }),
            Strategy::RoundRobin => match state.round_robin_last {
                Some(last) => candidates.iter().find(|c| c.seq > last).unwrap_or(first),
                None => first,
            },
            Strategy::RandomlyPick => &candidates[(self.random)(candidates.len()) % candidates.len()],
        };
        state.last_used = Some(chosen.node_id.clone());
        state.round_robin_last = Some(chosen.seq);
        Some(chosen.node_id.clone())
    }

    /// Every worker, in registration order.
    pub fn workers(&self) -> Vec<&Worker> {
        let mut workers: Vec<&Worker> = self.workers.values().collect();
        workers.sort_by_key(|w| w.seq);
        workers
    }

    pub fn worker(&self, node_id: &str) -> Option<&Worker> {
        self.workers.get(node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Capacity;
    use std::sync::{Arc, Mutex};

    const HB: Duration = Duration::from_millis(1000);

    fn config(strategy: Strategy) -> RegistryConfig {
        RegistryConfig {
            heartbeat: HB,
            missed_heartbeats: 3,
            strategies: [("webrtc".to_string(), strategy), ("mixer".to_string(), strategy)].into(),
            default_strategy: Strategy::RandomlyPick,
        }
    }

    fn info(kind: &str, node_id: &str) -> WorkerInfo {
        WorkerInfo {
            kind: kind.into(),
            node_id: node_id.into(),
            capacity: Capacity::default(),
            max_load: 0.85,
            media_endpoint: String::new(),
            version: "0.1.0".into(),
            hostname: "host".into(),
            pid: 100,
        }
    }

    fn with_capacity(mut info: WorkerInfo, isp: &[&str], region: &[&str]) -> WorkerInfo {
        info.capacity.isp = isp.iter().map(|s| s.to_string()).collect();
        info.capacity.region = region.iter().map(|s| s.to_string()).collect();
        info
    }

    /// A registry with webrtc workers w0.. (loads given) registered at `t0`.
    fn registry(strategy: Strategy, loads: &[f64], t0: Instant) -> Registry {
        let mut registry = Registry::with_random(config(strategy), |_| panic!("no randomness expected"));
        for (i, load) in loads.iter().enumerate() {
            let id = format!("w{i}");
            assert_eq!(registry.register(info("webrtc", &id), t0), Registration::Joined);
            assert!(registry.heartbeat(&id, *load, t0));
        }
        registry
    }

    fn schedule_n(registry: &mut Registry, n: usize, now: Instant) -> Vec<String> {
        (0..n).map(|i| registry.schedule("webrtc", &format!("t{i}"), &Preference::none(), now).unwrap()).collect()
    }

    #[test]
    fn last_used_sticks_to_one_worker_while_it_is_available() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::LastUsed, &[0.5, 0.1, 0.2], t0);
        assert_eq!(schedule_n(&mut registry, 3, t0), ["w0", "w0", "w0"]);
        // w0 overloaded: a new one is picked and then kept.
        registry.heartbeat("w0", 0.9, t0);
        assert_eq!(registry.schedule("webrtc", "a", &Preference::none(), t0).as_deref(), Some("w1"));
        registry.heartbeat("w0", 0.1, t0);
        assert_eq!(registry.schedule("webrtc", "b", &Preference::none(), t0).as_deref(), Some("w1"));
    }

    #[test]
    fn least_used_picks_the_lowest_load_and_ties_go_to_the_earliest() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::LeastUsed, &[0.5, 0.1, 0.2], t0);
        assert_eq!(schedule_n(&mut registry, 2, t0), ["w1", "w1"]);
        registry.heartbeat("w1", 0.6, t0);
        assert_eq!(registry.schedule("webrtc", "x", &Preference::none(), t0).as_deref(), Some("w2"));
        let mut tied = registry_from(Strategy::LeastUsed, &[0.3, 0.3], t0);
        assert_eq!(tied.schedule("webrtc", "y", &Preference::none(), t0).as_deref(), Some("w0"));
    }

    fn registry_from(strategy: Strategy, loads: &[f64], t0: Instant) -> Registry {
        registry(strategy, loads, t0)
    }

    #[test]
    fn most_used_picks_the_highest_available_load() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::MostUsed, &[0.5, 0.1, 0.84], t0);
        assert_eq!(schedule_n(&mut registry, 2, t0), ["w2", "w2"]);
        registry.heartbeat("w2", 0.85, t0); // at max_load: unavailable
        assert_eq!(registry.schedule("webrtc", "x", &Preference::none(), t0).as_deref(), Some("w0"));
        let mut tied = registry_from(Strategy::MostUsed, &[0.3, 0.3], t0);
        assert_eq!(tied.schedule("webrtc", "y", &Preference::none(), t0).as_deref(), Some("w0"));
    }

    #[test]
    fn round_robin_cycles_and_skips_unavailable_workers() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::RoundRobin, &[0.0, 0.0, 0.0], t0);
        assert_eq!(schedule_n(&mut registry, 7, t0), ["w0", "w1", "w2", "w0", "w1", "w2", "w0"]);
        registry.heartbeat("w1", 0.99, t0);
        let picks: Vec<_> =
            (10..14).map(|i| registry.schedule("webrtc", &format!("t{i}"), &Preference::none(), t0).unwrap()).collect();
        assert_eq!(picks, ["w2", "w0", "w2", "w0"]);
        // A worker that joins later takes its turn after the others.
        registry.register(info("webrtc", "w3"), t0);
        registry.heartbeat("w1", 0.0, t0);
        let picks: Vec<_> =
            (20..24).map(|i| registry.schedule("webrtc", &format!("t{i}"), &Preference::none(), t0).unwrap()).collect();
        assert_eq!(picks, ["w1", "w2", "w3", "w0"]);
    }

    #[test]
    fn randomly_pick_uses_the_injected_source_over_available_workers() {
        let t0 = Instant::now();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(vec![1usize, 0, 7]));
        let (asked2, script2) = (asked.clone(), script.clone());
        let mut registry = Registry::with_random(config(Strategy::RandomlyPick), move |n| {
            asked2.lock().unwrap().push(n);
            script2.lock().unwrap().remove(0)
        });
        for id in ["w0", "w1", "w2"] {
            registry.register(info("webrtc", id), t0);
        }
        registry.heartbeat("w1", 0.9, t0); // unavailable: candidates are w0, w2
        let picks = schedule_n(&mut registry, 3, t0);
        assert_eq!(picks, ["w2", "w0", "w2"]); // 1 → w2, 0 → w0, 7 % 2 = 1 → w2
        assert_eq!(*asked.lock().unwrap(), [2, 2, 2]);
    }

    #[test]
    fn unknown_kind_uses_the_default_strategy_and_kinds_are_separate() {
        let t0 = Instant::now();
        let mut registry = Registry::with_random(config(Strategy::RoundRobin), |n| n - 1);
        registry.register(info("webrtc", "w0"), t0);
        registry.register(info("record", "r0"), t0);
        registry.register(info("record", "r1"), t0);
        assert_eq!(registry.strategy("record"), Strategy::RandomlyPick);
        assert_eq!(registry.schedule("record", "t", &Preference::none(), t0).as_deref(), Some("r1"));
        assert_eq!(registry.schedule("webrtc", "t", &Preference::none(), t0).as_deref(), Some("w0"));
        assert_eq!(registry.schedule("mixer", "t", &Preference::none(), t0), None);
        assert_eq!(registry.scheduled("record", "t"), Some("r1"));
        assert_eq!(registry.scheduled("webrtc", "t"), Some("w0"));
    }

    #[test]
    fn nothing_available_gives_none() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::LeastUsed, &[0.9, 0.86], t0);
        assert_eq!(registry.schedule("webrtc", "t", &Preference::none(), t0), None);
        assert_eq!(registry.scheduled("webrtc", "t"), None);
        let mut empty = Registry::with_random(config(Strategy::LastUsed), |_| 0);
        assert_eq!(empty.schedule("webrtc", "t", &Preference::none(), t0), None);
    }

    #[test]
    fn a_bound_task_keeps_its_worker_until_released() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::RoundRobin, &[0.0, 0.0], t0);
        let first = registry.schedule("webrtc", "room1", &Preference::none(), t0).unwrap();
        for _ in 0..3 {
            assert_eq!(registry.schedule("webrtc", "room1", &Preference::none(), t0).unwrap(), first);
        }
        // Even when its worker is now overloaded.
        registry.heartbeat(&first, 0.99, t0);
        assert_eq!(registry.schedule("webrtc", "room1", &Preference::none(), t0).unwrap(), first);
        assert!(registry.worker(&first).unwrap().tasks.contains("room1"));
        assert_eq!(registry.release("webrtc", "room1"), Some(first.clone()));
        assert_eq!(registry.release("webrtc", "room1"), None);
        assert!(registry.worker(&first).unwrap().tasks.is_empty());
        let again = registry.schedule("webrtc", "room1", &Preference::none(), t0).unwrap();
        assert_ne!(again, first, "rescheduled by the strategy, the old worker being overloaded");
    }

    #[test]
    fn death_after_missed_heartbeats_returns_bound_tasks() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::RoundRobin, &[0.0, 0.0], t0);
        assert_eq!(registry.deadline(), Duration::from_secs(3));
        registry.schedule("webrtc", "a", &Preference::none(), t0); // w0
        registry.schedule("webrtc", "b", &Preference::none(), t0); // w1
        registry.schedule("webrtc", "c", &Preference::none(), t0); // w0
                                                                   // w1 keeps beating, w0 falls silent.
        for s in 1..=3 {
            registry.heartbeat("w1", 0.0, t0 + Duration::from_secs(s));
        }
        assert!(registry.tick(t0 + Duration::from_millis(2999)).is_empty());
        assert!(registry.tick(t0 + Duration::from_millis(3000)).is_empty(), "exactly 3 intervals is not yet dead");
        let dead = registry.tick(t0 + Duration::from_millis(3001));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].info.node_id, "w0");
        assert_eq!(dead[0].reason, DeathReason::MissedHeartbeats);
        assert_eq!(dead[0].tasks, ["a", "c"]);
        assert!(registry.worker("w0").is_none());
        assert!(!registry.heartbeat("w0", 0.0, t0 + Duration::from_secs(4)), "whoareyou");
        assert_eq!(registry.scheduled("webrtc", "a"), None);
        assert_eq!(registry.schedule("webrtc", "a", &Preference::none(), t0 + Duration::from_secs(4)).unwrap(), "w1");
        assert!(registry.tick(t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn a_silent_worker_is_not_scheduled_even_before_tick() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::LastUsed, &[0.0, 0.0], t0);
        assert_eq!(registry.schedule("webrtc", "a", &Preference::none(), t0).unwrap(), "w0");
        let later = t0 + Duration::from_secs(5);
        registry.heartbeat("w1", 0.0, later);
        // w0 is past its deadline: its task moves and new work avoids it.
        assert_eq!(registry.schedule("webrtc", "a", &Preference::none(), later).unwrap(), "w1");
        assert_eq!(registry.schedule("webrtc", "b", &Preference::none(), later).unwrap(), "w1");
        let dead = registry.tick(later);
        assert_eq!(dead.len(), 1);
        assert!(dead[0].tasks.is_empty(), "task a was rebound to w1");
    }

    #[test]
    fn quit_and_reregistration() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::LastUsed, &[0.0], t0);
        registry.schedule("webrtc", "a", &Preference::none(), t0);
        // The same process registering again keeps its tasks.
        assert_eq!(registry.register(info("webrtc", "w0"), t0), Registration::Refreshed);
        assert_eq!(registry.scheduled("webrtc", "a"), Some("w0"));
        // Another process with the same node id is refused while the first one is alive...
        let mut other = info("webrtc", "w0");
        other.pid = 200;
        assert_eq!(registry.register(other.clone(), t0), Registration::Refused { hostname: "host".into(), pid: 100 });
        // ... and replaces it once it is past its deadline.
        let t0 = t0 + Duration::from_millis(3001);
        match registry.register(other, t0) {
            Registration::Replaced(old) => {
                assert_eq!(old.tasks, ["a"]);
                assert_eq!(old.reason, DeathReason::MissedHeartbeats);
                assert_eq!(old.info.pid, 100);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(registry.worker("w0").unwrap().info.pid, 200);
        assert_eq!(registry.scheduled("webrtc", "a"), None);
        registry.schedule("webrtc", "b", &Preference::none(), t0);
        let gone = registry.leave("w0").unwrap();
        assert_eq!((gone.reason, gone.tasks), (DeathReason::Quit, vec!["b".to_string()]));
        assert!(registry.leave("w0").is_none());
        assert!(registry.workers().is_empty());
    }

    #[test]
    fn heartbeat_load_is_sanitized() {
        let t0 = Instant::now();
        let mut registry = registry(Strategy::LeastUsed, &[0.0], t0);
        registry.heartbeat("w0", f64::NAN, t0);
        assert_eq!(registry.worker("w0").unwrap().load, 1.0);
        registry.heartbeat("w0", -3.0, t0);
        assert_eq!(registry.worker("w0").unwrap().load, 0.0);
        registry.heartbeat("w0", 7.0, t0);
        assert_eq!(registry.worker("w0").unwrap().load, 1.0);
    }

    /// Workers: plain (no lists), isp1 only, isp1+eu, eu only, us only.
    fn preference_registry(t0: Instant) -> Registry {
        let mut registry = Registry::with_random(config(Strategy::LeastUsed), |_| 0);
        let workers = [
            with_capacity(info("webrtc", "plain"), &[], &[]),
            with_capacity(info("webrtc", "isp1"), &["isp1"], &[]),
            with_capacity(info("webrtc", "isp1-eu"), &["isp1"], &["eu"]),
            with_capacity(info("webrtc", "eu"), &[], &["eu"]),
            with_capacity(info("webrtc", "us"), &[], &["us"]),
        ];
        for w in workers {
            registry.register(w, t0);
        }
        registry
    }

    fn matching(registry: &Registry, isp: Option<&str>, region: Option<&str>, t0: Instant) -> Vec<String> {
        let preference = Preference { isp: isp.map(String::from), region: region.map(String::from) };
        registry.candidates("webrtc", &preference, t0).into_iter().map(|c| c.node_id).collect()
    }

    #[test]
    fn no_preference_only_gets_workers_without_isp_and_region() {
        let t0 = Instant::now();
        let registry = preference_registry(t0);
        assert_eq!(matching(&registry, None, None, t0), ["plain"]);
        assert_eq!(matching(&registry, Some(""), Some(""), t0), ["plain"], "empty strings mean no preference");
    }

    #[test]
    fn isp_must_match_where_the_worker_lists_isps() {
        let t0 = Instant::now();
        let registry = preference_registry(t0);
        // isp1 without region: workers with empty region lists that serve isp1.
        assert_eq!(matching(&registry, Some("isp1"), None, t0), ["plain", "isp1"]);
        // Another ISP: only workers without an isp list.
        assert_eq!(matching(&registry, Some("isp2"), None, t0), ["plain"]);
    }

    #[test]
    fn region_matching_workers_are_preferred() {
        let t0 = Instant::now();
        let registry = preference_registry(t0);
        assert_eq!(matching(&registry, Some("isp1"), Some("eu"), t0), ["isp1-eu", "eu"]);
        assert_eq!(matching(&registry, Some("isp2"), Some("eu"), t0), ["eu"]);
        assert_eq!(matching(&registry, Some("isp2"), Some("us"), t0), ["us"]);
        // No worker lists the region: those serving every region.
        assert_eq!(matching(&registry, Some("isp1"), Some("asia"), t0), ["plain", "isp1"]);
        assert_eq!(matching(&registry, None, Some("asia"), t0), ["plain"]);
    }

    #[test]
    fn region_preference_falls_back_to_other_regions_only_as_a_last_resort() {
        let t0 = Instant::now();
        let mut registry = Registry::with_random(config(Strategy::LeastUsed), |_| 0);
        registry.register(with_capacity(info("webrtc", "us"), &[], &["us"]), t0);
        registry.register(with_capacity(info("webrtc", "isp9"), &["isp9"], &[]), t0);
        assert_eq!(matching(&registry, None, Some("eu"), t0), ["us"]);
        assert_eq!(matching(&registry, None, None, t0), Vec::<String>::new());
        assert_eq!(matching(&registry, Some("isp9"), Some("eu"), t0), ["isp9"]);
    }

    #[test]
    fn preferences_combine_with_strategy_and_availability() {
        let t0 = Instant::now();
        let mut registry = preference_registry(t0);
        registry.heartbeat("isp1-eu", 0.5, t0);
        registry.heartbeat("eu", 0.2, t0);
        let preference = Preference { isp: Some("isp1".into()), region: Some("eu".into()) };
        assert_eq!(registry.schedule("webrtc", "t1", &preference, t0).as_deref(), Some("eu"));
        registry.heartbeat("eu", 0.9, t0);
        assert_eq!(registry.schedule("webrtc", "t2", &preference, t0).as_deref(), Some("isp1-eu"));
        registry.heartbeat("isp1-eu", 0.9, t0);
        // Both eu workers are full: the ones serving every region take over.
        assert_eq!(registry.schedule("webrtc", "t3", &preference, t0).as_deref(), Some("plain"));
        assert_eq!(registry.schedule("webrtc", "t1", &Preference::none(), t0).as_deref(), Some("eu"), "still bound");
    }

    #[test]
    fn from_portal_config_uses_the_configured_strategies() {
        let mut portal = owt_config::PortalConfig::default();
        portal.cluster.heartbeat_ms = 500;
        portal.cluster.missed_heartbeats = 4;
        portal.scheduling.mixer = "most-used".into();
        let config = RegistryConfig::from_portal(&portal);
        let registry = Registry::new(config);
        assert_eq!(registry.deadline(), Duration::from_secs(2));
        assert_eq!(registry.strategy("webrtc"), Strategy::LastUsed);
        assert_eq!(registry.strategy("mixer"), Strategy::MostUsed);
        assert_eq!(registry.strategy("record"), Strategy::RandomlyPick);
        assert_eq!(registry.strategy("stream"), Strategy::RoundRobin);
        assert_eq!(registry.strategy("sip"), Strategy::RoundRobin);
        assert_eq!(registry.strategy("analytics"), Strategy::RandomlyPick);
    }
}
