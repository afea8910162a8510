//! owt-record: owt-rs recording node (streams to mkv/mp4/webm files).
//!
//! In this release the daemon validates its configuration (record.toml), reports readiness and
//! a status saying that recording is not implemented yet, and stops cleanly on SIGTERM. It does
//! no media work and does not pretend to.

use owt_config::RecordConfig;

/// Command line of owt-record.
#[derive(Debug, clap::Parser)]
#[command(
    name = "owt-record",
    version,
    about = "owt-rs recording node (streams to mkv/mp4/webm files)",
    long_about = "owt-record: owt-rs recording node (streams to mkv/mp4/webm files). Reads /etc/owt/record.toml (see owt.toml(5)); normally started by                   systemd as owt-record.service. In this release it validates its configuration and reports                   to systemd, but recording is not implemented yet."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: owt_daemon::DaemonArgs,
}

pub fn start(_config: &RecordConfig) -> Result<owt_daemon::Idle, std::convert::Infallible> {
    Ok(owt_daemon::Idle { what: "recording" })
}
