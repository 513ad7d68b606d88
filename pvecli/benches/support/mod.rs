//! Shared by the whole-command benchmarks: timing a command over many
//! runs, with the CPU time its processes used.

use std::time::{Duration, Instant};

/// Times `runs` runs of `run` (after one warm-up run, index 0) and prints
/// wall-time figures and CPU time per run.
pub fn measure(label: &str, runs: usize, mut run: impl FnMut(usize)) {
    let cpu_before = children_cpu_seconds();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for i in 0..=runs {
        let started = Instant::now();
        run(i);
        if i > 0 {
            // The first run warms the page cache.
            times.push(started.elapsed());
        }
    }
    let cpu_per_run = (children_cpu_seconds() - cpu_before) / (runs + 1) as f64;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}, {runs} runs: min {:.1} ms, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[runs / 2]),
        ms(times[runs * 9 / 10]),
        ms(times[runs - 1])
    );
    println!(
        "  CPU time (user + system) per run: {:.1} ms (independent of other load; the wall time above is not)",
        cpu_per_run * 1000.0
    );
}

/// User + system CPU seconds of this process's waited-for children, from
/// `/proc/self/stat` (fields 16 and 17, in clock ticks of 10 ms).
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; fields after it follow ')'.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a number");
    (ticks(16) + ticks(17)) / 100.0
}
