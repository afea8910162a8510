//! owtctl, the administration command of owt-rs. `init`, `cert` and `token rotate-key` work
//! on the local state directory directly; `service`, `room` and `token create` talk to
//! owt-portal's REST API with MAuth, as any OWT application server does, so they work
//! against a remote portal too. Output is a table for people or `--json` for scripts, and
//! the exit status tells scripts what went wrong (see [`Failure::exit_code`]).

mod cert;
mod init;
mod output;
mod rest;
mod room_options;

use clap::{Args, Parser, Subcommand};
use owt_config::PortalConfig;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
EXIT STATUS:
  0  success
  1  other failure (I/O, database, certificate)
  2  usage error
  3  not found (unknown service, room, ...)
  4  authentication or permission refused
  5  cannot reach the portal
  6  request refused as invalid (bad room settings, ...)
  7  server error";

#[derive(Debug, Parser)]
#[command(
    name = "owtctl",
    version,
    about = "Administer an owt-rs media server: init, services, rooms, tokens, certificates",
    long_about = "owtctl administers an owt-rs server. `init`, `cert` and `token rotate-key` work on the local \
                  state directory (run them as root or as the owt user); `service`, `room` and `token create` \
                  use the management REST API of owt-portal with MAuth credentials, taken from --service-id/\
                  --service-key (or OWT_SERVICE_ID/OWT_SERVICE_KEY), else the super service in the local database.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Directory of portal.toml (for the state directory, ports and certificate paths).
    #[arg(long, global = true, value_name = "DIR", env = "OWT_CONFIG_DIR", default_value = owt_config::DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,
    /// State directory (owt.db, cert/); default: state.dir of portal.toml.
    #[arg(long, global = true, value_name = "DIR", env = "OWT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Management REST API base URL; default: http(s)://127.0.0.1:<management-api.port>.
    #[arg(long, global = true, value_name = "URL", env = "OWT_URL")]
    pub url: Option<String>,
    /// Service id for MAuth (default: the super service of the local database).
    #[arg(long, global = true, value_name = "ID", env = "OWT_SERVICE_ID")]
    pub service_id: Option<String>,
    /// Service key for MAuth.
    #[arg(long, global = true, value_name = "KEY", env = "OWT_SERVICE_KEY", hide_env_values = true)]
    pub service_key: Option<String>,
    /// Accept any TLS certificate from the portal (the local certificate is always trusted).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database, the super service, a default room, the token key and a
    /// self-signed certificate where missing. Safe to run again.
    Init(init::InitArgs),
    /// Manage services (super service only).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Manage rooms of the service.
    #[command(subcommand)]
    Room(RoomCommand),
    /// Conference tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The TLS certificate of the REST API and signaling.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Live workers registered with the portal (super service only).
    Cluster,
    /// Participants of a running room.
    #[command(subcommand)]
    Participant(ParticipantCommand),
    /// Streams of a running room (forward and mixed).
    #[command(subcommand)]
    Stream(StreamCommand),
}

