//! This process's memory as Linux reports it, for tests that show a bound holds (never a
//! threshold in a test: the numbers are printed for the benchmarks).

/// The resident and peak memory of this process, in KiB, from /proc/self/status; `None`
/// where there is no such file (not Linux).
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
