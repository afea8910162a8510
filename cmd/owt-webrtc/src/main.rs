use clap::Parser;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: a forwarded packet's buffers are allocated by one worker thread
/// and often freed by the other; in the SFU benchmark (4x50) owt-webrtc took about 7% less CPU
/// per packet with it. Built without transparent huge pages (`no_thp`), which otherwise raised
/// the resident memory per subscriber by half (525 -> 770 KiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = owt_webrtc::Cli::parse();
    owt_daemon::run("owt-webrtc", &cli.daemon, owt_webrtc::start)
}
