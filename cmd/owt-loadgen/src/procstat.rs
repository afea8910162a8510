//! CPU time and resident memory of server processes, and the machine's stolen CPU time, from
//! /proc.

use std::path::Path;

/// utime + stime of a process, in seconds (clock ticks / sysconf(_SC_CLK_TCK)).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised comm (which may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / if ticks > 0.0 { ticks } else { 100.0 })
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Processes whose name (comm) is one of `names`.
pub fn pids_named(names: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("comm")).unwrap_or_default();
        if names.contains(&comm.trim()) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The machine's CPU time so far, all of it and the part stolen (the hypervisor ran something
/// else while a virtual CPU of this machine had work), in clock ticks: /proc/stat's first line.
pub fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineTicks {
    pub all: u64,
    pub stolen: u64,
}

impl MachineTicks {
    /// Percent of the machine's CPU time from `earlier` to `self` that was stolen.
    pub fn stolen_percent_since(&self, earlier: &MachineTicks) -> f64 {
        let all = self.all.saturating_sub(earlier.all);
        if all == 0 {
            return 0.0;
        }
        100.0 * self.stolen.saturating_sub(earlier.stolen) as f64 / all as f64
    }
}

fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // already counted in user and nice.
    let stolen = *ticks.get(7)?;
    Some(MachineTicks { all: ticks.iter().take(8).sum(), stolen })
}

/// Sum over `pids` of CPU seconds and RSS (KiB).
pub fn sample(pids: &[u32]) -> (f64, u64) {
    pids.iter().fold((0.0, 0), |(cpu, rss), &p| (cpu + cpu_seconds(p).unwrap_or(0.0), rss + rss_kib(p).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(super::cpu_seconds(me).is_some());
        assert!(super::rss_kib(me).unwrap() > 0);
        assert!(super::machine_ticks().is_some_and(|t| t.all > 0));
    }

    #[test]
    fn stolen_share_of_the_machine_time() {
        let before = super::parse_machine_ticks("cpu  100 5 50 800 10 0 5 30 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(before, super::MachineTicks { all: 1000, stolen: 30 });
        let after = super::parse_machine_ticks("cpu  150 5 60 1000 10 0 10 55 7 0\n").unwrap();
        // 290 ticks more, 25 of them stolen.
        assert!((after.stolen_percent_since(&before) - 100.0 * 25.0 / 290.0).abs() < 1e-9);
        assert_eq!(before.stolen_percent_since(&before), 0.0);
        assert_eq!(super::parse_machine_ticks("cpu  1 2 3\n"), None, "no steal field");
        assert_eq!(super::parse_machine_ticks("intr 5\n"), None);
    }
}
