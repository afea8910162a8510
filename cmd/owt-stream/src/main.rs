use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_stream::Cli::parse();
    owt_daemon::run("owt-stream", &cli.daemon, owt_stream::start)
}
