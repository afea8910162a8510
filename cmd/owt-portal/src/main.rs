use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_portal::Cli::parse();
    owt_daemon::run("owt-portal", &cli.daemon, owt_portal::Portal::start)
}
