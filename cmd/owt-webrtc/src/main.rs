use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_webrtc::Cli::parse();
    owt_daemon::run("owt-webrtc", &cli.daemon, owt_webrtc::start)
}
