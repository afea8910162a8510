//! CPU time and resident memory of server processes, from /proc.

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
    }
}
