//! owt-portal, the owt-rs control plane: the OWT management REST API (services, rooms,
//! tokens, participants, streams; spec/owt-compat.md §2-§3) over HTTP or HTTPS from the
//! SQLite store, client signaling over Socket.IO (spec §1) with the conference core of
//! `owt-room`, the ZeroMQ bus on which workers register and are scheduled (`owt-bus`), and
//! the sample application. Media requests (publish, subscribe, soac, ...) are checked
//! against the room and then carried out on the webrtc nodes and mixers of the bus.

pub mod api;
pub mod app;
mod cluster;
mod form;
mod http;
pub mod signaling;

use owt_config::PortalConfig;
use owt_store::Store;
use std::sync::Arc;

/// Command line of owt-portal.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-portal",
    version,
    about = "owt-rs control plane: OWT management REST API, client signaling, cluster bus and scheduling",
    long_about = "owt-portal serves the OWT-compatible management REST API (MAuth-authenticated services, \
                  rooms, tokens, live participants and streams) from the SQLite database created by \
                  `owtctl init`, the OWT client signaling protocol over Socket.IO for the conference \
                  SDKs, the ZeroMQ bus on which owt-webrtc, owt-mixer and the other workers register \
                  and are scheduled, and the sample application. It is normally started by systemd \
                  (owt-portal.service) and reads /etc/owt/portal.toml. SIGHUP reloads the \
                  configuration; SIGTERM stops it gracefully."
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
    #[error("signaling: {0}")]
    Signaling(#[from] std::io::Error),
    #[error("cluster bus: {0}")]
    Cluster(#[from] owt_bus::ClusterError),
}

/// The running portal.
pub struct Portal {
    api: Arc<api::Api>,
    server: http::RestServer,
    app: Option<app::AppServer>,
    signaling: signaling::Signaling,
    cluster: Arc<owt_bus::Cluster>,
    runtime: tokio::runtime::Runtime,
    listen_settings: owt_config::ManagementApiSection,
    signaling_settings: owt_config::PortalSection,
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.management_api.threads)
            .thread_name("portal-io")
            .enable_all()
            .build()
            .map_err(PortalError::Signaling)?;
        let cluster = Arc::new(owt_bus::Cluster::start(config, runtime.handle())?);
        runtime.spawn(cluster::watch(cluster.clone()));
        api.set_cluster(cluster.clone());
        let signaling = runtime.block_on(signaling::Signaling::start(config, api.clone(), cluster.clone()))?;
        api.set_live(signaling.hub());
        let server = http::RestServer::start(config, api.clone(), runtime.handle())?;
        // The sample application is optional (OWT runs it as a process of its own): when it
        // cannot start, the portal serves without it.
        let app = match config.app.enabled.then(|| app::start(config, api.clone(), runtime.handle())).transpose() {
            Ok(app) => app,
            Err(err) => {
                tracing::error!("sample application not started: {err}");
                None
            }
        };
        Ok(Portal {
            api,
            server,
            app,
            signaling,
            cluster,
            runtime,
            listen_settings: config.management_api.clone(),
            signaling_settings: config.portal.clone(),
        })
    }

    /// The address Socket.IO signaling actually listens on.
    pub fn signaling_address(&self) -> std::net::SocketAddr {
        self.signaling.local_addr()
    }

    /// The address the REST API actually listens on (useful with port 0).
    pub fn rest_address(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }
}

impl owt_daemon::Service<PortalConfig> for Portal {
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        Some(self.runtime.handle().clone())
    }

    fn status(&self) -> String {
        let scheme = if self.listen_settings.ssl { "https" } else { "http" };
        format!(
            "REST API on {scheme}://{}, signaling on {}, bus on {}, {} workers",
            self.server.local_addr(),
            self.signaling.local_addr(),
            self.cluster.endpoint(),
            self.cluster.workers().len()
        )
    }

    fn reload(&mut self, config: &PortalConfig) -> Result<(), String> {
        let listening = (&self.signaling_settings.bind_address, self.signaling_settings.port);
        if config.management_api != self.listen_settings
            || config.state != self.api.config().state
            || (&config.portal.bind_address, config.portal.port) != listening
            || config.cluster != self.api.config().cluster
            || config.scheduling != self.api.config().scheduling
            || config.app != self.api.config().app
        {
            return Err(
                "[management-api], [state], [cluster], [scheduling], [app] or the signaling address changed: restart owt-portal to apply them".into()
            );
        }
        self.api.set_config(config.clone());
        Ok(())
    }

    fn stop(self) {
        self.server.stop();
        if let Some(app) = self.app {
            app.stop();
        }
        self.runtime.block_on(self.signaling.stop());
        if let Ok(cluster) = Arc::try_unwrap(self.cluster) {
            self.runtime.block_on(cluster.stop());
        }
        self.runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    }
}
