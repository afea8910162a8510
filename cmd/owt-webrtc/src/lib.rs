//! owt-webrtc: owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding).
//!
//! In this release the daemon validates its configuration (webrtc.toml), reports readiness and
//! a status saying that WebRTC media is not implemented yet, and stops cleanly on SIGTERM. It does
//! no media work and does not pretend to.

use owt_config::WebrtcConfig;

/// Command line of owt-webrtc.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-webrtc",
    version,
    about = "owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding)",
    long_about = "owt-webrtc: owt-rs WebRTC access node (ICE, DTLS-SRTP, SFU forwarding). Reads /etc/owt/webrtc.toml (see owt.toml(5)); normally started by                   systemd as owt-webrtc.service. In this release it validates its configuration and reports                   to systemd, but WebRTC media is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

pub fn start(_config: &WebrtcConfig) -> Result<owt_daemon::Idle, std::convert::Infallible> {
    Ok(owt_daemon::Idle { what: "WebRTC media" })
}
