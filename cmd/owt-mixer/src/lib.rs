//! owt-mixer: owt-rs audio and video processing node (MCU mixing, transcoding).
//!
//! In this release the daemon validates its configuration (mixer.toml), reports readiness and
//! a status saying that mixing and transcoding is not implemented yet, and stops cleanly on SIGTERM. It does
//! no media work and does not pretend to.

use owt_config::MixerConfig;

/// Command line of owt-mixer.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-mixer",
    version,
    about = "owt-rs audio and video processing node (MCU mixing, transcoding)",
    long_about = "owt-mixer: owt-rs audio and video processing node (MCU mixing, transcoding). Reads /etc/owt/mixer.toml (see owt.toml(5)); normally started by                   systemd as owt-mixer.service. In this release it validates its configuration and reports                   to systemd, but mixing and transcoding is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

pub fn start(_config: &MixerConfig) -> Result<owt_daemon::Idle, std::convert::Infallible> {
    Ok(owt_daemon::Idle { what: "mixing and transcoding" })
}
