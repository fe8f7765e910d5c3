//! CPU time, RSS and thread count of a process from /proc, for sampling the server under test
//! (and ourselves). Linux only.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    pub threads: u64,
}

/// `pid` or `None` for this process.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let dir = pid.map_or_else(|| "/proc/self".to_owned(), |pid| format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let (cpu_ticks, threads) = parse_stat(&stat)?;
    let rss_kb = parse_rss_kb(&status)?;
    Some(ProcSample {
        at: Instant::now(),
        cpu_ticks,
        rss_kb,
        threads,
    })
}

/// (utime + stime, num_threads) from `/proc/<pid>/stat`. The command name may hold spaces and
/// parentheses, so fields are counted after the last `)` (proc(5): state is field 3).
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(20)?))
}

fn parse_rss_kb(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU use between two samples as a percentage of one core.
pub fn cpu_percent(from: &ProcSample, to: &ProcSample) -> f64 {
    let seconds = to.at.saturating_duration_since(from.at).as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / ticks_per_second() / seconds * 100.0
}

/// Lifts the soft open-files limit to the hard one: a run holds one socket per peer connection.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass; no other preconditions.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "1234 (node (main)) S 1 1234 1234 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 11 0 1 2 3";
        assert_eq!(parse_stat(stat), Some((300, 11)));
    }

    #[test]
    fn rss_comes_from_vmrss() {
        assert_eq!(
            parse_rss_kb("Name:\tjanus\nVmRSS:\t   40960 kB\nThreads:\t3\n"),
            Some(40960)
        );
        assert_eq!(parse_rss_kb("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(None).expect("/proc/self");
        assert!(s.rss_kb > 0 && s.threads >= 1);
    }
}
