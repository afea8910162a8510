use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_sip::Cli::parse();
    owt_daemon::run("owt-sip", &cli.daemon, owt_sip::start)
}
