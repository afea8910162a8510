//! Two headless Chromium pages make a P2P video call whose signaling goes through owt-peer
//! (tests/js/browser-p2p.js). As testing/peers.md requires for WebRTC, everything runs in a
//! fresh network namespace with only loopback (`unshare -n`), owt-peer included.

use crate::support::*;
use std::process::Command;

#[test]
fn two_chromium_pages_call_each_other_over_owt_peer_signaling() {
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "chromium is missing: run `make test-deps`");
    let dir = tempfile::tempdir().expect("tempdir");
    // Inside the namespace every port is free: use the defaults of the reference server.
    std::fs::write(
        dir.path().join("peer.toml"),
        "[log]\nlevel = \"info\"\n\n[peer]\nip_address = \"127.0.0.1\"\nport = 8095\n\n[metrics]\nport = 9095\n",
    )
    .expect("write peer.toml");
    let script = format!(
        "ip link set lo up && exec timeout 120 node browser-p2p.js '{}' '{}' 8095 9095",
        program("owt-peer").display(),
        dir.path().display()
    );
    let output = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .current_dir(js_dir())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.trim_end().ends_with("PASS"), "{}\n{stdout}\n{stderr}", output.status);
}
