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
    /// Worker threads serving requests.
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
    pub force_tls_v12: bool,
    /// Seconds a conference token stays valid (OWT: 180).
    pub token_lifetime: u64,
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
        if !(10..=86400).contains(&self.portal.token_lifetime) {
            return Err(key_error("portal.token_lifetime", "must be between 10 and 86400 seconds"));
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

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcSection {
    pub network_interfaces: Vec<NetworkInterface>,
    /// UDP port range for ICE; 0/0 means one port chosen by the system.
    pub minport: u16,
    pub maxport: u16,
}

/// `webrtc.toml`: owt-webrtc.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    pub log: LogSection,
    pub webrtc: WebrtcSection,
}

impl DaemonConfig for WebrtcConfig {
    const NAME: &'static str = "webrtc";

    fn validate(&self) -> Result<(), KeyError> {
        self.log.validate()?;
        let w = &self.webrtc;
        if w.minport > w.maxport {
            return Err(key_error("webrtc.minport", format!("{} is above webrtc.maxport {}", w.minport, w.maxport)));
        }
        if (w.minport == 0) != (w.maxport == 0) {
            return Err(key_error("webrtc.maxport", "set both minport and maxport, or neither"));
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
        Ok(())
    }

    fn log(&self) -> &LogSection {
        &self.log
    }
}

/// Configuration of a daemon whose only settings so far are logging
/// (owt-mixer, owt-record, owt-stream, owt-sip, owt-peer).
macro_rules! log_only_config {
    ($type:ident, $name:literal) => {
        #[doc = concat!("`", $name, ".toml`.")]
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $type {
            pub log: LogSection,
        }

        impl DaemonConfig for $type {
            const NAME: &'static str = $name;
            fn validate(&self) -> Result<(), KeyError> {
                self.log.validate()
            }
            fn log(&self) -> &LogSection {
                &self.log
            }
        }
    };
}

log_only_config!(MixerConfig, "mixer");
log_only_config!(RecordConfig, "record");
log_only_config!(StreamConfig, "stream");
log_only_config!(SipConfig, "sip");
log_only_config!(PeerConfig, "peer");

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

    fn check_shipped<C: DaemonConfig + PartialEq + std::fmt::Debug>() {
        let text = shipped(C::NAME);
        let as_is: C = parse(Path::new("shipped"), &text).unwrap();
        assert_eq!(as_is, C::default(), "{}.toml as shipped", C::NAME);
        let all: C = parse(Path::new("shipped"), &uncommented(&text)).unwrap();
        assert_eq!(all, C::default(), "{}.toml with every key uncommented", C::NAME);
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
        let ok = parse::<PortalConfig>(Path::new("p.toml"), "[log]\nlevel = \"info,owt_portal=debug\"\n");
        assert!(ok.is_ok());
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
