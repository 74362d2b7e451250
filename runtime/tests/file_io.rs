//! Files in and out: the text file source reads every line once and resumes from a byte offset;
//! the two-phase-commit file sink commits at the end without checkpoints, and exactly once with
//! checkpoints across a failure and restore.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use rivulet_runtime::checkpoint::{CheckpointConfig, RestartStrategy};
use rivulet_runtime::source::{
    FileSplit, Source, SourcePoll, SourceReader, TextFileReader, TextFileSource,
};
use rivulet_runtime::{BoxError, Records, StreamEnv};

mod common;

use common::CheckpointWatch;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rivulet-file-io-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `files` input files of `lines` lines each (file `f` has `lines + f` lines, so they
/// differ) and returns every line written, sorted.
fn write_input(dir: &Path, files: usize, lines: usize) -> Vec<String> {
    let mut all = Vec::new();
    for f in 0..files {
        let text: Vec<String> = (0..lines + f).map(|i| format!("file{f}-line{i}")).collect();
        std::fs::write(dir.join(format!("input-{f}.txt")), text.join("\n") + "\n").unwrap();
        all.extend(text);
    }
    all.sort();
    all
}

/// The committed lines of a file sink's directory, sorted; fails on uncommitted files.
fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with('.'),
            "uncommitted file {name:?} remains in {dir:?}"
        );
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.sort();
    lines
}

#[test]
fn the_source_reads_every_line_of_several_files_at_parallelism_2() {
    let input = TempDir::new("source");
    let expected = write_input(input.path(), 5, 3_000);
    let env = StreamEnv::new().with_parallelism(2).with_batch_size(100);
    let lines = env.read_text_files([input.path()]).collect();
    let result = env.execute("read files").unwrap();
    assert_eq!(
        result.operator("Source: text files").unwrap().parallelism,
        2
    );
    assert!(lines.take_sorted() == expected);
}

#[test]
fn the_source_resumes_from_a_mid_file_offset() {
    let input = TempDir::new("resume");
    write_input(input.path(), 2, 1_000);
    let source = TextFileSource::new([input.path()]);
    let splits = source.splits(2).unwrap();
    assert_eq!(splits.len(), 2);
    let read_rest = |mut reader: TextFileReader| {
        let mut lines = Vec::new();
        while let SourcePoll::Ready(batch) = reader.poll(64).unwrap() {
            lines.extend(batch.into_values());
        }
        lines
    };
    let full = read_rest(source.create_reader(splits[1].clone()).unwrap());
    let mut reader = source.create_reader(splits[1].clone()).unwrap();
    let SourcePoll::Ready(head) = reader.poll(123).unwrap() else {
        panic!("expected lines")
    };
    let checkpointed = reader.snapshot();
    assert!(checkpointed.offset > 0);
    // The split survives a round trip through its serialized form, as in a checkpoint.
    let bytes = postcard::to_stdvec(&checkpointed).unwrap();
    let restored: FileSplit = postcard::from_bytes(&bytes).unwrap();
    let mut resumed = head.into_values();
    resumed.extend(read_rest(source.create_reader(restored).unwrap()));
    assert_eq!(resumed, full);
    assert_eq!(full.len(), 1_001);
    assert_eq!(full[123], "file1-line123");
}

