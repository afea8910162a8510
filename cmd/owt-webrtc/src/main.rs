use clap::Parser;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: a forwarded packet's buffers are allocated by one worker thread
/// and often freed by the other; in the SFU benchmark (4x50) owt-webrtc took about 7% less CPU
/// per packet with it. With transparent huge pages (mimalloc's default; the system's THP mode
/// is `madvise` on Debian): a subscriber's state is spread over many heap pages, and each
/// forwarded frame touches all of them, so TLB misses (costly in a VM) were a good part of a
/// copy's cost; in A/B runs at 4x50 about 5-10% more streams per core and a lower p99. The price
/// is memory that was allocated but never written becoming resident: 550 -> 770 KiB per
/// subscriber at first. Most of it was the connections' GRO receive buffers, which the vendored
/// webrtc now lends per receive (`recv_buffers`): about 310 KiB per subscriber at 4x50 since,
/// owt-portal's share included.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = owt_webrtc::Cli::parse();
    owt_daemon::run("owt-webrtc", &cli.daemon, owt_webrtc::start)
}
