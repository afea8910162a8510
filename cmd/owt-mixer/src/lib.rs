//! owt-mixer: owt-rs audio and video processing node (MCU mixing, transcoding).
//!
//! In this release the daemon validates its configuration (mixer.toml), joins the cluster: it
//! registers with the portal's bus as a `mixer` worker, sends heartbeats with its CPU load and
//! answers `status`; its status says that mixing and transcoding is not implemented yet. It does no media work
//! and does not pretend to. SIGTERM sends `quit` to the portal and stops it cleanly.

use owt_config::MixerConfig;

/// Command line of owt-mixer.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-mixer",
    version,
    about = "owt-rs audio and video processing node (MCU mixing, transcoding)",
    long_about = "owt-mixer: owt-rs audio and video processing node (MCU mixing, transcoding). Reads /etc/owt/mixer.toml (see owt.toml(5)); normally started by systemd as owt-mixer.service. In this release it registers with the portal (see [cluster] in mixer.toml) and reports its load, but mixing and transcoding is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

/// Joins the cluster at `[cluster] portal`; returns at once (registration follows in the
/// background, retried while the portal is away).
pub fn start(config: &MixerConfig) -> Result<owt_bus::worker::WorkerService, owt_bus::BusError> {
    owt_bus::worker::WorkerService::start(config, "mixing and transcoding")
}