#[test]
fn the_sink_without_checkpointing_commits_at_the_end() {
    let output = TempDir::new("sink-plain");
    let env = StreamEnv::new().with_parallelism(2);
    env.from_sequence(0..10_000)
        .map(|x| format!("record {x}"))
        .sink_to_files(output.path());
    env.execute("write files").unwrap();
    let mut expected: Vec<String> = (0..10_000).map(|x| format!("record {x}")).collect();
    expected.sort();
    assert!(committed_lines(output.path()) == expected);
    let mut parts: Vec<_> = std::fs::read_dir(output.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    parts.sort();
    assert_eq!(parts, vec!["part-0-0", "part-1-0"]);
}

/// The text file source, holding back the second half of each file until a checkpoint
/// completed, so a failure there always has a checkpoint to restore from.
#[derive(Clone)]
struct GatedFiles {
    files: TextFileSource,
    lines_before_gate: u64,
    checkpointed: Arc<AtomicBool>,
}

struct GatedReader {
    reader: TextFileReader,
    emitted: u64,
    lines_before_gate: u64,
    checkpointed: Arc<AtomicBool>,
}

impl Source for GatedFiles {
    type Batch = Records<String>;
    type Split = FileSplit;
    type Reader = GatedReader;

    fn splits(&self, parallelism: usize) -> Result<Vec<FileSplit>, BoxError> {
        self.files.splits(parallelism)
    }

    fn create_reader(&self, split: FileSplit) -> Result<GatedReader, BoxError> {
        Ok(GatedReader {
            reader: self.files.create_reader(split)?,
            emitted: 0,
            lines_before_gate: self.lines_before_gate,
            checkpointed: Arc::clone(&self.checkpointed),
        })
    }
}

impl SourceReader for GatedReader {
    type Batch = Records<String>;
    type Split = FileSplit;

    fn poll(&mut self, _max: usize) -> Result<SourcePoll<Records<String>>, BoxError> {
        if self.emitted >= self.lines_before_gate && !self.checkpointed.load(Ordering::SeqCst) {
            return Ok(SourcePoll::Idle);
        }
        // Small batches, so barriers fall between them often.
        let polled = self.reader.poll(50)?;
        if let SourcePoll::Ready(batch) = &polled {
            self.emitted += batch.len() as u64;
        }
        Ok(polled)
    }

    fn snapshot(&self) -> FileSplit {
        self.reader.snapshot()
    }
}

/// Where the copy job fails, once.
#[derive(Debug, Clone, Copy)]
enum Failure {
    None,
    /// At the first record after the first checkpoint completed.
    AfterFirstCheckpoint,
    /// At this line (which must lie behind the gate, so a checkpoint completed before it).
    AtLine(&'static str, usize),
}

/// Copies the input files to the sink with checkpoints, at parallelism 2, optionally failing
/// once after the first checkpoint completed; returns the restarts and completed checkpoints.
fn copy_with_checkpoints(input: &Path, output: &Path, fail: bool) -> (u32, u64) {
    let failure = if fail {
        Failure::AfterFirstCheckpoint
    } else {
        Failure::None
    };
    copy_with_failure(input, output, 2, failure)
}

fn copy_with_failure(
    input: &Path,
    output: &Path,
    parallelism: usize,
    failure: Failure,
) -> (u32, u64) {
    copy_with(input, output, parallelism, failure, false)
}

/// Copies the input files to the sink; `unaligned`: with unaligned checkpoints, and a
/// rebalance before the map so the barriers have queued data to overtake.
fn copy_with(
    input: &Path,
    output: &Path,
    parallelism: usize,
    failure: Failure,
    unaligned: bool,
) -> (u32, u64) {
    let checkpointed = Arc::new(AtomicBool::new(false));
    let env = StreamEnv::new()
        .with_parallelism(parallelism)
        .with_buffer_timeout(Duration::from_millis(1))
        .with_checkpointing(
            CheckpointConfig::every(Duration::from_millis(5)).with_unaligned(unaligned),
        )
        .with_restart_strategy(RestartStrategy::fixed_delay(2, Duration::ZERO));
    let lines = env.from_source(GatedFiles {
        files: TextFileSource::new([input]),
        lines_before_gate: 500,
        checkpointed: Arc::clone(&checkpointed),
    });
    lines.sink(CheckpointWatch(Arc::clone(&checkpointed)));
    let armed = Arc::new(AtomicBool::new(!matches!(failure, Failure::None)));
    let fail_at = match failure {
        Failure::AtLine(file, line) => Some(format!("{file}-line{line}")),
        _ => None,
    };
    let lines = if unaligned { lines.rebalance() } else { lines };
    lines
        .map(move |line| {
            let here = fail_at.as_ref().is_none_or(|at| *at == line);
            if here && checkpointed.load(Ordering::SeqCst) && armed.swap(false, Ordering::SeqCst) {
                panic!("injected failure at {line:?}");
            }
            line.to_uppercase()
        })
        .sink_to_files(output);
    let result = env.execute("copy files").unwrap();
    (result.restarts, result.checkpoints)
}

#[test]
fn the_sink_with_checkpoints_is_exactly_once_across_a_failure() {
    let input = TempDir::new("exactly-once-input");
    let lines = write_input(input.path(), 4, 1_000);
    let expected: Vec<String> = {
        let mut upper: Vec<String> = lines.iter().map(|l| l.to_uppercase()).collect();
        upper.sort();
        upper
    };

    let uninterrupted = TempDir::new("exactly-once-reference");
    let (restarts, _) = copy_with_checkpoints(input.path(), uninterrupted.path(), false);
    assert_eq!(restarts, 0);
    let reference = committed_lines(uninterrupted.path());
    assert!(reference == expected, "{} lines", reference.len());

    let restored = TempDir::new("exactly-once-restored");
    let (restarts, checkpoints) = copy_with_checkpoints(input.path(), restored.path(), true);
    assert_eq!(restarts, 1);
    assert!(checkpoints >= 1);
    let output = committed_lines(restored.path());
    assert!(
        output == reference,
        "restored run: {} lines, uninterrupted: {}",
        output.len(),
        reference.len()
    );
}

#[test]
fn a_restore_after_a_subtask_finished_is_exactly_once() {
    // Subtask 0 reads a one-line file and finishes at once, so the checkpoint the failure
    // restores from records it as finished; its split is not read again.
    let input = TempDir::new("finished-input");
    std::fs::write(input.path().join("input-0.txt"), "only line\n").unwrap();
    let big: Vec<String> = (0..2_000).map(|i| format!("line {i}")).collect();
    std::fs::write(input.path().join("input-1.txt"), big.join("\n")).unwrap();
    let mut expected: Vec<String> = big.iter().map(|l| l.to_uppercase()).collect();
    expected.push("ONLY LINE".to_owned());
    expected.sort();

    let output = TempDir::new("finished-output");
    let (restarts, _) = copy_with_checkpoints(input.path(), output.path(), true);
    assert_eq!(restarts, 1);
    let lines = committed_lines(output.path());
    assert!(lines == expected, "{} lines", lines.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Wherever behind the gate the failure strikes, and at any parallelism, the committed
    /// output is every input line exactly once.
    #[test]
    fn any_failure_point_commits_exactly_once(
        file in 0usize..3,
        line in 500usize..1_000,
        parallelism in 1usize..4,
    ) {
        let input = TempDir::new("any-failure-input");
        let lines = write_input(input.path(), 3, 1_000);
        let mut expected: Vec<String> = lines.iter().map(|l| l.to_uppercase()).collect();
        expected.sort();
        let output = TempDir::new("any-failure-output");
        let file: &'static str = ["file0", "file1", "file2"][file];
        let (restarts, _) =
            copy_with_failure(input.path(), output.path(), parallelism, Failure::AtLine(file, line));
        prop_assert_eq!(restarts, 1);
        let committed = committed_lines(output.path());
        prop_assert!(committed == expected, "{} lines", committed.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// With unaligned checkpoints too, wherever behind the gate the failure strikes, the
    /// committed output is every input line exactly once, including a subtask that finished
    /// (its file is a single line) before the failure.
    #[test]
    fn unaligned_checkpoints_commit_exactly_once(
        file in 0usize..3,
        line in 500usize..1_000,
        parallelism in 1usize..4,
    ) {
        let input = TempDir::new("unaligned-input");
        let mut lines = write_input(input.path(), 3, 1_000);
        std::fs::write(input.path().join("input-short.txt"), "only line\n").unwrap();
        lines.push("only line".to_owned());
        let mut expected: Vec<String> = lines.iter().map(|l| l.to_uppercase()).collect();
        expected.sort();
        let output = TempDir::new("unaligned-output");
        let file: &'static str = ["file0", "file1", "file2"][file];
        let (restarts, _) = copy_with(
            input.path(),
            output.path(),
            parallelism,
            Failure::AtLine(file, line),
            true,
        );
        prop_assert_eq!(restarts, 1);
        let committed = committed_lines(output.path());
        prop_assert!(committed == expected, "{} lines", committed.len());
    }
}
