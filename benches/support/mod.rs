//! What the benches share: the process's CPU time, for records per CPU-second.

use std::time::Duration;

/// User + system CPU time of the whole process (every thread, live or ended).
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces; `utime` and
    // `stime` are fields 14 and 15 of the line, 12th and 13th after the name.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Clock ticks are 1/100 s on Linux (`getconf CLK_TCK`).
    Some(Duration::from_millis((utime + stime) * 10))
}
