//! Configuration of the owt-rs daemons: one TOML file per daemon in the configuration
//! directory (`/etc/owt/<daemon>.toml`). Every key has a default, so a missing file means
//! "embedded defaults". Key names follow the OWT user guide where it has one
//! (`portal.ip_address`, `webrtc.minport`, `management-api.port`, ...). Unknown keys and
//! invalid values are errors that name the file, the key and what is allowed.
//!
//! The annotated default files shipped in `etc/owt/` are checked against these structs by
//! this crate's tests, so documentation and code cannot drift apart.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_DIR: &str = "/etc/owt";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/owt";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {key}: {message}")]
    Invalid { file: PathBuf, key: String, message: String },
}

/// A value check failing on one key; the loader adds the file name.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

fn key_error(key: &str, message: impl Into<String>) -> KeyError {
    KeyError { key: key.into(), message: message.into() }
}

/// Implemented by each daemon's configuration.
pub trait DaemonConfig: DeserializeOwned + Default {
    /// File stem: `portal` for `portal.toml`.
    const NAME: &'static str;
    fn validate(&self) -> Result<(), KeyError>;
    fn log(&self) -> &LogSection;
}

/// Where a configuration came from, for logs and `--check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    EmbeddedDefaults { looked_at: PathBuf },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::EmbeddedDefaults { looked_at } => {
                write!(f, "embedded defaults ({} not found)", looked_at.display())
            }
        }
    }
}

/// Loads `<config_dir>/<NAME>.toml`, or `explicit` when given. A missing default file means
/// embedded defaults; a missing explicit file is an error.
pub fn load<C: DaemonConfig>(config_dir: &Path, explicit: Option<&Path>) -> Result<(C, Source), ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => config_dir.join(format!("{}.toml", C::NAME)),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse::<C>(&path, &text)?, Source::File(path))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            Ok((C::default(), Source::EmbeddedDefaults { looked_at: path }))
        }
        Err(source) => Err(ConfigError::Read { file: path, source }),
    }
}

/// Parses and validates one file's text; `file` only names it in errors.
pub fn parse<C: DaemonConfig>(file: &Path, text: &str) -> Result<C, ConfigError> {
    let config: C = toml::from_str(text).map_err(|err| ConfigError::Parse {
        file: file.to_path_buf(),
        message: err.to_string().trim_end().replace('\n', " "),
    })?;
    config.validate().map_err(|KeyError { key, message }| ConfigError::Invalid {
        file: file.to_path_buf(),
        key,
        message,
    })?;
    Ok(config)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter: `error`, `warn`, `info`, `debug`, `trace` or directives like
    /// `info,owt_portal=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: "info".into() }
    }
}

