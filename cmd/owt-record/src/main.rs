use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_record::Cli::parse();
    owt_daemon::run("owt-record", &cli.daemon, owt_record::start)
}
