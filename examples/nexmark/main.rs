//! The Nexmark throughput runner: runs the queries of `queries.rs` over the generator (or
//! pre-generated batches, or CSV files) into a counting sink and prints, per query, events,
//! elapsed seconds, events per second, events per CPU-second of the whole process (generator
//! included) and peak memory.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q5 --events 10000000 --parallelism 1
//! cargo run --release --example nexmark -- --query all --events 10000000 --parallelism 2
//! cargo run --release --example nexmark -- --generator-only --events 10000000
//! cargo run --release --example nexmark -- --query q0 --replay          # engine only
//! cargo run --release --example nexmark -- --write-csv /tmp/nexmark --events 1000000
//! cargo run --release --example nexmark -- --query all --input /tmp/nexmark
//! ```
//!
//! `events` counts every event of the mix (person:auction:bid = 1:3:46), as Flink's suite
//! does, whichever streams a query reads. CPU time is read from `/proc/self/stat` and peak
//! memory from `VmHWM` in `/proc/self/status` (reset before each query through
//! `/proc/self/clear_refs`), so those columns need Linux.

mod queries;

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rivulet::runtime::sink::TableSink;
use rivulet::runtime::source::{
    NEXMARK_FIRST_EVENT_RATE, NexmarkSource, NexmarkStream, Source, SourcePoll, SourceReader,
};
use rivulet::table::prelude::*;

use queries::Input;

struct Args {
    query: String,
    events: u64,
    parallelism: usize,
    batch_size: usize,
    generator_only: bool,
    replay: bool,
    write_csv: Option<PathBuf>,
    input: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        query: "all".into(),
        events: 10_000_000,
        parallelism: 1,
        batch_size: 4096,
        generator_only: false,
        replay: false,
        write_csv: None,
        input: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String, what: &str| -> Result<u64, String> {
            v.replace('_', "")
                .parse()
                .map_err(|e| format!("{what} {v:?}: {e}"))
        };
        match flag.as_str() {
            "--query" => args.query = value()?,
            "--events" => args.events = number(value()?, "--events")?,
            "--parallelism" => {
                args.parallelism = number(value()?, "--parallelism")?.max(1) as usize
            }
            "--batch-size" => args.batch_size = number(value()?, "--batch-size")?.max(1) as usize,
            "--generator-only" => args.generator_only = true,
            "--replay" => args.replay = true,
            "--write-csv" => args.write_csv = Some(value()?.into()),
            "--input" => args.input = Some(value()?.into()),
            other => {
                return Err(format!(
                    "unknown flag {other}; use --query qN|all, --events N, --parallelism P, --batch-size N, --generator-only, --replay, --write-csv DIR, --input DIR"
                ));
            }
        }
    }
    Ok(args)
}

/// A sink that only counts the rows it receives (of any row kind).
#[derive(Clone)]
struct CountSink {
    rows: Arc<AtomicU64>,
}

impl TableSink for CountSink {
    fn name(&self) -> String {
        "Sink: count".to_owned()
    }

    fn write_batch(&mut self, batch: ChangelogBatch) -> Result<(), rivulet::runtime::BoxError> {
        self.rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in USER_HZ, 100 per second on every supported architecture.
    Some(Duration::from_millis(ticks * 10))
}

/// The peak resident set size in MiB since the last reset.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak resident set size to the current one (Linux 4.0 and later).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Measured {
    name: String,
    rows: u64,
    elapsed: Duration,
    cpu: Option<Duration>,
    peak_mib: Option<f64>,
}

/// Runs `job` (which builds a pipeline ending in a count sink and executes it), measuring it
/// and printing progress every 10 s.
fn measure(
    name: &str,
    job: impl FnOnce(Arc<AtomicU64>) -> Result<(), Box<dyn Error>>,
) -> Result<Measured, Box<dyn Error>> {
    reset_peak_memory();
    let rows = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let progress = {
        let (rows, done, name) = (Arc::clone(&rows), Arc::clone(&done), name.to_owned());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = Duration::from_secs(10);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if started.elapsed() >= next {
                    eprintln!(
                        "  {name}: {:.0} s, {} rows out so far",
                        started.elapsed().as_secs_f64(),
                        rows.load(Ordering::Relaxed)
                    );
                    next += Duration::from_secs(10);
                }
            }
        })
    };
    let cpu_before = cpu_time();
    let started = Instant::now();
    let result = job(Arc::clone(&rows));
    let elapsed = started.elapsed();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    result?;
    Ok(Measured {
        name: name.to_owned(),
        rows: rows.load(Ordering::Relaxed),
        elapsed,
        cpu,
        peak_mib: peak_memory_mib(),
    })
}

