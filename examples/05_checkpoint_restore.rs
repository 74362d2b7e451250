//! Checkpoints survive a killed process: a job resumed from its checkpoint directory produces
//! exactly the output of a job that never stopped.
//!
//! The example writes 200,000 sensor readings (`sensor,timestamp,value`) into eight text files,
//! then runs a keyed, windowed job over them: parse, key by sensor, and one-minute tumbling
//! event-time windows with a count, sum and maximum per sensor, written by the two-phase-commit
//! file sink. It runs the job three times:
//!
//! 1. in a child process (this program, started again in a child role), slowed down, with a
//!    checkpoint every 200 ms; once two checkpoints completed and some part files are committed
//!    while others are still in progress or pending, the child is killed (`Child::kill`: a real
//!    process kill, nothing flushed or cleaned up);
//! 2. in a second child, resuming from the latest checkpoint in the same directories: sources
//!    seek back to their checkpointed byte offsets, the open windows get their state back,
//!    and the file sink commits the part files the checkpoint left pending and deletes the
//!    killed run's uncommitted files;
//! 3. uninterrupted, as the reference.
//!
//! The committed output (the sorted lines of every file without a leading dot) of the killed
//! and resumed run equals the reference's, which the example checks and prints.
//!
//! Run it with `cargo run --release --example 05_checkpoint_restore`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use rivulet::prelude::*;
use rivulet::runtime::checkpoint::CheckpointConfig;
use rivulet::runtime::sink::FileSink;
use rivulet::runtime::source::TextFileSource;
use serde::{Deserialize, Serialize};

const FILES: u64 = 8;
const SENSORS: u64 = 32;
const READINGS: u64 = 200_000;
const PARALLELISM: usize = 4;
/// Selects the child's role: `first` (slow, killed) or `resume`.
const ROLE: &str = "RIVULET_EXAMPLE_05_ROLE";

/// Line `i` of input file `file`. Each sensor's readings are in one file, in time order.
fn reading(file: u64, i: u64) -> String {
    let sensor = file + FILES * (i % (SENSORS / FILES));
    let timestamp = 1_700_000_000_000 + i * 1_000;
    let mut x = (file * READINGS + i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let milli = 15_000 + x % 15_000;
    format!(
        "sensor-{sensor:02},{timestamp},{}.{:03}",
        milli / 1000,
        milli % 1000
    )
}

/// The rolling statistics of one sensor, as of its latest reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SensorStats {
    sensor: String,
    readings: u64,
    sum: f64,
    max: f64,
    last_timestamp: i64,
}

impl std::fmt::Display for SensorStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{:.3},{:.3}",
            self.sensor, self.readings, self.last_timestamp, self.sum, self.max
        )
    }
}

/// Parses `sensor,timestamp,value`; malformed lines are dropped.
fn parse(line: &str) -> Option<SensorStats> {
    let mut fields = line.split(',');
    let sensor = fields.next()?.to_owned();
    let last_timestamp = fields.next()?.parse().ok()?;
    let value: f64 = fields.next()?.parse().ok()?;
    Some(SensorStats {
        sensor,
        readings: 1,
        sum: value,
        max: value,
        last_timestamp,
    })
}

/// Where one run reads, checkpoints and writes.
struct Dirs {
    input: PathBuf,
    output: PathBuf,
    checkpoints: PathBuf,
}

/// How a run of the job is set up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    /// Checkpointed and slowed down, to be killed.
    First,
    /// Checkpointed, resuming from the latest checkpoint.
    Resume,
    /// Without checkpoints: the sink commits when the input ends.
    Reference,
}

fn run_job(dirs: &Dirs, run: Run) -> Result<JobResult, JobError> {
    let mut env = StreamEnv::new().with_parallelism(PARALLELISM);
    if run != Run::Reference {
        let mut checkpoints =
            CheckpointConfig::every(Duration::from_millis(200)).with_directory(&dirs.checkpoints);
        if run == Run::Resume {
            checkpoints = checkpoints.resume_from_latest();
        }
        env = env.with_checkpointing(checkpoints);
    }
    // The first run is slowed down so the kill lands mid-job: 20 ms per 256 readings and
    // subtask. The throttle is part of every run: a restore maps state to operators by their
    // position in the job, so the resumed job must have the same operators.
    let slow = run == Run::First;
    let mut seen = 0u64;
    // Event time per file (split): each file is in time order, the watermark trails by 5 s.
    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
        .with_timestamp_assigner(|line: &String, _| {
            line.split(',')
                .nth(1)
                .and_then(|ts| ts.parse().ok())
                .unwrap_or(i64::MIN)
        });
    let readings = env
        .from_source_with_watermarks(TextFileSource::new([&dirs.input]), strategy)
        .uid("readings")
        .flat_map(|line: String| parse(&line))
        .name("Parse")
        .uid("parse")
        .map(move |r| {
            seen += 1;
            if slow && seen.is_multiple_of(256) {
                std::thread::sleep(Duration::from_millis(20));
            }
            r
        })
        .name("Throttle")
        .uid("throttle");
    // One-minute tumbling statistics per sensor, final when the watermark passes the minute.
    readings
        .key_by(|r| r.sensor.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
        .reduce(|acc, next| SensorStats {
            sensor: acc.sensor,
            readings: acc.readings + next.readings,
            sum: acc.sum + next.sum,
            max: acc.max.max(next.max),
            last_timestamp: acc.last_timestamp.max(next.last_timestamp),
        })
        .name("Minute stats")
        .uid("minute-stats")
        .sink(FileSink::new(&dirs.output).with_part_suffix(".csv"))
        .name("Sink: files")
        .uid("files");
    env.execute("sensor statistics")
}

fn write_input(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for file in 0..FILES {
        let mut out = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("readings-{file}.csv")),
        )?);
        for i in 0..READINGS / FILES {
            writeln!(out, "{}", reading(file, i))?;
        }
        out.flush()?;
    }
    Ok(())
}

