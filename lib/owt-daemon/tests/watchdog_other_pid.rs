//! WATCHDOG_PID naming another process: the watchdog is not ours, so no WATCHDOG=1 is sent,
//! while READY/STATUS/RELOADING/STOPPING still are.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{hang_up, is_ping, one_worker_runtime, run_daemon, terminate, Notifications, TestService, STATUS};

#[test]
fn no_pings_for_another_process_watchdog() {
    let notifications = Notifications::bind();
    std::env::set_var("WATCHDOG_USEC", "40000");
    std::env::set_var("WATCHDOG_PID", (std::process::id() + 1).to_string());
    let stopped = Arc::new(AtomicBool::new(false));
    let service = TestService { runtime: Some(one_worker_runtime()), stopped: stopped.clone() };
    let (daemon, _config_dir) = run_daemon(service);

    assert_eq!(notifications.next(), format!("READY=1\nSTATUS={STATUS}"));
    // 25 watchdog periods.
    let mut seen = notifications.during(Duration::from_millis(500));
    hang_up();
    seen.extend(notifications.until("RELOADING=1"));
    seen.extend(notifications.until("READY=1"));
    seen.extend(notifications.during(Duration::from_millis(500)));
    terminate();
    seen.extend(notifications.until("STOPPING=1"));
    assert_eq!(daemon.join().expect("run returns"), std::process::ExitCode::SUCCESS);
    assert!(stopped.load(Ordering::SeqCst));
    assert!(!seen.iter().any(|d| is_ping(d)), "WATCHDOG=1 sent for another process's watchdog: {seen:?}");
    assert_eq!(seen, ["RELOADING=1".to_string(), format!("READY=1\nSTATUS={STATUS}"), "STOPPING=1".to_string()]);
}