fn stream_env(args: &Args) -> StreamEnv {
    StreamEnv::new()
        .with_parallelism(args.parallelism)
        .with_batch_size(args.batch_size)
}

fn run_query(name: &str, args: &Args, input: &Input) -> Result<Measured, Box<dyn Error>> {
    measure(name, |rows| {
        let env = TableEnv::streaming(stream_env(args));
        let table = queries::query(name, &env, input)?;
        table.to_changelog_stream()?.sink_table(CountSink { rows });
        env.stream_env().execute(name)?;
        Ok(())
    })
}

/// The generator alone: all three streams into counting sinks.
fn run_generator(args: &Args) -> Result<Measured, Box<dyn Error>> {
    measure("generator", |rows| {
        let env = stream_env(args);
        for stream in NexmarkStream::ALL {
            env.from_source(NexmarkSource::new(stream, args.events))
                .sink_table(CountSink {
                    rows: Arc::clone(&rows),
                });
        }
        env.execute("generator")?;
        Ok(())
    })
}

/// Writes the generator's events as `DIR/person.csv`, `auction.csv`, `bid.csv`: no header,
/// standard column order, timestamps as `YYYY-MM-DD HH:MM:SS.fff` (UTC).
fn write_csv(dir: &PathBuf, args: &Args) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    for stream in NexmarkStream::ALL {
        let path = queries::csv_path(dir, stream);
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(false)
            .with_timestamp_format("%Y-%m-%d %H:%M:%S%.3f".to_owned())
            .build(file);
        let source = NexmarkSource::new(stream, args.events);
        let mut rows = 0u64;
        for split in source.splits(1).map_err(|e| e as Box<dyn Error>)? {
            let mut reader = source
                .create_reader(split)
                .map_err(|e| e as Box<dyn Error>)?;
            while let SourcePoll::Ready(batch) = reader
                .poll(args.batch_size)
                .map_err(|e| e as Box<dyn Error>)?
            {
                rows += batch.num_rows() as u64;
                writer.write(batch.data())?;
            }
        }
        println!("wrote {rows} rows to {}", path.display());
    }
    Ok(())
}

fn print_header() {
    println!(
        "{:<10} {:>12} {:>10} {:>14} {:>16} {:>12} {:>10}",
        "query", "events", "elapsed s", "events/s", "events/CPU-s", "rows out", "peak MiB"
    );
}

fn print_row(m: &Measured, events: u64) {
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    let per_cpu = m
        .cpu
        .filter(|c| !c.is_zero())
        .map(|c| format!("{:.0}", events as f64 / c.as_secs_f64()))
        .unwrap_or_else(|| "n/a".into());
    let peak = m
        .peak_mib
        .map(|p| format!("{p:.0}"))
        .unwrap_or_else(|| "n/a".into());
    println!(
        "{:<10} {:>12} {:>10.2} {:>14.0} {:>16} {:>12} {:>10}",
        m.name,
        events,
        secs,
        events as f64 / secs,
        per_cpu,
        m.rows,
        peak
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    if let Some(dir) = &args.write_csv {
        return write_csv(dir, &args);
    }
    println!(
        "nexmark: {} events, parallelism {}, batch size {}, input {}",
        args.events,
        args.parallelism,
        args.batch_size,
        match (&args.input, args.replay) {
            (Some(dir), _) => format!("CSV files in {}", dir.display()),
            (None, true) => "pre-generated batches in memory".to_owned(),
            (None, false) => "the generator".to_owned(),
        }
    );
    print_header();
    if args.generator_only {
        let m = run_generator(&args)?;
        print_row(&m, args.events);
        return Ok(());
    }
    let input = match (&args.input, args.replay) {
        (Some(dir), _) => Input::Csv(dir.clone()),
        (None, true) => {
            let started = Instant::now();
            let input = Input::replay(args.events, args.batch_size)?;
            eprintln!(
                "  pre-generated {} events in {:.2} s",
                args.events,
                started.elapsed().as_secs_f64()
            );
            input
        }
        (None, false) => Input::Generate {
            events: args.events,
            events_per_second: NEXMARK_FIRST_EVENT_RATE,
        },
    };
    let names: Vec<&str> = if args.query == "all" {
        queries::QUERIES.to_vec()
    } else {
        args.query.split(',').collect()
    };
    for name in names {
        match run_query(name, &args, &input) {
            Ok(m) => print_row(&m, args.events),
            Err(e) => println!("{name:<10} failed: {e}"),
        }
    }
    Ok(())
}
