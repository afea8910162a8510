//! The watchdog of a daemon without a runtime of its own, with WATCHDOG_PID naming this
//! process: the control loop pings, between signals too.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::{hang_up, run_daemon, terminate, Notifications, TestService, STATUS};

#[test]
fn control_loop_pings_when_watchdog_pid_is_ours() {
    let notifications = Notifications::bind();
    std::env::set_var("WATCHDOG_USEC", "40000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    let stopped = Arc::new(AtomicBool::new(false));
    let (daemon, _config_dir) = run_daemon(TestService { runtime: None, stopped: stopped.clone() });

    assert_eq!(notifications.next(), format!("READY=1\nSTATUS={STATUS}"));
    for _ in 0..3 {
        assert_eq!(notifications.next(), "WATCHDOG=1");
    }
    // A reload reports RELOADING=1 then READY=1 again, and the pings go on.
    hang_up();
    let reload = notifications.until("RELOADING=1");
    assert!(reload.iter().all(|d| d == "WATCHDOG=1" || d == "RELOADING=1"), "{reload:?}");
    notifications.until("READY=1");
    for _ in 0..3 {
        assert_eq!(notifications.until("WATCHDOG=1").last().map(String::as_str), Some("WATCHDOG=1"));
    }

    terminate();
    notifications.until("STOPPING=1");
    assert_eq!(daemon.join().expect("run returns"), std::process::ExitCode::SUCCESS);
    assert!(stopped.load(Ordering::SeqCst));
}
