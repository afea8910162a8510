use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_mixer::Cli::parse();
    owt_daemon::run("owt-mixer", &cli.daemon, owt_mixer::start)
}
