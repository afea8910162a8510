//! owt-portal, the owt-rs control plane. This release serves the OWT management REST API
//! (services, rooms, tokens; spec/owt-compat.md §2-§3) over HTTP or HTTPS from the SQLite
//! store. Client signaling, the bus and live room state arrive with later releases; until
//! then the live-state REST resources answer as OWT does for a room that is not running.

pub mod api;
mod form;
mod http;

use owt_config::PortalConfig;
use owt_store::Store;
use std::sync::Arc;

/// Command line of owt-portal.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-portal",
    version,
    about = "owt-rs control plane: OWT management REST API, rooms and tokens",
    long_about = "owt-portal serves the OWT-compatible management REST API (MAuth-authenticated services, \
                  rooms and tokens) from the SQLite database created by `owtctl init`. It is normally \
                  started by systemd (owt-portal.service) and reads /etc/owt/portal.toml. SIGHUP reloads \
                  the configuration; SIGTERM stops it gracefully."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("{0}")]
    Store(#[from] owt_store::StoreError),
    #[error("cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("TLS certificate {path}: {message}")]
    Certificate { path: String, message: String },
}

/// The running portal.
pub struct Portal {
    api: Arc<api::Api>,
    server: http::RestServer,
    listen_settings: owt_config::ManagementApiSection,
}

impl Portal {
    /// Opens the store and starts serving the REST API.
    pub fn start(config: &PortalConfig) -> Result<Portal, PortalError> {
        let path = config.database_path();
        let store = Store::open_initialised(&path).map_err(|err| match err {
            owt_store::StoreError::NotInitialised => owt_store::StoreError::Open {
                path: path.display().to_string(),
                message: "not initialised; run `owtctl init` first".into(),
            },
            other => other,
        })?;
        let api = Arc::new(api::Api::new(store, config.clone()));
        let server = http::RestServer::start(config, api.clone())?;
        Ok(Portal { api, server, listen_settings: config.management_api.clone() })
    }

    /// The address the REST API actually listens on (useful with port 0).
    pub fn rest_address(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }
}

impl owt_daemon::Service<PortalConfig> for Portal {
    fn status(&self) -> String {
        let scheme = if self.listen_settings.ssl { "https" } else { "http" };
        format!("REST API on {scheme}://{}", self.server.local_addr())
    }

    fn reload(&mut self, config: &PortalConfig) -> Result<(), String> {
        if config.management_api != self.listen_settings || config.state != self.api.config().state {
            return Err("[management-api] or [state] changed: restart owt-portal to apply them".into());
        }
        self.api.set_config(config.clone());
        Ok(())
    }

    fn stop(self) {
        self.server.stop();
    }
}
