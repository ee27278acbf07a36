//! What a process's figures are, read from `/proc`: CPU time and peak
//! resident memory, for the counters a service reports and for the testbed
//! that reads its children's (or a lab PC's, from the text it fetched).

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    parse_cpu_stat(&stat, if ticks > 0 { ticks as f64 } else { 100.0 })
}

/// CPU seconds (user + system) from the text of `/proc/PID/stat`.
pub fn parse_cpu_stat(stat: &str, ticks_per_s: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: field 3 (state) is index 0, utime (14) is 11, stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_s)
}

/// Peak resident memory of a process so far (`VmHWM` in `/proc/<pid>/status`), bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..].trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_and_peak_memory_are_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(peak_rss_bytes(std::process::id()).is_some_and(|b| b > 1 << 20));
    }

    #[test]
    fn cpu_time_is_utime_plus_stime_over_the_tick_rate() {
        let stat = "1234 (dl7 (x)) S 1 2 3 4 5 6 7 8 9 10 200 100 0 0 20 0 1 0";
        assert_eq!(parse_cpu_stat(stat, 100.0), Some(3.0));
        assert_eq!(parse_cpu_stat("garbage", 100.0), None);
    }
}