#[derive(Debug, Subcommand)]
pub enum ParticipantCommand {
    /// List the participants of a room.
    List { room: String },
    /// Show one participant with its permissions.
    Show {
        room: String,
        /// Participant ids are Socket.IO ids and may start with '-'.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Change what a participant may publish or subscribe (takes effect at once).
    Permit {
        room: String,
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// `publish` or `subscribe`.
        #[arg(value_parser = ["publish", "subscribe"])]
        action: String,
        /// `audio`, `video` or `both`.
        #[arg(value_parser = ["audio", "video", "both"])]
        media: String,
        /// Allow (true) or forbid (false).
        #[arg(action = clap::ArgAction::Set)]
        allow: bool,
    },
    /// Remove a participant from its room (it receives `drop`).
    Drop {
        room: String,
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// List the streams of a room.
    List { room: String },
    /// Show one stream.
    Show { room: String, id: String },
    /// Pause a forward stream's audio, video or both for every subscriber.
    Pause {
        room: String,
        id: String,
        #[arg(long, default_value = "av", value_parser = ["audio", "video", "av"])]
        kind: String,
    },
    /// Resume what `pause` stopped.
    Play {
        room: String,
        id: String,
        #[arg(long, default_value = "av", value_parser = ["audio", "video", "av"])]
        kind: String,
    },
    /// Mix a forward stream into a view (its mixed stream `<room>-<view>`); streams are only
    /// mixed when asked, as in OWT.
    Mix {
        room: String,
        id: String,
        /// The view's label.
        #[arg(default_value = "common")]
        view: String,
    },
    /// Take a forward stream out of a view.
    Unmix {
        room: String,
        id: String,
        #[arg(default_value = "common")]
        view: String,
    },
    /// Set the layout of a mixed stream: a JSON array of {stream?, region: {id, shape, area}}
    /// as in OWT's stream update (`/info/layout`), read from FILE or stdin (`-`). It holds until
    /// streams are mixed into the view or taken out.
    Layout {
        room: String,
        /// The mixed stream (`<room>-<view>`).
        id: String,
        file: PathBuf,
    },
    /// Media statistics of a forward stream or of a subscription: packets, bytes, bitrate,
    /// losses, NACKs, retransmissions (a subscription's packets sent again on its NACKs),
    /// keyframe requests, round-trip time.
    Stats { room: String, id: String },
    /// End a forward stream (its publisher is told its publication ended).
    Delete { room: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// List services.
    List,
    /// Create a service; prints its id and key.
    Create {
        name: String,
        /// Key to use; default: a random one.
        #[arg(long)]
        key: Option<String>,
    },
    /// Show one service.
    Show { id: String },
    /// Delete a service and all its rooms.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// List rooms.
    List {
        /// Page number, from 1 (with --per-page).
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Rooms per page; 0: all.
        #[arg(long, default_value_t = 0)]
        per_page: u32,
    },
    /// Create a room; settings from flags and/or a JSON or TOML file of room options.
    Create {
        name: String,
        #[command(flatten)]
        options: room_options::RoomOptions,
    },
    /// Show a room's full configuration.
    Show { id: String },
    /// Change a room; settings from flags and/or a JSON or TOML file (top-level keys replace).
    Update {
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        options: room_options::RoomOptions,
    },
    /// Delete a room.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a conference token for a room (printed on stdout).
    Create {
        room: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "presenter")]
        role: String,
        /// Preferred ISP of the portal/webrtc node.
        #[arg(long)]
        isp: Option<String>,
        /// Preferred region of the portal/webrtc node.
        #[arg(long)]
        region: Option<String>,
    },
    /// Replace the token-signing key; outstanding tokens stop working.
    RotateKey,
}

/// A failure with the exit status scripts see.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Other(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::NotFound(_) => 3,
            Failure::Denied(_) => 4,
            Failure::Unreachable(_) => 5,
            Failure::Invalid(_) => 6,
            Failure::Server(_) => 7,
        }
    }
}

impl From<owt_store::StoreError> for Failure {
    fn from(err: owt_store::StoreError) -> Self {
        Failure::Other(err.to_string())
    }
}

impl From<owt_config::ConfigError> for Failure {
    fn from(err: owt_config::ConfigError) -> Self {
        Failure::Other(err.to_string())
    }
}

impl Global {
    /// portal.toml with --state-dir applied.
    pub fn portal_config(&self) -> Result<PortalConfig, Failure> {
        let (mut config, _) = owt_config::load::<PortalConfig>(&self.config_dir, None)?;
        if let Some(dir) = &self.state_dir {
            config.state.dir = dir.clone();
        }
        Ok(config)
    }
}

