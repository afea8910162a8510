//! The page in headless Chromium (tests/js/app-browser.js): three pages join one room
//! through the sample application, see each other in the participant list, chat, and show
//! what became of publishing; the page in mixed mode sees the mixed view (the app mixes each
//! publication through REST, as OWT's). As testing/peers.md requires for WebRTC, owt-portal,
//! owt-webrtc, owt-mixer and the browser run in a fresh network namespace with only loopback
//! (`unshare -n`), where the default ports are free.

use crate::support::*;
use std::io::Write;
use std::process::Command;

#[test]
fn pages_join_chat_and_show_the_publish_outcome() {
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "chromium is missing: run `make test-deps`");
    let js = js_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let (portal_etc, webrtc_etc) = (dir.path().join("etc"), dir.path().join("webrtc"));
    std::fs::create_dir_all(&portal_etc).expect("mkdir etc");
    std::fs::create_dir_all(&webrtc_etc).expect("mkdir webrtc");
    std::fs::write(
        portal_etc.join("portal.toml"),
        format!(
            "[state]\ndir = \"{}\"\n[management-api]\nip_address = \"127.0.0.1\"\n\
             [portal]\nip_address = \"127.0.0.1\"\nbind_address = \"127.0.0.1\"\n\
             [app]\nip_address = \"127.0.0.1\"\nport = 3004\nshare_dir = \"{}\"\nsocketio_client = \"{}\"\n",
            dir.path().join("state").display(),
            share_dir().display(),
            socketio_client().display()
        ),
    )
    .expect("write portal.toml");
    std::fs::write(webrtc_etc.join("webrtc.toml"), "[webrtc]\nloopback_candidates = true\n")
        .expect("write webrtc.toml");
    let init =
        command("owtctl").arg("--config-dir").arg(&portal_etc).args(["init", "--json"]).output().expect("owtctl");
    assert!(init.status.success(), "owtctl init: {}", String::from_utf8_lossy(&init.stderr));

    let script = format!(
        "ip link set lo up && exec timeout 150 node app-browser.js '{}' '{}' 3004 '{}' '{}' '{}'",
        program("owt-portal").display(),
        portal_etc.display(),
        program("owt-webrtc").display(),
        webrtc_etc.display(),
        program("owt-mixer").display()
    );
    let output = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .current_dir(&js)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .env_remove("APP_BROWSER_TRACE")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // What the pages showed, printed even when the test passes (not captured by the harness).
    let outcomes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("outcome ")).collect();
    let _ = writeln!(std::io::stderr(), "sample app in Chromium:\n  {}", outcomes.join("\n  "));
    assert!(output.status.success() && stdout.trim_end().ends_with("PASS"), "{}\n{stdout}\n{stderr}", output.status);
    assert_eq!(outcomes.len(), 3, "{stdout}");
}
