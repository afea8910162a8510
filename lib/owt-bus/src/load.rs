//! The load a worker reports: the process's share of the machine's CPU time over the last
//! interval, from `/proc/self/stat` (OWT's `cpu` load collector measures the whole machine;
//! a worker's own share is what scheduling across workers on one host needs).

use std::time::Instant;

/// Measures this process's CPU share between calls to [`CpuLoad::sample`].
#[derive(Debug)]
pub struct CpuLoad {
    last: Option<(u64, Instant)>,
    ticks_per_second: f64,
    cpus: f64,
}

impl Default for CpuLoad {
    fn default() -> Self {
        CpuLoad::new()
    }
}

impl CpuLoad {
    pub fn new() -> CpuLoad {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut load =
            CpuLoad { last: None, ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 }, cpus: cpus as f64 };
        load.sample();
        load
    }

    /// CPU share since the previous call (or since creation), 0 to 1; 0 when unknown.
    pub fn sample(&mut self) -> f64 {
        let now = Instant::now();
        let Some(ticks) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| cpu_ticks(&s)) else {
            return 0.0;
        };
        let share = match self.last {
            Some((last_ticks, last_at)) => {
                let wall = now.duration_since(last_at).as_secs_f64();
                share(ticks.saturating_sub(last_ticks), self.ticks_per_second, wall, self.cpus)
            }
            None => 0.0,
        };
        self.last = Some((ticks, now));
        share
    }
}

fn share(ticks: u64, ticks_per_second: f64, wall_seconds: f64, cpus: f64) -> f64 {
    if wall_seconds <= 0.0 {
        return 0.0;
    }
    (ticks as f64 / ticks_per_second / (wall_seconds * cpus)).clamp(0.0, 1.0)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted after
/// its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "1234 (owt (web) rtc) S 1 1234 1234 0 -1 4194560 500 0 0 0 70 30 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_ticks(line), Some(100));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn share_of_all_cpus() {
        assert_eq!(share(100, 100.0, 1.0, 2.0), 0.5);
        assert_eq!(share(400, 100.0, 1.0, 2.0), 1.0);
        assert_eq!(share(0, 100.0, 1.0, 2.0), 0.0);
        assert_eq!(share(5, 100.0, 0.0, 2.0), 0.0);
    }

    #[test]
    fn a_busy_thread_shows_up() {
        let mut load = CpuLoad::new();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let measured = load.sample();
        assert!(measured > 0.0 && measured <= 1.0, "{measured}");
    }
}
