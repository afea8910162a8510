//! owt-loadgen: opens P publishers and S subscribers per publisher with webrtc-crate peers
//! against owt-rs (through owt-portal's Socket.IO signaling) or Janus videoroom (HTTP API),
//! sends synthetic VP8 RTP and reports loss, one-way latency and the server's CPU and memory.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = owt_loadgen::Cli::parse();
    match owt_loadgen::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("owt-loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}
