//! owt-sip: owt-rs SIP gateway (SIP calls into rooms).
//!
//! In this release the daemon validates its configuration (sip.toml), reports readiness and
//! a status saying that the SIP gateway is not implemented yet, and stops cleanly on SIGTERM. It does
//! no media work and does not pretend to.

use owt_config::SipConfig;

/// Command line of owt-sip.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-sip",
    version,
    about = "owt-rs SIP gateway (SIP calls into rooms)",
    long_about = "owt-sip: owt-rs SIP gateway (SIP calls into rooms). Reads /etc/owt/sip.toml (see owt.toml(5)); normally started by                   systemd as owt-sip.service. In this release it validates its configuration and reports                   to systemd, but the SIP gateway is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

pub fn start(_config: &SipConfig) -> Result<owt_daemon::Idle, std::convert::Infallible> {
    Ok(owt_daemon::Idle { what: "the SIP gateway" })
}
