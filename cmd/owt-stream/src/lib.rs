//! owt-stream: owt-rs external streams node (RTSP/RTMP in, RTMP/RTSP/HLS/DASH out).
//!
//! In this release the daemon validates its configuration (stream.toml), reports readiness and
//! a status saying that external streaming is not implemented yet, and stops cleanly on SIGTERM. It does
//! no media work and does not pretend to.

use owt_config::StreamConfig;

/// Command line of owt-stream.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-stream",
    version,
    about = "owt-rs external streams node (RTSP/RTMP in, RTMP/RTSP/HLS/DASH out)",
    long_about = "owt-stream: owt-rs external streams node (RTSP/RTMP in, RTMP/RTSP/HLS/DASH out). Reads /etc/owt/stream.toml (see owt.toml(5)); normally started by                   systemd as owt-stream.service. In this release it validates its configuration and reports                   to systemd, but external streaming is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

pub fn start(_config: &StreamConfig) -> Result<owt_daemon::Idle, std::convert::Infallible> {
    Ok(owt_daemon::Idle { what: "external streaming" })
}
