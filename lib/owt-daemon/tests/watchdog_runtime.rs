//! The watchdog of a daemon with a tokio runtime: READY=1 with STATUS=, then WATCHDOG=1 pings
//! from a task on that runtime, which stop while the runtime is stuck and resume after it.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use support::{is_ping, one_worker_runtime, run_daemon, terminate, Notifications, TestService, STATUS};

/// 40 ms: pings every 20 ms.
const WATCHDOG_USEC: &str = "40000";

#[test]
fn pings_come_from_the_daemon_runtime() {
    let notifications = Notifications::bind();
    std::env::set_var("WATCHDOG_USEC", WATCHDOG_USEC);
    std::env::remove_var("WATCHDOG_PID");
    let runtime = one_worker_runtime();
    let handle = runtime.handle().clone();
    let stopped = Arc::new(AtomicBool::new(false));
    let (daemon, _config_dir) = run_daemon(TestService { runtime: Some(runtime), stopped: stopped.clone() });

    let ready = notifications.next();
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines, ["READY=1", &format!("STATUS={STATUS}")], "first notification: {ready:?}");
    for _ in 0..3 {
        assert_eq!(notifications.next(), "WATCHDOG=1");
    }

    // Block the runtime's only worker: no task runs, so no ping may come.
    let (blocking_tx, blocking_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    handle.spawn(async move {
        blocking_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    blocking_rx.recv().expect("the blocking task runs");
    // Pings sent before the worker blocked are already queued on the socket.
    notifications.drain();
    let while_stuck = notifications.during(Duration::from_millis(500));
    assert!(!while_stuck.iter().any(|d| is_ping(d)), "pings while the runtime is stuck: {while_stuck:?}");

    release_tx.send(()).unwrap();
    assert_eq!(notifications.until("WATCHDOG=1").last().map(String::as_str), Some("WATCHDOG=1"));

    terminate();
    notifications.until("STOPPING=1");
    let status = daemon.join().expect("run returns");
    assert_eq!(status, std::process::ExitCode::SUCCESS);
    assert!(stopped.load(Ordering::SeqCst), "the service was stopped");
    let after_stop = notifications.drain();
    assert!(!after_stop.iter().any(|d| is_ping(d)), "pings after STOPPING: {after_stop:?}");
}
