//! The shell every owt-rs daemon runs in, so the binaries stay thin:
//! - common arguments (`--config-dir`, `--config`, `--check-config`);
//! - configuration loading through `owt-config`, with errors naming file and key;
//! - tracing to journald when started by systemd (stderr is the journal stream), to stderr
//!   otherwise, with the level reloadable;
//! - sd_notify `READY`/`STATUS`/`RELOADING`/`STOPPING` and watchdog pings;
//! - SIGTERM/SIGINT: graceful stop; SIGHUP: configuration reload.

use owt_config::{ConfigError, DaemonConfig, Source};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;
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
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    stream == format!("{}:{}", meta.dev(), meta.ino())
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

/// Pings the systemd watchdog at half its interval while the process lives.
fn spawn_watchdog() {
    let Some(usec) = std::env::var("WATCHDOG_USEC").ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    let _ = std::thread::Builder::new().name("watchdog".into()).spawn(move || loop {
        notify(&[("WATCHDOG", "1")]);
        std::thread::sleep(period);
    });
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
    spawn_watchdog();
    for event in events {
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
