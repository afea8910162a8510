//! The shell every owt-rs daemon runs in, so the binaries stay thin:
//! - common arguments (`--config-dir`, `--config`, `--check-config`);
//! - configuration loading through `owt-config`, with errors naming file and key;
//! - tracing to journald when started by systemd (stderr is the journal stream), to stderr
//!   otherwise, with the level reloadable;
//! - sd_notify `READY`/`STATUS`/`RELOADING`/`STOPPING` and watchdog pings, sent from a task on
//!   the daemon's tokio runtime when it has one, so a stuck runtime stops them and systemd
//!   restarts the daemon;
//! - SIGTERM/SIGINT: graceful stop; SIGHUP: configuration reload.

use owt_config::{ConfigError, DaemonConfig, Source};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Arguments every daemon takes.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Directory holding <daemon>.toml; a missing file means the embedded defaults.
    #[arg(long, value_name = "DIR", env = "OWT_CONFIG_DIR", default_value = owt_config::DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,
    /// Read this file instead of <config-dir>/<daemon>.toml (it must exist).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print where it came from, and exit.
    #[arg(long)]
    pub check_config: bool,
}

impl DaemonArgs {
    pub fn load<C: DaemonConfig>(&self) -> Result<(C, Source), ConfigError> {
        owt_config::load::<C>(&self.config_dir, self.config.as_deref())
    }
}

/// What a daemon's control loop receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Stop,
    Reload,
}

/// A running daemon, as the shell sees it.
pub trait Service<C> {
    /// One line for `systemctl status` (sd_notify STATUS=).
    fn status(&self) -> String;
    /// Applies a new, already validated configuration. An error keeps the old one running.
    fn reload(&mut self, config: &C) -> Result<(), String>;
    /// Stops serving; returns when the daemon's threads are done.
    fn stop(self);
    /// The runtime the daemon's work runs on. The watchdog pings from a task on it, so the
    /// pings stop when that runtime hangs. `None`: pinged from the shell's control loop.
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        None
    }
}

/// Sends sd_notify lines; does nothing when not started by systemd.
pub fn notify(lines: &[(&str, &str)]) {
    if let Err(err) = systemd::daemon::notify(lines.iter()) {
        tracing::debug!("sd_notify failed: {err}");
    }
}

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// Logging with a level that SIGHUP can change.
pub struct Logging {
    handle: FilterHandle,
}

fn filter_for(level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(level),
    }
}

/// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM to its
/// device:inode), the documented way to tell that logs should go to journald.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let stderr = std::fs::metadata("/proc/self/fd/2").ok().map(|meta| (meta.dev(), meta.ino()));
    logs_go_to_journal(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr)
}

/// The logging decision: journald when `JOURNAL_STREAM` (`<device>:<inode>`) names the file
/// stderr is (`stderr`: its device and inode), stderr otherwise. A child that inherited
/// JOURNAL_STREAM but whose stderr was redirected logs to stderr.
pub fn logs_go_to_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(stream), Some((dev, ino))) = (journal_stream, stderr) else { return false };
    stream == format!("{dev}:{ino}")
}

impl Logging {
    pub fn init(level: &str) -> Logging {
        let (filter, handle) = reload::Layer::new(filter_for(level));
        let registry = tracing_subscriber::registry().with(filter);
        let journald = if stderr_is_journal() { tracing_journald::layer().ok() } else { None };
        match journald {
            Some(layer) => registry.with(layer).init(),
            None => {
                use std::io::IsTerminal;
                let ansi = std::io::stderr().is_terminal();
                registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)).init()
            }
        }
        Logging { handle }
    }

    pub fn set_level(&self, level: &str) {
        if let Err(err) = self.handle.reload(filter_for(level)) {
            tracing::warn!("cannot change log level: {err}");
        }
    }
}

/// Turns SIGTERM/SIGINT/SIGHUP into [`Event`]s on a channel.
pub fn signal_events() -> std::io::Result<mpsc::Receiver<Event>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let event = if signal == SIGHUP { Event::Reload } else { Event::Stop };
            if tx.send(event).is_err() {
                break;
            }
        }
    })?;
    Ok(rx)
}

/// How often to ping the systemd watchdog: half of `WATCHDOG_USEC`, when it is set and
/// `WATCHDOG_PID` is unset or names this process (as sd_watchdog_enabled(3) decides).
pub fn watchdog_period(watchdog_usec: Option<&str>, watchdog_pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec = watchdog_usec?.parse::<u64>().ok().filter(|usec| *usec > 0)?;
    if let Some(pid) = watchdog_pid {
        if pid.parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_micros(1)))
}

fn watchdog_period_from_env() -> Option<Duration> {
    let var = |name: &str| std::env::var(name).ok();
    watchdog_period(var("WATCHDOG_USEC").as_deref(), var("WATCHDOG_PID").as_deref(), std::process::id())
}

fn ping_watchdog() {
    notify(&[("WATCHDOG", "1")]);
}

/// Pings from a task on the daemon's runtime: it runs only while that runtime makes progress.
fn spawn_watchdog_task(runtime: &tokio::runtime::Handle, period: Duration) -> tokio::task::JoinHandle<()> {
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            ping_watchdog();
        }
    })
}

