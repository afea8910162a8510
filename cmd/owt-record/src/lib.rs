//! owt-record: owt-rs recording node (streams to mkv/mp4/webm files).
//!
//! In this release the daemon validates its configuration (record.toml), joins the cluster: it
//! registers with the portal's bus as a `record` worker, sends heartbeats with its CPU load and
//! answers `status`; its status says that recording is not implemented yet. It does no media work
//! and does not pretend to. SIGTERM sends `quit` to the portal and stops it cleanly.

use owt_config::RecordConfig;

/// Command line of owt-record.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-record",
    version,
    about = "owt-rs recording node (streams to mkv/mp4/webm files)",
    long_about = "owt-record: owt-rs recording node (streams to mkv/mp4/webm files). Reads /etc/owt/record.toml (see owt.toml(5)); normally started by systemd as owt-record.service. In this release it registers with the portal (see [cluster] in record.toml) and reports its load, but recording is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal`; returns at once (registration follows in the
/// background, retried while the portal is away).
pub fn start(config: &RecordConfig) -> Result<owt_bus::worker::WorkerService, owt_bus::BusError> {
    owt_bus::worker::WorkerService::start(config, "recording")
}