/// The completed checkpoints in `dir`, by id.
fn completed_checkpoints(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("_metadata").is_file())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// The names in `dir`: committed files and hidden (in-progress or pending) ones.
fn part_files(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut committed = Vec::new();
    let mut hidden = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            hidden.push(name);
        } else {
            committed.push(entry.path());
        }
    }
    committed.sort();
    hidden.sort();
    (committed, hidden)
}

/// The sorted lines of every committed file in `dir`.
fn committed_lines(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for path in part_files(dir).0 {
        lines.extend(std::fs::read_to_string(path)?.lines().map(str::to_owned));
    }
    lines.sort_unstable();
    Ok(lines)
}

fn child(role: &str, dirs: &Dirs) -> Result<(), JobError> {
    let run = if role == "first" {
        Run::First
    } else {
        Run::Resume
    };
    println!("  [child {}] running the job ({run:?})", std::process::id());
    let result = run_job(dirs, run)?;
    let read = result
        .operator("Source: text files")
        .map_or(0, |s| s.records_out);
    println!(
        "  [child {}] finished in {:.2?}: read {read} of {READINGS} readings, {} checkpoints completed",
        std::process::id(),
        result.duration,
        result.checkpoints
    );
    Ok(())
}

fn spawn(role: &str, dirs: &Dirs) -> std::io::Result<std::process::Child> {
    Command::new(std::env::current_exe()?)
        .env(ROLE, role)
        .arg(&dirs.input)
        .arg(&dirs.output)
        .arg(&dirs.checkpoints)
        .spawn()
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Ok(role) = std::env::var(ROLE) {
        let mut args = std::env::args_os().skip(1).map(PathBuf::from);
        let (Some(input), Some(output), Some(checkpoints)) =
            (args.next(), args.next(), args.next())
        else {
            return Err("a child needs the input, output and checkpoint directories".into());
        };
        child(
            &role,
            &Dirs {
                input,
                output,
                checkpoints,
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    let base = std::env::temp_dir().join(format!(
        "rivulet-05-checkpoint-restore-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let input = base.join("input");
    write_input(&input)?;
    println!(
        "wrote {READINGS} readings of {SENSORS} sensors into {FILES} files in {}",
        input.display()
    );
    let dirs = Dirs {
        input: input.clone(),
        output: base.join("output"),
        checkpoints: base.join("checkpoints"),
    };

    println!();
    println!("1. run the job in a child process, checkpointing every 200 ms, and kill it");
    let started = Instant::now();
    let mut first = spawn("first", &dirs)?;
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Some(status) = first.try_wait()? {
            println!(
                "  the child ended ({status}) before it could be killed; the resumed run will have nothing left to do"
            );
            break;
        }
        let checkpoints = completed_checkpoints(&dirs.checkpoints);
        // Kill while some output is committed and some is not yet.
        let (committed, uncommitted) = part_files(&dirs.output);
        if checkpoints.len() >= 2 && !committed.is_empty() && !uncommitted.is_empty() {
            let lines = committed_lines(&dirs.output)?.len();
            println!(
                "  after {:.2?}: checkpoints {checkpoints:?} complete, {} committed part files with {lines} lines",
                started.elapsed(),
                committed.len()
            );
            first.kill()?;
            let status = first.wait()?;
            println!("  killed child {} ({status})", first.id());
            break;
        }
        if Instant::now() > deadline {
            first.kill()?;
            return Err("no checkpoint completed within two minutes".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (committed, hidden) = part_files(&dirs.output);
    println!(
        "  left behind: {} committed part files, uncommitted {hidden:?}, checkpoints {:?}",
        committed.len(),
        completed_checkpoints(&dirs.checkpoints)
    );

    println!();
    println!(
        "2. resume the job from its latest checkpoint (chk-{}) in a second child process",
        completed_checkpoints(&dirs.checkpoints)
            .last()
            .map_or("none".to_owned(), u64::to_string)
    );
    let status = spawn("resume", &dirs)?.wait()?;
    if !status.success() {
        println!("  the resumed job failed ({status})");
        return Ok(ExitCode::FAILURE);
    }
    let (committed, hidden) = part_files(&dirs.output);
    println!(
        "  the resumed job finished: {} committed part files, uncommitted {hidden:?}",
        committed.len()
    );

    println!();
    println!("3. run the job uninterrupted, as the reference");
    let reference = Dirs {
        input,
        output: base.join("reference"),
        checkpoints: base.join("reference-checkpoints"),
    };
    let result = run_job(&reference, Run::Reference)?;
    println!("  finished in {:.2?}", result.duration);

    let resumed = committed_lines(&dirs.output)?;
    let expected = committed_lines(&reference.output)?;
    let equal = resumed == expected && hidden.is_empty();
    println!();
    println!(
        "killed + resumed run: {} lines; uninterrupted run: {} lines; same output: {}",
        resumed.len(),
        expected.len(),
        if equal { "yes" } else { "NO" }
    );
    if !equal {
        println!(
            "the directories are kept for inspection in {}",
            base.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    std::fs::remove_dir_all(&base)?;
    Ok(ExitCode::SUCCESS)
}
