//! owt-stream: owt-rs external streams node (RTSP/RTMP in, RTMP/RTSP/HLS/DASH out).
//!
//! In this release the daemon validates its configuration (stream.toml), joins the cluster: it
//! registers with the portal's bus as a `stream` worker, sends heartbeats with its CPU load and
//! answers `status`; its status says that external streaming is not implemented yet. It does no media work
//! and does not pretend to. SIGTERM sends `quit` to the portal and stops it cleanly.

use owt_config::StreamConfig;

/// Command line of owt-stream.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-stream",
    version,
    about = "owt-rs external streams node (RTSP/RTMP in, RTMP/RTSP/HLS/DASH out)",
    long_about = "owt-stream: owt-rs external streams node (RTSP/RTMP in, RTMP/RTSP/HLS/DASH out). Reads /etc/owt/stream.toml (see owt.toml(5)); normally started by systemd as owt-stream.service. In this release it registers with the portal (see [cluster] in stream.toml) and reports its load, but external streaming is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal`; returns at once (registration follows in the
/// background, retried while the portal is away).
pub fn start(config: &StreamConfig) -> Result<owt_bus::worker::WorkerService, owt_bus::BusError> {
    owt_bus::worker::WorkerService::start(config, "external streaming")
}