pub fn main(cli: Cli) -> ExitCode {
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("owtctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let global = &cli.global;
    match &cli.command {
        Command::Init(args) => init::run(global, args),
        Command::Cert(command) => cert::run(global, command),
        Command::Token(TokenCommand::RotateKey) => {
            let config = global.portal_config()?;
            let store = owt_store::Store::open_initialised(&config.database_path())?;
            store.rotate_token_key()?;
            output::done(global, "token key rotated; tokens issued before now are no longer valid");
            Ok(())
        }
        Command::Token(TokenCommand::Create { room, user, role, isp, region }) => {
            let client = rest::Client::new(global)?;
            let mut body = serde_json::json!({"user": user, "role": role});
            if isp.is_some() || region.is_some() {
                body["preference"] =
                    serde_json::json!({"isp": isp.as_deref().unwrap_or(""), "region": region.as_deref().unwrap_or("")});
            }
            let token = client.call("POST", &format!("/v1/rooms/{room}/tokens"), Some(&body))?;
            match (global.json, token) {
                (true, Value::String(token)) => println!("{}", serde_json::json!({"token": token})),
                (_, Value::String(token)) => println!("{token}"),
                (_, other) => println!("{other}"),
            }
            Ok(())
        }
        Command::Participant(command) => {
            let client = rest::Client::new(global)?;
            match command {
                ParticipantCommand::List { room } => {
                    output::participants(global, &client.call("GET", &format!("/v1/rooms/{room}/participants"), None)?)
                }
                ParticipantCommand::Show { room, id } => {
                    output::room(global, &client.call("GET", &format!("/v1/rooms/{room}/participants/{id}"), None)?)
                }
                ParticipantCommand::Permit { room, id, action, media, allow } => {
                    let (path, value) = match media.as_str() {
                        "both" => {
                            (format!("/permission/{action}"), serde_json::json!({"audio": allow, "video": allow}))
                        }
                        kind => (format!("/permission/{action}/{kind}"), Value::Bool(*allow)),
                    };
                    let body = serde_json::json!([{"op": "replace", "path": path, "value": value}]);
                    let path = format!("/v1/rooms/{room}/participants/{id}");
                    output::room(global, &client.call("PATCH", &path, Some(&body))?);
                }
                ParticipantCommand::Drop { room, id } => {
                    client.call("DELETE", &format!("/v1/rooms/{room}/participants/{id}"), None)?;
                    output::done(global, &format!("participant {id} dropped"));
                }
            }
            Ok(())
        }
        Command::Stream(command) => {
            let client = rest::Client::new(global)?;
            match command {
                StreamCommand::List { room } => {
                    output::streams(global, &client.call("GET", &format!("/v1/rooms/{room}/streams"), None)?)
                }
                StreamCommand::Show { room, id } => {
                    output::room(global, &client.call("GET", &format!("/v1/rooms/{room}/streams/{id}"), None)?)
                }
                StreamCommand::Pause { room, id, kind } | StreamCommand::Play { room, id, kind } => {
                    let value = if matches!(command, StreamCommand::Pause { .. }) { "inactive" } else { "active" };
                    let kinds: &[&str] = match kind.as_str() {
                        "audio" => &["audio"],
                        "video" => &["video"],
                        _ => &["audio", "video"],
                    };
                    let body: Vec<Value> = kinds
                        .iter()
                        .map(|k| serde_json::json!({"op": "replace", "path": format!("/media/{k}/status"), "value": value}))
                        .collect();
                    let path = format!("/v1/rooms/{room}/streams/{id}");
                    output::room(global, &client.call("PATCH", &path, Some(&Value::Array(body)))?);
                }
                StreamCommand::Mix { room, id, view } | StreamCommand::Unmix { room, id, view } => {
                    let op = if matches!(command, StreamCommand::Mix { .. }) { "add" } else { "remove" };
                    let body = serde_json::json!([{"op": op, "path": "/info/inViews", "value": view}]);
                    let path = format!("/v1/rooms/{room}/streams/{id}");
                    output::room(global, &client.call("PATCH", &path, Some(&body))?);
                }
                StreamCommand::Layout { room, id, file } => {
                    let layout = read_json_arg(file)?;
                    let body = serde_json::json!([{"op": "replace", "path": "/info/layout", "value": layout}]);
                    let path = format!("/v1/rooms/{room}/streams/{id}");
                    output::room(global, &client.call("PATCH", &path, Some(&body))?);
                }
                StreamCommand::Stats { room, id } => {
                    output::stats(global, &client.call("GET", &format!("/v1/rooms/{room}/streams/{id}/stats"), None)?)
                }
                StreamCommand::Delete { room, id } => {
                    client.call("DELETE", &format!("/v1/rooms/{room}/streams/{id}"), None)?;
                    output::done(global, &format!("stream {id} deleted"));
                }
            }
            Ok(())
        }
        Command::Cluster => {
            let client = rest::Client::new(global)?;
            output::workers(global, &client.call("GET", "/v1/cluster/nodes", None)?);
            Ok(())
        }
        Command::Service(command) => {
            let client = rest::Client::new(global)?;
            match command {
                ServiceCommand::List => output::services(global, &client.call("GET", "/services", None)?),
                ServiceCommand::Create { name, key } => {
                    let mut body = serde_json::json!({"name": name});
                    if let Some(key) = key {
                        body["key"] = Value::String(key.clone());
                    }
                    output::service(global, &client.call("POST", "/services", Some(&body))?);
                }
                ServiceCommand::Show { id } => {
                    output::service(global, &client.call("GET", &format!("/services/{id}"), None)?)
                }
                ServiceCommand::Delete { id } => {
                    client.call("DELETE", &format!("/services/{id}"), None)?;
                    output::done(global, &format!("service {id} deleted"));
                }
            }
            Ok(())
        }
        Command::Room(command) => {
            let client = rest::Client::new(global)?;
            match command {
                RoomCommand::List { page, per_page } => {
                    let path = format!("/v1/rooms?page={page}&per_page={per_page}");
                    output::rooms(global, &client.call("GET", &path, None)?);
                }
                RoomCommand::Create { name, options } => {
                    let body = serde_json::json!({"name": name, "options": options.to_json()?});
                    output::room(global, &client.call("POST", "/v1/rooms", Some(&body))?);
                }
                RoomCommand::Show { id } => {
                    output::room(global, &client.call("GET", &format!("/v1/rooms/{id}"), None)?)
                }
                RoomCommand::Update { id, name, options } => {
                    let mut body = options.to_json()?;
                    if let Some(name) = name {
                        body["name"] = Value::String(name.clone());
                    }
                    if body.as_object().is_some_and(|o| o.is_empty()) {
                        return Err(Failure::Invalid("nothing to update: give --name, setting flags or --file".into()));
                    }
                    output::room(global, &client.call("PUT", &format!("/v1/rooms/{id}"), Some(&body))?);
                }
                RoomCommand::Delete { id } => {
                    client.call("DELETE", &format!("/v1/rooms/{id}"), None)?;
                    output::done(global, &format!("room {id} deleted"));
                }
            }
            Ok(())
        }
    }
}

/// A JSON value from a file, or from standard input for `-`.
fn read_json_arg(path: &std::path::Path) -> Result<Value, Failure> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::Other(format!("standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| Failure::Other(format!("{}: {e}", path.display())))?
    };
    serde_json::from_str(&text).map_err(|e| Failure::Invalid(format!("{}: not valid JSON: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Participant ids are Socket.IO ids, which may start with '-' (one in 32 or so did, and
    /// made `owtctl participant ...` a usage error).
    #[test]
    fn participant_ids_may_start_with_a_hyphen() {
        for args in [
            vec!["owtctl", "participant", "show", "room", "-Xab"],
            vec!["owtctl", "participant", "drop", "room", "-Xab", "--json"],
            vec!["owtctl", "participant", "permit", "room", "-Xab", "publish", "video", "false", "--json"],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(format!("{cli:?}").contains("\"-Xab\""), "{cli:?}");
        }
    }
}
