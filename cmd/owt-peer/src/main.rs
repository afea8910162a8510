use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_peer::Cli::parse();
    owt_daemon::run("owt-peer", &cli.daemon, owt_peer::start)
}
