//! owt-sip: owt-rs SIP gateway (SIP calls into rooms).
//!
//! In this release the daemon validates its configuration (sip.toml), joins the cluster: it
//! registers with the portal's bus as a `sip` worker, sends heartbeats with its CPU load and
//! answers `status`; its status says that the SIP gateway is not implemented yet. It does no media work
//! and does not pretend to. SIGTERM sends `quit` to the portal and stops it cleanly.

use owt_config::SipConfig;

/// Command line of owt-sip.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-sip",
    version,
    about = "owt-rs SIP gateway (SIP calls into rooms)",
    long_about = "owt-sip: owt-rs SIP gateway (SIP calls into rooms). Reads /etc/owt/sip.toml (see owt.toml(5)); normally started by systemd as owt-sip.service. In this release it registers with the portal (see [cluster] in sip.toml) and reports its load, but the SIP gateway is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal`; returns at once (registration follows in the
/// background, retried while the portal is away).
pub fn start(config: &SipConfig) -> Result<owt_bus::worker::WorkerService, owt_bus::BusError> {
    owt_bus::worker::WorkerService::start(config, "the SIP gateway")
}
