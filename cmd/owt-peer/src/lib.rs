//! owt-peer: owt-rs P2P signaling server for OWT P2P clients.
//!
//! In this release the daemon validates its configuration (peer.toml), reports readiness and
//! a status saying that P2P signaling is not implemented yet, and stops cleanly on SIGTERM. It does
//! no media work and does not pretend to.

use owt_config::PeerConfig;

/// Command line of owt-peer.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-peer",
    version,
    about = "owt-rs P2P signaling server for OWT P2P clients",
    long_about = "owt-peer: owt-rs P2P signaling server for OWT P2P clients. Reads /etc/owt/peer.toml (see owt.toml(5)); normally started by                   systemd as owt-peer.service. In this release it validates its configuration and reports                   to systemd, but P2P signaling is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

pub fn start(_config: &PeerConfig) -> Result<owt_daemon::Idle, std::convert::Infallible> {
    Ok(owt_daemon::Idle { what: "P2P signaling" })
}
