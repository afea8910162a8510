//! owt-webrtc: owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding).
//!
//! In this release the daemon validates its configuration (webrtc.toml), joins the cluster: it
//! registers with the portal's bus as a `webrtc` worker, sends heartbeats with its CPU load and
//! answers `status`; its status says that WebRTC media is not implemented yet. It does no media work
//! and does not pretend to. SIGTERM sends `quit` to the portal and stops it cleanly.

use owt_config::WebrtcConfig;

/// Command line of owt-webrtc.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-webrtc",
    version,
    about = "owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding)",
    long_about = "owt-webrtc: owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding). Reads /etc/owt/webrtc.toml (see owt.toml(5)); normally started by systemd as owt-webrtc.service. In this release it registers with the portal (see [cluster] in webrtc.toml) and reports its load, but WebRTC media is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal`; returns at once (registration follows in the
/// background, retried while the portal is away).
pub fn start(config: &WebrtcConfig) -> Result<owt_bus::worker::WorkerService, owt_bus::BusError> {
    owt_bus::worker::WorkerService::start(config, "WebRTC media")
}
