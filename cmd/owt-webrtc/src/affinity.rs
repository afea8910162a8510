//! Keeps the runtime's worker threads on CPUs of their own (`[webrtc] pin_worker_threads`).
//!
//! A large fan-out is split over the worker threads (`node::deliver`). When the kernel put two
//! of them on one CPU while the other CPU ran another program, the parts ran one after the
//! other there, and the last copies of a frame left late (seen in `perf sched` traces of the
//! benchmark at 4x50: one worker running 3.3 ms of fan-out while the other waited on the same
//! CPU). Pinned, each worker has its CPU, and the split runs in parallel whenever it can.
//!
//! Two libc calls (`sched_getaffinity`, `sched_setaffinity`) do the work; a crate for them
//! would add nothing, and the mask the process may use (systemd's `CPUAffinity=`, a container's
//! cpuset) is read as it is, so a restricted node pins within it.

use std::io;

/// The CPUs the calling thread may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a cpu_set_t of the size passed; 0 names the calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: every index is below CPU_SETSIZE, the set's capacity.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &set) }).collect())
}

/// Keeps the calling thread on `cpu` from now on.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CPU {cpu} is out of range")));
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set; `cpu` is below its capacity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a cpu_set_t of the size passed; 0 names the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU of each of `workers` threads, one thread per allowed CPU in order; None unless there
/// are as many threads as allowed CPUs. More threads would share CPUs (better left to the kernel
/// to move); fewer would all start at the first CPU, and several nodes of one thread each (one
/// node per core) would all sit on it: those restrict each node's mask instead (systemd's
/// `CPUAffinity=`), and a mask of one CPU for a node of one thread pins it.
pub fn plan(workers: usize, allowed: &[usize]) -> Option<Vec<usize>> {
    (workers == allowed.len()).then(|| allowed.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cpu_per_worker_when_they_match_the_allowed_cpus() {
        assert_eq!(plan(2, &[0, 1]), Some(vec![0, 1]));
        assert_eq!(plan(2, &[3, 5]), Some(vec![3, 5]), "a restricted mask is kept");
        assert_eq!(plan(1, &[2]), Some(vec![2]), "one node per core, each with a mask of its own");
        assert_eq!(plan(3, &[3, 5]), None, "more threads than CPUs");
        assert_eq!(plan(1, &[0, 1, 2, 3]), None, "fewer: not all on the first CPU");
    }

    #[test]
    fn a_pinned_thread_runs_on_its_cpu_only() {
        let allowed = allowed_cpus().expect("affinity mask");
        assert!(!allowed.is_empty());
        let cpu = *allowed.last().expect("a CPU");
        let seen = std::thread::spawn(move || {
            pin_current_thread(cpu).expect("pin");
            allowed_cpus().expect("affinity mask")
        })
        .join()
        .expect("thread");
        assert_eq!(seen, vec![cpu]);
        // Only that thread: this one keeps its mask.
        assert_eq!(allowed_cpus().expect("affinity mask"), allowed);
        assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
    }
}