impl LogSection {
    fn validate(&self) -> Result<(), KeyError> {
        const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
        let ok = !self.level.trim().is_empty()
            && self.level.split(',').all(|directive| {
                let level = directive.rsplit('=').next().unwrap_or_default().trim();
                LEVELS.contains(&level.to_ascii_lowercase().as_str())
            });
        if ok {
            Ok(())
        } else {
            Err(key_error(
                "log.level",
                format!("{:?} is not a level or filter; use one of {}", self.level, LEVELS.join(", ")),
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// Directory holding owt.db (SQLite) and cert/.
    pub dir: PathBuf,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection { dir: DEFAULT_STATE_DIR.into() }
    }
}

fn validate_port(key: &str, port: u16, allow_zero: bool) -> Result<(), KeyError> {
    if port == 0 && !allow_zero {
        return Err(key_error(key, "must be a port number between 1 and 65535"));
    }
    Ok(())
}

fn validate_ip(key: &str, value: &str, allow_empty: bool) -> Result<(), KeyError> {
    if (allow_empty && value.is_empty()) || value.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(key_error(key, format!("{value:?} is not an IPv4 or IPv6 address")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementApiSection {
    /// Address the REST API listens on.
    pub ip_address: String,
    pub port: u16,
    /// Serve HTTPS with the certificate at keystorePath.
    pub ssl: bool,
    /// PEM file with certificate (and chain); the key is beside it as key.pem unless
    /// `keyPath` says otherwise. Empty: `<state.dir>/cert/certificate.pem`.
    #[serde(rename = "keystorePath")]
    pub keystore_path: String,
    #[serde(rename = "keyPath")]
    pub key_path: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Threads of the portal runtime (REST and signaling).
    pub threads: usize,
}

impl Default for ManagementApiSection {
    fn default() -> Self {
        ManagementApiSection {
            ip_address: "0.0.0.0".into(),
            port: 3000,
            ssl: false,
            keystore_path: String::new(),
            key_path: String::new(),
            max_body_bytes: 1024 * 1024,
            threads: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Requests whose MAuth timestamp is further than this from the server clock are refused.
    pub max_clock_skew: u64,
    /// Refuse timestamps outside max_clock_skew and cnonces seen again within it.
    /// `false` restores OWT's behaviour for clients that replay fixed headers.
    pub replay_check: bool,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection { max_clock_skew: 300, replay_check: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSection {
    /// Host name put into tokens for clients to reach the signaling port; wins over ip_address.
    pub hostname: String,
    /// Address put into tokens; empty: the first non-loopback IPv4 address, else 127.0.0.1.
    pub ip_address: String,
    /// Socket.IO signaling port announced in tokens.
    pub port: u16,
    /// Clients connect to signaling with TLS (token field `secure`).
    pub ssl: bool,
    /// OWT's switch for refusing TLS below 1.2. owt-rs always refuses TLS 1.0 and 1.1 on
    /// every listener (only TLS 1.2 and 1.3), so only `true` is accepted; the key stays so
    /// that OWT configuration files load.
    pub force_tls_v12: bool,
    /// Seconds a conference token stays valid (OWT: 180).
    pub token_lifetime: u64,
    /// Address the Socket.IO signaling server listens on.
    pub bind_address: String,
    /// Seconds a connected socket may stay without logging in.
    pub login_timeout: u64,
    /// Seconds a reconnection ticket stays valid (OWT: reconnection_ticket_lifetime).
    pub reconnection_ticket_lifetime: u64,
    /// Seconds a disconnected participant waits for `relogin` before it leaves (OWT: reconnection_timeout).
    pub reconnection_timeout: u64,
    /// Engine.IO ping interval and timeout in seconds.
    pub ping_interval: u64,
    pub ping_timeout: u64,
    /// Largest Socket.IO message accepted, in bytes.
    pub max_message_bytes: u64,
    /// Web origins allowed to use signaling from a browser (`*`: any), answered with CORS
    /// headers as OWT's portal does.
    pub cors: Vec<String>,
}

impl Default for PortalSection {
    fn default() -> Self {
        PortalSection {
            hostname: String::new(),
            ip_address: String::new(),
            port: 8080,
            ssl: false,
            force_tls_v12: true,
            token_lifetime: 180,
            bind_address: "0.0.0.0".into(),
            login_timeout: 180,
            reconnection_ticket_lifetime: 600,
            reconnection_timeout: 60,
            ping_interval: 25,
            ping_timeout: 20,
            max_message_bytes: 1_000_000,
            cors: vec!["*".into()],
        }
    }
}

/// How the portal picks one worker among the live, available workers of a kind
/// (OWT user guide §3.6; `cluster_manager.toml` strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Keep giving new work to the worker picked last while it stays available.
    LastUsed,
    /// The worker with the lowest load.
    LeastUsed,
    /// The worker with the highest load (fill one worker before the next).
    MostUsed,
    /// Each worker in turn, circularly.
    RoundRobin,
    /// A random worker.
    RandomlyPick,
}

impl Strategy {
    pub const ALL: [Strategy; 5] =
        [Strategy::LastUsed, Strategy::LeastUsed, Strategy::MostUsed, Strategy::RoundRobin, Strategy::RandomlyPick];

    /// The configuration spelling: `last-used`, `least-used`, ...
    pub fn name(self) -> &'static str {
        match self {
            Strategy::LastUsed => "last-used",
            Strategy::LeastUsed => "least-used",
            Strategy::MostUsed => "most-used",
            Strategy::RoundRobin => "round-robin",
            Strategy::RandomlyPick => "randomly-pick",
        }
    }

    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|strategy| strategy.name() == name)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks a ZeroMQ endpoint: `tcp://HOST:PORT` or `ipc:///absolute/path`. A bound endpoint
/// may use `*` for every interface and port 0 for one chosen by the system.
fn validate_endpoint(key: &str, value: &str, bind: bool) -> Result<(), KeyError> {
    let bad = |why: &str| {
        Err(key_error(key, format!("{value:?} is not a bus endpoint ({why}); use tcp://HOST:PORT or ipc:///PATH")))
    };
    if let Some(path) = value.strip_prefix("ipc://") {
        return if path.starts_with('/') && path.len() > 1 { Ok(()) } else { bad("ipc needs an absolute path") };
    }
    let Some(rest) = value.strip_prefix("tcp://") else { return bad("unknown transport") };
    let Some((host, port)) = rest.rsplit_once(':') else { return bad("no port") };
    let port_ok = match port.parse::<u16>() {
        Ok(0) => bind,
        Ok(_) => true,
        Err(_) => false,
    };
    if !port_ok {
        return bad(if bind { "port must be 0 to 65535" } else { "port must be 1 to 65535" });
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else if host == "*" {
        bind
    } else if host.parse::<std::net::Ipv4Addr>().is_ok() {
        true
    } else {
        // A DNS name, only where the worker connects.
        !bind
            && !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if host_ok {
        Ok(())
    } else {
        bad(if bind { "host must be *, an IPv4 address or [IPv6]" } else { "host must be a name, IPv4 or [IPv6]" })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Endpoint the bus ROUTER binds; workers connect their DEALER to it.
    pub bus: String,
    /// Interval of worker heartbeats, told to each worker when it registers.
    pub heartbeat_ms: u64,
    /// A worker silent for this many heartbeat intervals is dead.
    pub missed_heartbeats: u32,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection { bus: "tcp://127.0.0.1:5555".into(), heartbeat_ms: 1000, missed_heartbeats: 3 }
    }
}

impl ClusterSection {
    fn validate(&self) -> Result<(), KeyError> {
        validate_endpoint("cluster.bus", &self.bus, true)?;
        if !(100..=60_000).contains(&self.heartbeat_ms) {
            return Err(key_error("cluster.heartbeat_ms", "must be between 100 and 60000 milliseconds"));
        }
        if !(1..=100).contains(&self.missed_heartbeats) {
            return Err(key_error("cluster.missed_heartbeats", "must be between 1 and 100"));
        }
        Ok(())
    }
}

/// One strategy per worker kind (OWT: `cluster_manager.toml` `[strategy]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingSection {
    pub portal: String,
    pub webrtc: String,
    pub mixer: String,
    pub record: String,
    pub stream: String,
    pub sip: String,
}

impl Default for SchedulingSection {
    fn default() -> Self {
        SchedulingSection {
            portal: "last-used".into(),
            webrtc: "last-used".into(),
            mixer: "least-used".into(),
            record: "randomly-pick".into(),
            stream: "round-robin".into(),
            sip: "round-robin".into(),
        }
    }
}

impl SchedulingSection {
    fn entries(&self) -> [(&'static str, &str); 6] {
        [
            ("portal", &self.portal),
            ("webrtc", &self.webrtc),
            ("mixer", &self.mixer),
            ("record", &self.record),
            ("stream", &self.stream),
            ("sip", &self.sip),
        ]
    }

    fn validate(&self) -> Result<(), KeyError> {
        for (kind, name) in self.entries() {
            if Strategy::from_name(name).is_none() {
                let allowed: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
                return Err(key_error(
                    &format!("scheduling.{kind}"),
                    format!("{name:?} is not a scheduling strategy; use one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The strategy configured for a worker kind; `None` for a kind this section does not name.
    /// Only meaningful on a validated configuration (an invalid name reads as `None`).
    pub fn strategy(&self, kind: &str) -> Option<Strategy> {
        self.entries().into_iter().find(|(k, _)| *k == kind).and_then(|(_, name)| Strategy::from_name(name))
    }

    /// Every (kind, strategy) pair of a validated configuration.
    pub fn strategies(&self) -> Vec<(&'static str, Strategy)> {
        self.entries().into_iter().filter_map(|(kind, name)| Some((kind, Strategy::from_name(name)?))).collect()
    }
}

/// `[app]` of portal.toml: the sample web application server (OWT's `samplertcservice.js`,
/// spec §7), served by owt-portal beside the REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppSection {
    /// Serve the sample application at all.
    pub enabled: bool,
    /// Address and TCP port it listens on (OWT: 3004).
    pub ip_address: String,
    pub port: u16,
    /// Serve HTTPS with the certificate files of `[management-api]`.
    pub ssl: bool,
    /// Directory of the page's static files (index.html, app.js, ...).
    pub share_dir: PathBuf,
    /// The socket.io browser client served at `/socket.io.js`; empty:
    /// `<share_dir>/vendor/socket.io.min.js`.
    pub socketio_client: String,
}

impl Default for AppSection {
    fn default() -> Self {
        AppSection {
            enabled: true,
            ip_address: "0.0.0.0".into(),
            port: 3004,
            ssl: false,
            share_dir: "/usr/local/share/owt/app".into(),
            socketio_client: String::new(),
        }
    }
}

impl AppSection {
    /// The socket.io browser client file to serve.
    pub fn socketio_client_path(&self) -> PathBuf {
        match self.socketio_client.as_str() {
            "" => self.share_dir.join("vendor").join("socket.io.min.js"),
            path => path.into(),
        }
    }
}

/// `portal.toml`: owt-portal, the control plane.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    pub log: LogSection,
    pub state: StateSection,
    #[serde(rename = "management-api")]
    pub management_api: ManagementApiSection,
    pub auth: AuthSection,
    pub portal: PortalSection,
    pub cluster: ClusterSection,
    pub scheduling: SchedulingSection,
    pub app: AppSection,
}

impl DaemonConfig for PortalConfig {
    const NAME: &'static str = "portal";

    fn validate(&self) -> Result<(), KeyError> {
        self.log.validate()?;
        if self.state.dir.as_os_str().is_empty() {
            return Err(key_error("state.dir", "must not be empty"));
        }
        let api = &self.management_api;
        validate_ip("management-api.ip_address", &api.ip_address, false)?;
        validate_port("management-api.port", api.port, true)?;
        if !(1024..=64 * 1024 * 1024).contains(&api.max_body_bytes) {
            return Err(key_error("management-api.max_body_bytes", "must be between 1024 and 67108864"));
        }
        if !(1..=64).contains(&api.threads) {
            return Err(key_error("management-api.threads", "must be between 1 and 64"));
        }
        if !(1..=86400).contains(&self.auth.max_clock_skew) {
            return Err(key_error("auth.max_clock_skew", "must be between 1 and 86400 seconds"));
        }
        validate_ip("portal.ip_address", &self.portal.ip_address, true)?;
        if self.portal.hostname.contains(['/', ':', ' ']) {
            return Err(key_error("portal.hostname", "must be a bare host name (no scheme, port or spaces)"));
        }
        validate_port("portal.port", self.portal.port, false)?;
        if !self.portal.force_tls_v12 {
            return Err(key_error(
                "portal.force_tls_v12",
                "must be true: owt-rs serves TLS 1.2 and 1.3 only and cannot allow TLS 1.0 or 1.1",
            ));
        }
        let portal = &self.portal;
        validate_ip("portal.bind_address", &portal.bind_address, false)?;
        for (key, value, range) in [
            ("portal.token_lifetime", portal.token_lifetime, 10..=86400),
            ("portal.login_timeout", portal.login_timeout, 1..=86400),
            ("portal.reconnection_ticket_lifetime", portal.reconnection_ticket_lifetime, 70..=86400),
            ("portal.reconnection_timeout", portal.reconnection_timeout, 0..=3600),
            ("portal.ping_interval", portal.ping_interval, 1..=600),
            ("portal.ping_timeout", portal.ping_timeout, 1..=600),
            ("portal.max_message_bytes", portal.max_message_bytes, 1024..=64 * 1024 * 1024),
        ] {
            if !range.contains(&value) {
                return Err(key_error(key, format!("must be between {} and {}", range.start(), range.end())));
            }
        }
        self.cluster.validate()?;
        self.scheduling.validate()?;
        let app = &self.app;
        validate_ip("app.ip_address", &app.ip_address, false)?;
        validate_port("app.port", app.port, true)?;
        if app.share_dir.as_os_str().is_empty() {
            return Err(key_error("app.share_dir", "must not be empty"));
        }
        if app.socketio_client.contains('\0') {
            return Err(key_error("app.socketio_client", "must be a file path"));
        }
        if app.enabled && app.port != 0 {
            for (key, port) in [("management-api.port", api.port), ("portal.port", portal.port)] {
                if port == app.port {
                    return Err(key_error("app.port", format!("{} is already {key}", app.port)));
                }
            }
        }
        Ok(())
    }

    fn log(&self) -> &LogSection {
        &self.log
    }
}

impl PortalConfig {
    pub fn database_path(&self) -> PathBuf {
        self.state.dir.join("owt.db")
    }

    pub fn certificate_path(&self) -> PathBuf {
        match self.management_api.keystore_path.as_str() {
            "" => self.state.dir.join("cert").join("certificate.pem"),
            path => path.into(),
        }
    }

    pub fn key_path(&self) -> PathBuf {
        match self.management_api.key_path.as_str() {
            "" => self.certificate_path().with_file_name("key.pem"),
            path => path.into(),
        }
    }
}

/// One entry of `webrtc.network_interfaces` (OWT agent.toml shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    pub name: String,
    /// Public address announced instead of the interface's own (NAT / 1:1 mapping).
    #[serde(default)]
    pub replaced_ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcSection {
    pub network_interfaces: Vec<NetworkInterface>,
    /// UDP port range for ICE; 0/0 means a port chosen by the system per connection, and
    /// minport = maxport one port shared by every connection of the node.
    pub minport: u16,
    pub maxport: u16,
    /// Offer 127.0.0.1 host candidates (loopback-only tests, one-host setups).
    pub loopback_candidates: bool,
    /// Threads forwarding media; 0: one per CPU core.
    pub worker_threads: usize,
    /// Each forwarding thread stays on a CPU of its own (when there are as many threads as CPUs
    /// the node may use).
    pub pin_worker_threads: bool,
    /// Receive buffer of each media UDP socket, bytes (SO_RCVBUF); 0: the kernel's default.
    pub udp_receive_buffer: usize,
}

/// Default `webrtc.udp_receive_buffer`: 2 MiB, about 900 full-size datagrams queued, where the
/// kernel's default of 208 KiB holds about 90 (less than one 1080p keyframe).
pub const DEFAULT_UDP_RECEIVE_BUFFER: usize = 2 << 20;
/// The range of a non-zero `webrtc.udp_receive_buffer`.
pub const UDP_RECEIVE_BUFFER_RANGE: std::ops::RangeInclusive<usize> = (64 << 10)..=(256 << 20);

impl Default for WebrtcSection {
    fn default() -> WebrtcSection {
        WebrtcSection {
            network_interfaces: Vec::new(),
            minport: 0,
            maxport: 0,
            loopback_candidates: false,
            worker_threads: 0,
            pin_worker_threads: true,
            udp_receive_buffer: DEFAULT_UDP_RECEIVE_BUFFER,
        }
    }
}

/// `[cluster]` of a worker's file: how it joins the portal's bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerClusterSection {
    /// The portal's bus endpoint (`cluster.bus` of portal.toml).
    pub portal: String,
    /// Name of this worker in the cluster; empty: `<kind>-<hostname>-<pid>`.
    pub node_id: String,
    /// Not given new work while its load (0..1) is at or above this (OWT: max_load).
    pub max_load: f64,
    /// ZeroMQ endpoint of the worker's media link PUB socket, bound and announced to the portal;
    /// empty: an ephemeral port on 127.0.0.1 (one machine).
    pub media_endpoint: String,
}

impl Default for WorkerClusterSection {
    fn default() -> Self {
        WorkerClusterSection {
            portal: "tcp://127.0.0.1:5555".into(),
            node_id: String::new(),
            max_load: 0.85,
            media_endpoint: String::new(),
        }
    }
}

/// `[capacity]` of a worker's file: the token preferences it serves (OWT: capacity.isps,
/// capacity.regions; both spellings are accepted).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacitySection {
    /// ISPs served; empty: every ISP.
    #[serde(alias = "isps")]
    pub isp: Vec<String>,
    /// Regions served; empty: every region.
    #[serde(alias = "regions")]
    pub region: Vec<String>,
}

fn validate_worker_sections(cluster: &WorkerClusterSection, capacity: &CapacitySection) -> Result<(), KeyError> {
    validate_endpoint("cluster.portal", &cluster.portal, false)?;
    let id_ok = cluster.node_id.len() <= 128
        && cluster.node_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if !id_ok {
        return Err(key_error(
            "cluster.node_id",
            "at most 128 characters of letters, digits, '-', '_', '.' and ':' (empty: <kind>-<hostname>-<pid>)",
        ));
    }
    if !(cluster.max_load > 0.0 && cluster.max_load <= 1.0) {
        return Err(key_error("cluster.max_load", "must be above 0 and at most 1"));
    }
    if cluster.media_endpoint.len() > 256 || cluster.media_endpoint.chars().any(char::is_whitespace) {
        return Err(key_error("cluster.media_endpoint", "at most 256 characters, without spaces"));
    }
    for (key, list) in [("capacity.isp", &capacity.isp), ("capacity.region", &capacity.region)] {
        if list.len() > 64 {
            return Err(key_error(key, "at most 64 entries"));
        }
        if let Some(bad) = list.iter().find(|v| v.trim().is_empty() || v.len() > 64) {
            return Err(key_error(key, format!("{bad:?}: entries must be 1 to 64 characters")));
        }
    }
    Ok(())
}

/// A worker daemon's configuration: the part the bus needs.
pub trait WorkerConfig: DaemonConfig {
    /// The worker kind announced on the bus (`webrtc`, `mixer`, ...).
    const KIND: &'static str;
    fn cluster(&self) -> &WorkerClusterSection;
    fn capacity(&self) -> &CapacitySection;
}

/// `webrtc.toml`: owt-webrtc.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    pub log: LogSection,
    pub webrtc: WebrtcSection,
    pub cluster: WorkerClusterSection,
    pub capacity: CapacitySection,
}

impl WorkerConfig for WebrtcConfig {
    const KIND: &'static str = "webrtc";
    fn cluster(&self) -> &WorkerClusterSection {
        &self.cluster
    }
    fn capacity(&self) -> &CapacitySection {
        &self.capacity
    }
}

impl DaemonConfig for WebrtcConfig {
    const NAME: &'static str = "webrtc";

    fn validate(&self) -> Result<(), KeyError> {
        self.log.validate()?;
        let w = &self.webrtc;
        if w.minport > w.maxport {
            return Err(key_error("webrtc.minport", format!("{} is above webrtc.maxport {}", w.minport, w.maxport)));
        }
        if w.worker_threads > 256 {
            return Err(key_error(
                "webrtc.worker_threads",
                format!("{} is not 0 (one per core) to 256", w.worker_threads),
            ));
        }
        if (w.minport == 0) != (w.maxport == 0) {
            return Err(key_error("webrtc.maxport", "set both minport and maxport, or neither"));
        }
        if w.udp_receive_buffer != 0 && !UDP_RECEIVE_BUFFER_RANGE.contains(&w.udp_receive_buffer) {
            return Err(key_error(
                "webrtc.udp_receive_buffer",
                format!(
                    "{} is not 0 (the kernel's default) or {} to {} bytes",
                    w.udp_receive_buffer,
                    UDP_RECEIVE_BUFFER_RANGE.start(),
                    UDP_RECEIVE_BUFFER_RANGE.end()
                ),
            ));
        }
        for (i, interface) in w.network_interfaces.iter().enumerate() {
            if interface.name.is_empty() {
                return Err(key_error(&format!("webrtc.network_interfaces[{i}].name"), "must not be empty"));
            }
            validate_ip(
                &format!("webrtc.network_interfaces[{i}].replaced_ip_address"),
                &interface.replaced_ip_address,
                true,
            )?;
        }
        validate_worker_sections(&self.cluster, &self.capacity)
    }

    fn log(&self) -> &LogSection {
        &self.log
    }
}

/// Configuration of a worker daemon whose only settings so far are logging and its place in
/// the cluster (owt-mixer, owt-record, owt-stream, owt-sip).
macro_rules! worker_config {
    ($type:ident, $name:literal, $kind:literal) => {
        #[doc = concat!("`", $name, ".toml`.")]
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $type {
            pub log: LogSection,
            pub cluster: WorkerClusterSection,
            pub capacity: CapacitySection,
        }

        impl DaemonConfig for $type {
            const NAME: &'static str = $name;
            fn validate(&self) -> Result<(), KeyError> {
                self.log.validate()?;
                validate_worker_sections(&self.cluster, &self.capacity)
            }
            fn log(&self) -> &LogSection {
                &self.log
            }
        }

        impl WorkerConfig for $type {
            const KIND: &'static str = $kind;
            fn cluster(&self) -> &WorkerClusterSection {
                &self.cluster
            }
            fn capacity(&self) -> &CapacitySection {
                &self.capacity
            }
        }
    };
}

worker_config!(MixerConfig, "mixer", "mixer");
worker_config!(RecordConfig, "record", "record");
worker_config!(StreamConfig, "stream", "stream");
worker_config!(SipConfig, "sip", "sip");

/// `[peer]` of `peer.toml`: the listeners and limits of owt-peer, the P2P signaling server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerSection {
    /// Address both listeners bind to.
    pub ip_address: String,
    /// Plain (http/ws) Socket.IO port; 0 disables the plain listener.
    pub port: u16,
    /// TLS (https/wss) Socket.IO port, used when `ssl` is true; 0 disables it.
    pub ssl_port: u16,
    /// Serve TLS on `ssl_port` with the certificate at `keystorePath`.
    pub ssl: bool,
    /// PEM certificate (and chain). Empty: `/var/lib/owt/cert/certificate.pem`.
    #[serde(rename = "keystorePath")]
    pub keystore_path: String,
    /// PEM private key. Empty: `key.pem` beside the certificate.
    #[serde(rename = "keyPath")]
    pub key_path: String,
    /// Browser origins allowed to connect (`Origin` header); `*` allows any. Requests
    /// without an `Origin` header (native clients) are always allowed.
    pub cors_origins: Vec<String>,
    /// Largest `data` string of one `owt-message`, in bytes.
    pub max_message_bytes: usize,
    /// Events one client may send per second (bursts of twice as many); 0: no limit.
    pub messages_per_second: u32,
    /// Connected clients at most; further connections are refused with 2102.
    pub max_clients: usize,
    /// Seconds a client may stay connected without authenticating; 0: no deadline.
    pub login_timeout: u64,
}

impl Default for PeerSection {
    fn default() -> Self {
        PeerSection {
            ip_address: "0.0.0.0".into(),
            port: 8095,
            ssl_port: 8096,
            ssl: false,
            keystore_path: String::new(),
            key_path: String::new(),
            cors_origins: vec!["*".into()],
            max_message_bytes: 65536,
            messages_per_second: 100,
            max_clients: 10000,
            login_timeout: 60,
        }
    }
}

/// `[metrics]`: Prometheus text exposition on loopback.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `http://127.0.0.1:<port>/metrics`; 0: off.
    pub port: u16,
}

/// `peer.toml`: owt-peer, the P2P signaling server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerConfig {
    pub log: LogSection,
    pub peer: PeerSection,
    pub metrics: MetricsSection,
}

/// True for `*` or a bare origin: `http(s)://host[:port]` without path, query or trailing slash.
fn is_origin(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    let Some(rest) = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty() && !rest.contains(['/', '?', '#', ' ', '*'])
}

impl DaemonConfig for PeerConfig {
    const NAME: &'static str = "peer";

    fn validate(&self) -> Result<(), KeyError> {
        self.log.validate()?;
        let p = &self.peer;
        validate_ip("peer.ip_address", &p.ip_address, false)?;
        if p.ssl && p.ssl_port == 0 {
            return Err(key_error("peer.ssl_port", "must be set (1-65535) when peer.ssl is true"));
        }
        let tls = p.ssl && p.ssl_port != 0;
        if p.port == 0 && !tls {
            return Err(key_error("peer.port", "is 0 and TLS is off: owt-peer would listen nowhere"));
        }
        if tls && p.port == p.ssl_port {
            return Err(key_error("peer.ssl_port", format!("{} is also peer.port", p.ssl_port)));
        }
        for (i, origin) in p.cors_origins.iter().enumerate() {
            if !is_origin(origin) {
                return Err(key_error(
                    &format!("peer.cors_origins[{i}]"),
                    format!("{origin:?} is not \"*\" or an origin like \"https://example.com:8443\" (no path)"),
                ));
            }
        }
        if !(256..=16 * 1024 * 1024).contains(&p.max_message_bytes) {
            return Err(key_error("peer.max_message_bytes", "must be between 256 and 16777216"));
        }
        if p.messages_per_second > 1_000_000 {
            return Err(key_error("peer.messages_per_second", "must be between 0 (no limit) and 1000000"));
        }
        if !(1..=1_000_000).contains(&p.max_clients) {
            return Err(key_error("peer.max_clients", "must be between 1 and 1000000"));
        }
        if p.login_timeout > 86400 {
            return Err(key_error("peer.login_timeout", "must be between 0 (no deadline) and 86400 seconds"));
        }
        let m = self.metrics.port;
        if m != 0 && (m == p.port || (tls && m == p.ssl_port)) {
            return Err(key_error("metrics.port", format!("{m} is already a Socket.IO port of [peer]")));
        }
        Ok(())
    }

    fn log(&self) -> &LogSection {
        &self.log
    }
}

impl PeerConfig {
    pub fn certificate_path(&self) -> PathBuf {
        match self.peer.keystore_path.as_str() {
            "" => Path::new(DEFAULT_STATE_DIR).join("cert").join("certificate.pem"),
            path => path.into(),
        }
    }

    pub fn key_path(&self) -> PathBuf {
        match self.peer.key_path.as_str() {
            "" => self.certificate_path().with_file_name("key.pem"),
            path => path.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/owt").join(format!("{name}.toml"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every key of a shipped file is commented out with its default: uncommenting all of
    /// them must give exactly the embedded defaults.
    fn uncommented(text: &str) -> String {
        text.lines()
            .map(|line| {
                line.strip_prefix("# ").filter(|rest| rest.contains(" = ") || rest.starts_with('[')).unwrap_or(line)
            })
            .map(|line| if line.starts_with('#') { "" } else { line })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Dotted names of the keys holding values (`portal.port`, `webrtc.network_interfaces`).
    fn key_names(value: &toml::Value) -> std::collections::BTreeSet<String> {
        fn walk(table: &toml::Table, prefix: &str, into: &mut std::collections::BTreeSet<String>) {
            for (key, value) in table {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match value {
                    toml::Value::Table(inner) => walk(inner, &name, into),
                    _ => {
                        into.insert(name);
                    }
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        walk(value.as_table().expect("a TOML document is a table"), "", &mut names);
        names
    }

    fn check_shipped<C: DaemonConfig + Serialize + PartialEq + std::fmt::Debug>() {
        let text = shipped(C::NAME);
        let as_is: C = parse(Path::new("shipped"), &text).unwrap();
        assert_eq!(as_is, C::default(), "{}.toml as shipped", C::NAME);
        let all: C = parse(Path::new("shipped"), &uncommented(&text)).unwrap();
        assert_eq!(all, C::default(), "{}.toml with every key uncommented", C::NAME);
        // Every key of the configuration is documented, and nothing else.
        let documented = key_names(&toml::from_str(&uncommented(&text)).unwrap());
        let known = key_names(&toml::Value::try_from(C::default()).unwrap());
        assert_eq!(
            documented,
            known,
            "{}.toml: undocumented keys {:?}, keys that do not exist {:?}",
            C::NAME,
            known.difference(&documented).collect::<Vec<_>>(),
            documented.difference(&known).collect::<Vec<_>>()
        );
    }

    #[test]
    fn shipped_file_check_catches_a_missing_key() {
        let text = shipped("peer");
        let without = text.replace("# login_timeout = 60\n", "");
        assert_ne!(without, text, "peer.toml documents login_timeout");
        let documented = key_names(&toml::from_str(&uncommented(&without)).unwrap());
        let known = key_names(&toml::Value::try_from(PeerConfig::default()).unwrap());
        assert_eq!(known.difference(&documented).collect::<Vec<_>>(), ["peer.login_timeout"]);
    }

    #[test]
    fn shipped_files_document_the_defaults() {
        check_shipped::<PortalConfig>();
        check_shipped::<WebrtcConfig>();
        check_shipped::<MixerConfig>();
        check_shipped::<RecordConfig>();
        check_shipped::<StreamConfig>();
        check_shipped::<SipConfig>();
        check_shipped::<PeerConfig>();
    }

    #[test]
    fn app_section_is_checked() {
        let config = PortalConfig::default();
        assert_eq!(config.app.socketio_client_path(), Path::new("/usr/local/share/owt/app/vendor/socket.io.min.js"));
        let ok =
            parse::<PortalConfig>(Path::new("p.toml"), "[app]\nport = 0\nsocketio_client = \"/x/io.js\"\n").unwrap();
        assert_eq!(ok.app.socketio_client_path(), Path::new("/x/io.js"));
        for (text, key) in [
            ("[app]\nip_address = \"localhost\"\n", "app.ip_address"),
            ("[app]\nshare_dir = \"\"\n", "app.share_dir"),
            ("[app]\nport = 3000\n", "app.port"),
            ("[app]\nport = 8080\n", "app.port"),
        ] {
            match parse::<PortalConfig>(Path::new("p.toml"), text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // A disabled app may share a port number with anything.
        assert!(parse::<PortalConfig>(Path::new("p.toml"), "[app]\nenabled = false\nport = 3000\n").is_ok());
    }

    #[test]
    fn errors_name_the_file_the_key_and_what_is_allowed() {
        let file = Path::new("/etc/owt/portal.toml");
        for (text, key, allowed) in [
            ("[portal]\nforce_tls_v12 = false\n", "portal.force_tls_v12", "must be true"),
            ("[portal]\nport = 0\n", "portal.port", "between 1 and 65535"),
            ("[log]\nlevel = \"loud\"\n", "log.level", "error, warn, info, debug, trace, off"),
            ("[scheduling]\nmixer = \"busiest\"\n", "scheduling.mixer", "last-used, least-used"),
            ("[management-api]\nip_address = \"localhost\"\n", "management-api.ip_address", "IPv4 or IPv6"),
            ("[portal]\ntoken_lifetime = 5\n", "portal.token_lifetime", "between 10 and 86400"),
        ] {
            let err = parse::<PortalConfig>(file, text).unwrap_err();
            let message = err.to_string();
            assert!(matches!(&err, ConfigError::Invalid { key: k, .. } if k == key), "{text}: {err:?}");
            assert!(message.starts_with(&format!("/etc/owt/portal.toml: {key}: ")), "{message}");
            assert!(message.contains(allowed), "{message}");
        }
        // Type errors come from the TOML reader: file, key and the expected type.
        let message = parse::<PortalConfig>(file, "[portal]\nport = \"eighty\"\n").unwrap_err().to_string();
        assert!(message.starts_with("/etc/owt/portal.toml: "), "{message}");
        assert!(message.contains("port") && message.contains("u16"), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
        let message = parse::<PeerConfig>(Path::new("peer.toml"), "[peer]\nssl = \"yes\"\n").unwrap_err().to_string();
        assert!(message.starts_with("peer.toml: ") && message.contains("ssl") && message.contains("bool"), "{message}");
    }

    #[test]
    fn force_tls_v12_accepts_owt_files() {
        let config = parse::<PortalConfig>(Path::new("p.toml"), "[portal]\nforce_tls_v12 = true\n").unwrap();
        assert!(config.portal.force_tls_v12);
        assert!(PortalConfig::default().portal.force_tls_v12);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse::<PortalConfig>(Path::new("/etc/owt/portal.toml"), "[portal]\nprot = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/etc/owt/portal.toml: "), "{text}");
        assert!(text.contains("prot") && text.contains("port"), "{text}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse::<PortalConfig>(Path::new("p.toml"), "[portal]\nport = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("p.toml"), "{err}");
        let err = parse::<PortalConfig>(Path::new("p.toml"), "[portal]\nport = 70000\n").unwrap_err();
        assert!(err.to_string().contains("p.toml"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("[portal]\nport = 0\n", "portal.port"),
            ("[portal]\nip_address = \"1.2.3\"\n", "portal.ip_address"),
            ("[portal]\nhostname = \"https://x\"\n", "portal.hostname"),
            ("[log]\nlevel = \"loud\"\n", "log.level"),
            ("[management-api]\nthreads = 0\n", "management-api.threads"),
            ("[auth]\nmax_clock_skew = 0\n", "auth.max_clock_skew"),
        ];
        for (text, key) in cases {
            let err = parse::<PortalConfig>(Path::new("p.toml"), text).unwrap_err();
            assert!(err.to_string().starts_with(&format!("p.toml: {key}: ")), "{text} -> {err}");
        }
        let err =
            parse::<WebrtcConfig>(Path::new("w.toml"), "[webrtc]\nminport = 50000\nmaxport = 40000\n").unwrap_err();
        assert!(err.to_string().contains("webrtc.minport"), "{err}");
        for text in ["udp_receive_buffer = 1000", "udp_receive_buffer = 268435457", "udp_receive_buffer = -1"] {
            let err = parse::<WebrtcConfig>(Path::new("w.toml"), &format!("[webrtc]\n{text}\n")).unwrap_err();
            let err = err.to_string();
            // Out of range: the key named; the wrong type (-1): the parser's error, quoting the line.
            let named = err.starts_with("w.toml: webrtc.udp_receive_buffer: ")
                || (text.ends_with("-1") && err.starts_with("w.toml: ") && err.contains(text));
            assert!(named, "{text}: {err}");
        }
        for (text, bytes) in
            [("", DEFAULT_UDP_RECEIVE_BUFFER), ("udp_receive_buffer = 0", 0), ("udp_receive_buffer = 65536", 65536)]
        {
            let config = parse::<WebrtcConfig>(Path::new("w.toml"), &format!("[webrtc]\n{text}\n")).unwrap();
            assert_eq!(config.webrtc.udp_receive_buffer, bytes, "{text}");
        }
        let ok = parse::<PortalConfig>(Path::new("p.toml"), "[log]\nlevel = \"info,owt_portal=debug\"\n");
        assert!(ok.is_ok());
    }

    #[test]
    fn peer_values_name_the_key() {
        let cases = [
            ("[peer]\nip_address = \"localhost\"\n", "peer.ip_address"),
            ("[peer]\nssl = true\nssl_port = 0\n", "peer.ssl_port"),
            ("[peer]\nport = 0\n", "peer.port"),
            ("[peer]\nssl = true\nport = 9000\nssl_port = 9000\n", "peer.ssl_port"),
            ("[peer]\ncors_origins = [\"https://a.example/\"]\n", "peer.cors_origins[0]"),
            ("[peer]\ncors_origins = [\"*\", \"example.com\"]\n", "peer.cors_origins[1]"),
            ("[peer]\nmax_message_bytes = 10\n", "peer.max_message_bytes"),
            ("[peer]\nmessages_per_second = 2000000\n", "peer.messages_per_second"),
            ("[peer]\nmax_clients = 0\n", "peer.max_clients"),
            ("[peer]\nlogin_timeout = 100000\n", "peer.login_timeout"),
            ("[metrics]\nport = 8095\n", "metrics.port"),
        ];
        for (text, key) in cases {
            let err = parse::<PeerConfig>(Path::new("peer.toml"), text).unwrap_err();
            assert!(err.to_string().starts_with(&format!("peer.toml: {key}: ")), "{text} -> {err}");
        }
        let ok = parse::<PeerConfig>(
            Path::new("peer.toml"),
            "[peer]\nport = 0\nssl = true\ncors_origins = [\"https://a.example:8443\", \"http://localhost\"]\n",
        )
        .unwrap();
        assert_eq!(ok.certificate_path(), Path::new("/var/lib/owt/cert/certificate.pem"));
        assert_eq!(ok.key_path(), Path::new("/var/lib/owt/cert/key.pem"));
    }

    #[test]
    fn cluster_and_scheduling_defaults_and_validation() {
        let config = PortalConfig::default();
        assert_eq!(config.cluster.bus, "tcp://127.0.0.1:5555");
        assert_eq!((config.cluster.heartbeat_ms, config.cluster.missed_heartbeats), (1000, 3));
        let expected = [
            ("portal", Strategy::LastUsed),
            ("webrtc", Strategy::LastUsed),
            ("mixer", Strategy::LeastUsed),
            ("record", Strategy::RandomlyPick),
            ("stream", Strategy::RoundRobin),
            ("sip", Strategy::RoundRobin),
        ];
        assert_eq!(config.scheduling.strategies(), expected);
        assert_eq!(config.scheduling.strategy("mixer"), Some(Strategy::LeastUsed));
        assert_eq!(config.scheduling.strategy("analytics"), None);
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::from_name(strategy.name()), Some(strategy));
        }

        let err = parse::<PortalConfig>(Path::new("p.toml"), "[scheduling]\nwebrtc = \"fastest\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.toml: scheduling.webrtc: "), "{text}");
        assert!(text.contains("\"fastest\""), "{text}");
        for name in ["last-used", "least-used", "most-used", "round-robin", "randomly-pick"] {
            assert!(text.contains(name), "{text} lists {name}");
        }
        let err = parse::<PortalConfig>(Path::new("p.toml"), "[scheduling]\nanalytics = \"last-used\"\n").unwrap_err();
        assert!(err.to_string().contains("analytics"), "{err}");
        let ok = parse::<PortalConfig>(Path::new("p.toml"), "[scheduling]\nmixer = \"most-used\"\n").unwrap();
        assert_eq!(ok.scheduling.strategy("mixer"), Some(Strategy::MostUsed));

        for good in
            ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://127.0.0.1:0", "tcp://[::1]:5555", "ipc:///run/owt/bus"]
        {
            let text = format!("[cluster]\nbus = \"{good}\"\n");
            assert!(parse::<PortalConfig>(Path::new("p.toml"), &text).is_ok(), "{good}");
        }
        let cases = [
            ("[cluster]\nbus = \"udp://1.2.3.4:5\"\n", "cluster.bus"),
            ("[cluster]\nbus = \"tcp://127.0.0.1\"\n", "cluster.bus"),
            ("[cluster]\nbus = \"tcp://example.org:5555\"\n", "cluster.bus"),
            ("[cluster]\nbus = \"ipc://relative\"\n", "cluster.bus"),
            ("[cluster]\nheartbeat_ms = 10\n", "cluster.heartbeat_ms"),
            ("[cluster]\nmissed_heartbeats = 0\n", "cluster.missed_heartbeats"),
        ];
        for (text, key) in cases {
            let err = parse::<PortalConfig>(Path::new("p.toml"), text).unwrap_err();
            assert!(err.to_string().starts_with(&format!("p.toml: {key}: ")), "{text} -> {err}");
        }
    }

    fn check_worker<C: WorkerConfig + std::fmt::Debug>(kind: &str) {
        assert_eq!(C::KIND, kind);
        let config = C::default();
        assert_eq!(config.cluster().portal, "tcp://127.0.0.1:5555");
        assert_eq!(config.cluster().node_id, "");
        assert_eq!(config.cluster().max_load, 0.85);
        assert!(config.capacity().isp.is_empty() && config.capacity().region.is_empty());
        let file = format!("{}.toml", C::NAME);
        let path = Path::new(&file);
        let ok: C = parse(
            path,
            "[cluster]\nportal = \"tcp://portal.example:5555\"\nnode_id = \"a-1\"\nmax_load = 1.0\n\
             [capacity]\nisps = [\"isp1\"]\nregion = [\"eu\"]\n",
        )
        .unwrap();
        assert_eq!(ok.capacity().isp, ["isp1"]);
        assert_eq!(ok.capacity().region, ["eu"]);
        let cases = [
            ("[cluster]\nportal = \"tcp://*:5555\"\n", "cluster.portal"),
            ("[cluster]\nportal = \"tcp://127.0.0.1:0\"\n", "cluster.portal"),
            ("[cluster]\nportal = \"127.0.0.1:5555\"\n", "cluster.portal"),
            ("[cluster]\nnode_id = \"a b\"\n", "cluster.node_id"),
            ("[cluster]\nmax_load = 0.0\n", "cluster.max_load"),
            ("[cluster]\nmax_load = 1.5\n", "cluster.max_load"),
            ("[cluster]\nmedia_endpoint = \"a b\"\n", "cluster.media_endpoint"),
            ("[capacity]\nisp = [\"\"]\n", "capacity.isp"),
            ("[capacity]\nregion = [\" \"]\n", "capacity.region"),
        ];
        for (text, key) in cases {
            let err = parse::<C>(path, text).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{file}: {key}: ")), "{text} -> {err}");
        }
        assert!(parse::<C>(path, "[cluster]\nheartbeat_ms = 5\n").is_err(), "unknown worker key");
    }

    #[test]
    fn worker_cluster_sections_default_and_validate() {
        check_worker::<WebrtcConfig>("webrtc");
        check_worker::<MixerConfig>("mixer");
        check_worker::<RecordConfig>("record");
        check_worker::<StreamConfig>("stream");
        check_worker::<SipConfig>("sip");
    }

    #[test]
    fn missing_default_file_means_embedded_defaults_but_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (config, source) = load::<PortalConfig>(dir.path(), None).unwrap();
        assert_eq!(config, PortalConfig::default());
        assert!(matches!(source, Source::EmbeddedDefaults { .. }));
        let missing = dir.path().join("nope.toml");
        assert!(matches!(load::<PortalConfig>(dir.path(), Some(&missing)), Err(ConfigError::Read { .. })));
        std::fs::write(dir.path().join("portal.toml"), "[portal]\nport = 9090\n").unwrap();
        let (config, source) = load::<PortalConfig>(dir.path(), None).unwrap();
        assert_eq!(config.portal.port, 9090);
        assert!(matches!(source, Source::File(_)));
    }
}