/// Exit status for a configuration error (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Runs a daemon from its parsed arguments to its exit: load and check the configuration,
/// start logging, `start` the service, report readiness, then serve signals until stopped.
pub fn run<C, S, E>(name: &str, args: &DaemonArgs, start: impl FnOnce(&C) -> Result<S, E>) -> ExitCode
where
    C: DaemonConfig,
    S: Service<C>,
    E: std::fmt::Display,
{
    let (config, source) = match args.load::<C>() {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        println!("{name}: configuration OK ({source})");
        return ExitCode::SUCCESS;
    }
    let logging = Logging::init(&config.log().level);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "{name} starting with {source}");
    let events = match signal_events() {
        Ok(events) => events,
        Err(err) => {
            tracing::error!("cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut service = match start(&config) {
        Ok(service) => service,
        Err(err) => {
            tracing::error!("{name} failed to start: {err}");
            eprintln!("{name}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let status = service.status();
    tracing::info!("{name} ready: {status}");
    notify(&[("READY", "1"), ("STATUS", &status)]);
    let watchdog = watchdog_period_from_env();
    let watchdog_task = match (watchdog, service.runtime()) {
        (Some(period), Some(runtime)) => Some(spawn_watchdog_task(&runtime, period)),
        _ => None,
    };
    // Without a runtime of the daemon's, the control loop itself pings between events.
    let loop_period = if watchdog_task.is_none() { watchdog } else { None };
    let mut next_ping = Instant::now();
    loop {
        let event = match loop_period {
            Some(period) => {
                let now = Instant::now();
                if now >= next_ping {
                    ping_watchdog();
                    next_ping = now + period;
                }
                match events.recv_timeout(next_ping.saturating_duration_since(Instant::now())) {
                    Ok(event) => event,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match events.recv() {
                Ok(event) => event,
                Err(_) => break,
            },
        };
        match event {
            Event::Stop => break,
            Event::Reload => {
                notify(&[("RELOADING", "1")]);
                match args.load::<C>() {
                    Ok((config, source)) => {
                        logging.set_level(&config.log().level);
                        match service.reload(&config) {
                            Ok(()) => tracing::info!("configuration reloaded from {source}"),
                            Err(err) => tracing::error!("reload refused, keeping the running configuration: {err}"),
                        }
                    }
                    Err(err) => tracing::error!("reload failed, keeping the running configuration: {err}"),
                }
                let status = service.status();
                notify(&[("READY", "1"), ("STATUS", &status)]);
            }
        }
    }
    tracing::info!("{name} stopping");
    notify(&[("STOPPING", "1")]);
    if let Some(task) = watchdog_task {
        task.abort();
    }
    service.stop();
    tracing::info!("{name} stopped");
    ExitCode::SUCCESS
}

/// A daemon whose real work arrives in a later release: it validates its configuration,
/// reports readiness with a status that says plainly it does no media work, and stops
/// cleanly. It never pretends to serve.
pub struct Idle {
    pub what: &'static str,
}

impl<C> Service<C> for Idle {
    fn status(&self) -> String {
        format!("configuration valid; {} is not implemented in this release", self.what)
    }
    fn reload(&mut self, _config: &C) -> Result<(), String> {
        Ok(())
    }
    fn stop(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_is_half_the_interval_for_this_process() {
        let own = std::process::id();
        let own_text = own.to_string();
        assert_eq!(watchdog_period(Some("3000000"), None, own), Some(Duration::from_millis(1500)));
        assert_eq!(watchdog_period(Some("3000000"), Some(&own_text), own), Some(Duration::from_millis(1500)));
        assert_eq!(watchdog_period(Some("1"), None, own), Some(Duration::from_micros(1)), "never a zero period");
    }

    #[test]
    fn no_watchdog_when_not_asked_or_meant_for_another_process() {
        let own = std::process::id();
        let other = (own + 1).to_string();
        assert_eq!(watchdog_period(None, None, own), None);
        assert_eq!(watchdog_period(Some("3000000"), Some(&other), own), None, "WATCHDOG_PID of another process");
        assert_eq!(watchdog_period(Some("0"), None, own), None);
        assert_eq!(watchdog_period(Some("soon"), None, own), None);
        assert_eq!(watchdog_period(Some("3000000"), Some("me"), own), None);
        assert_eq!(watchdog_period(None, Some(&own.to_string()), own), None);
    }

    #[test]
    fn journald_only_when_stderr_is_the_journal_stream() {
        assert!(logs_go_to_journal(Some("8:12345"), Some((8, 12345))));
        assert!(!logs_go_to_journal(None, Some((8, 12345))), "not started by systemd");
        assert!(!logs_go_to_journal(Some("8:12345"), Some((8, 999))), "stderr redirected after systemd started us");
        assert!(!logs_go_to_journal(Some("8:12345"), None), "stderr closed");
        assert!(!logs_go_to_journal(Some("garbage"), Some((8, 12345))));
        assert!(!logs_go_to_journal(Some(""), Some((0, 0))));
    }

    #[test]
    fn stderr_is_journal_reads_the_real_stderr() {
        use std::os::unix::fs::MetadataExt;
        // The test's own stderr is no journal stream unless JOURNAL_STREAM names it.
        let meta = std::fs::metadata("/proc/self/fd/2").expect("stderr");
        let named = format!("{}:{}", meta.dev(), meta.ino());
        assert_eq!(stderr_is_journal(), std::env::var("JOURNAL_STREAM").ok().as_deref() == Some(named.as_str()));
    }
}
