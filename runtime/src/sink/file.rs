//! Exactly-once output to part files, with Flink's `FileSink` two-phase commit.
//!
//! Each subtask appends lines to one in-progress part file. At a checkpoint the file is closed
//! and becomes pending (the pre-commit), recorded in the checkpoint; when the checkpoint
//! completes, pending files are renamed to their final names (the commit). Only final files are
//! output; their names carry no leading dot:
//!
//! ```text
//! .part-<subtask>-<n>.inprogress   being written
//! .part-<subtask>-<n>.pending      closed at checkpoint c, waiting for c to complete
//! part-<subtask>-<n>               committed
//! ```
//!
//! The `part` prefix and an optional suffix (such as `.csv`) are set on the sink, as in Flink's
//! `OutputFileConfig`.

use std::fmt::{self, Display};
use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::batch::Records;
use crate::error::BoxError;
use crate::operator::OperatorContext;
use crate::operator::typed::SinkFunction;
use crate::source::FileError;

/// Formats a record as one line (without the newline) with its `Display`.
pub type DisplayFormat<T> = fn(&T, &mut dyn fmt::Write) -> fmt::Result;

fn display_line<T: Display>(record: &T, out: &mut dyn fmt::Write) -> fmt::Result {
    write!(out, "{record}")
}

/// A part file that was closed at checkpoint `checkpoint_id` and awaits its completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PendingPart {
    checkpoint_id: u64,
    /// The final name, e.g. `part-0-3`.
    name: String,
}

/// What a subtask of the sink checkpoints.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FileSinkState {
    /// The number of the next part file, so a restored subtask never reuses a name.
    next_part: u64,
    /// Part files closed at this or an earlier checkpoint and not yet committed.
    pending: Vec<PendingPart>,
}

/// The part file a subtask is writing.
#[derive(Debug)]
struct InProgress {
    name: String,
    file: File,
}

/// Writes one line per record to part files in a directory, exactly once with checkpointing.
///
/// With checkpointing, a record's line becomes visible (in a committed file) once a checkpoint
/// after it completed, or when the input ended; a failure and restore never exposes a line
/// twice or loses one. Without checkpointing, every subtask commits its single part file when
/// its input ends. Read the output as all files of the directory whose name does not start with
/// a dot; the lines of different subtasks are in different files.
///
/// # State
///
/// Per subtask: the names of the part files closed at a checkpoint and not yet committed, with
/// that checkpoint's id, and the number of the next part file. A pending file is dropped from
/// the state once a checkpoint at or after its own completed and it was renamed. A restored
/// subtask commits the pending files of its state (they belong to a completed checkpoint) and
/// deletes its in-progress and pending files that the state does not mention: the leftovers of
/// the failed attempt.
///
/// The end of the input commits everything at once. If another subtask then fails and the job
/// restores a checkpoint taken before that end, the restored subtask deletes the files it
/// committed after the checkpoint, since the restored job writes their records again: the
/// final output is exactly once, but a reader may briefly have seen those files.
///
/// ```
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::sink::FileSink;
///
/// let dir = std::env::temp_dir().join(format!("rivulet-doc-file-sink-{}", std::process::id()));
/// let env = StreamEnv::new().with_parallelism(1);
/// env.from_vec(vec![1u32, 2])
///     .sink(FileSink::with_format(&dir, |n: &u32, out| write!(out, "n={n}")));
/// env.execute("write").unwrap();
/// assert_eq!(std::fs::read_to_string(dir.join("part-0-0")).unwrap(), "n=1\nn=2\n");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct FileSink<T, F = DisplayFormat<T>> {
    directory: PathBuf,
    format: F,
    prefix: String,
    suffix: String,
    /// Whether commits wait for checkpoints (set at `open`).
    transactional: bool,
    subtask: usize,
    /// Whether leftovers were cleaned up and the part counter set.
    initialized: bool,
    next_part: u64,
    in_progress: Option<InProgress>,
    pending: Vec<PendingPart>,
    /// The lines of the batch being written.
    buffer: String,
    _types: PhantomData<fn(&T)>,
}

impl<T: Display> FileSink<T> {
    /// A sink writing each record's `Display` as a line into part files in `directory`, which
    /// is created if needed.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        FileSink::with_format(directory, display_line::<T>)
    }
}

impl<T, F> FileSink<T, F>
where
    F: Fn(&T, &mut dyn fmt::Write) -> fmt::Result,
{
    /// A sink writing the line `format` writes for each record (without a newline) into part
    /// files in `directory`, which is created if needed.
    pub fn with_format(directory: impl Into<PathBuf>, format: F) -> Self {
        FileSink {
            directory: directory.into(),
            format,
            prefix: "part".to_owned(),
            suffix: String::new(),
            transactional: false,
            subtask: 0,
            initialized: false,
            next_part: 0,
            in_progress: None,
            pending: Vec::new(),
            buffer: String::new(),
            _types: PhantomData,
        }
    }
}

impl<T, F: Clone> Clone for FileSink<T, F> {
    fn clone(&self) -> Self {
        FileSink {
            directory: self.directory.clone(),
            format: self.format.clone(),
            prefix: self.prefix.clone(),
            suffix: self.suffix.clone(),
            transactional: false,
            subtask: 0,
            initialized: false,
            next_part: 0,
            in_progress: None,
            pending: Vec::new(),
            buffer: String::new(),
            _types: PhantomData,
        }
    }
}

impl<T, F> FileSink<T, F> {
    /// Sets what part file names start with: `<prefix>-<subtask>-<n>`. Two sinks may share a
    /// directory only with different prefixes.
    ///
    /// Default: `part`.
    pub fn with_part_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets what part file names end with, e.g. `.csv`.
    ///
    /// Default: nothing.
    pub fn with_part_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// The final name of this subtask's part file `n`.
    fn part_name(&self, n: u64) -> String {
        format!("{}-{}-{n}{}", self.prefix, self.subtask, self.suffix)
    }

    /// The subtask and number of one of this sink's part files, in any state (final,
    /// in-progress or pending).
    fn parse_part_name(&self, file_name: &str) -> Option<(usize, u64)> {
        let name = file_name.strip_prefix('.').unwrap_or(file_name);
        let name = name
            .strip_suffix(".inprogress")
            .or_else(|| name.strip_suffix(".pending"))
            .unwrap_or(name);
        let name = name
            .strip_suffix(self.suffix.as_str())?
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')?;
        let (subtask, n) = name.split_once('-')?;
        Some((subtask.parse().ok()?, n.parse().ok()?))
    }

    fn in_progress_path(&self, name: &str) -> PathBuf {
        self.directory.join(format!(".{name}.inprogress"))
    }

    fn pending_path(&self, name: &str) -> PathBuf {
        self.directory.join(format!(".{name}.pending"))
    }

    /// Creates the directory, commits what a restored state holds, deletes this subtask's
    /// uncommitted leftovers and continues numbering after every part file of this subtask.
    ///
    /// A restored subtask also deletes its committed files numbered from the state's next part
    /// on: they were started after the checkpoint, so they hold only records the restored job
    /// replays. Such files exist when the subtask's input had ended (which commits everything)
    /// before another subtask failed.
    fn initialize(&mut self, restored: Option<FileSinkState>) -> Result<(), FileError> {
        std::fs::create_dir_all(&self.directory)
            .map_err(FileError::io("create", &self.directory))?;
        let mut replayed_from = u64::MAX;
        if let Some(state) = restored {
            for part in &state.pending {
                self.commit(&part.name)?;
            }
            self.next_part = self.next_part.max(state.next_part);
            replayed_from = state.next_part;
        }
        let entries =
            std::fs::read_dir(&self.directory).map_err(FileError::io("list", &self.directory))?;
        for entry in entries {
            let entry = entry.map_err(FileError::io("list", &self.directory))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let Some((subtask, n)) = self.parse_part_name(file_name) else {
                continue;
            };
            if subtask != self.subtask {
                continue;
            }
            if file_name.starts_with('.') || n >= replayed_from {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(FileError::io("delete", &path))?;
            } else {
                self.next_part = self.next_part.max(n + 1);
            }
        }
        self.initialized = true;
        Ok(())
    }

    fn ensure_initialized(&mut self) -> Result<(), FileError> {
        if self.initialized {
            return Ok(());
        }
        self.initialize(None)
    }

    /// Renames the pending file `name` to its final name; a pending file already renamed (its
    /// final file exists) counts as committed.
    fn commit(&self, name: &str) -> Result<(), FileError> {
        let pending = self.pending_path(name);
        let committed = self.directory.join(name);
        match std::fs::rename(&pending, &committed) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if committed.exists() {
                    Ok(())
                } else {
                    Err(FileError::MissingPending { pending, committed })
                }
            }
            Err(source) => Err(FileError::Io {
                action: "commit",
                path: pending,
                source,
            }),
        }
    }

    /// Closes the in-progress file, durably, and returns its name and path.
    fn close_in_progress(&mut self) -> Result<Option<(String, PathBuf)>, FileError> {
        let Some(InProgress { name, file }) = self.in_progress.take() else {
            return Ok(None);
        };
        let path = self.in_progress_path(&name);
        file.sync_all().map_err(FileError::io("sync", &path))?;
        Ok(Some((name, path)))
    }

    /// Commits the pending files of checkpoints up to `checkpoint_id`.
    fn commit_up_to(&mut self, checkpoint_id: u64) -> Result<(), FileError> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.checkpoint_id <= checkpoint_id);
        self.pending = waiting;
        for part in done {
            self.commit(&part.name)?;
        }
        Ok(())
    }
}

impl<T, F> SinkFunction<T> for FileSink<T, F>
where
    T: 'static,
    F: Fn(&T, &mut dyn fmt::Write) -> fmt::Result + Send + 'static,
{
    fn open(&mut self, ctx: &OperatorContext) -> Result<(), BoxError> {
        self.transactional = ctx.checkpointing();
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn write_batch(&mut self, batch: Records<T>) -> Result<(), BoxError> {
        self.ensure_initialized()?;
        if batch.is_empty() {
            return Ok(());
        }
        if self.in_progress.is_none() {
            let name = self.part_name(self.next_part);
            self.next_part += 1;
            let path = self.in_progress_path(&name);
            let file = File::create(&path).map_err(FileError::io("create", &path))?;
            self.in_progress = Some(InProgress { name, file });
        }
        let Some(in_progress) = self.in_progress.as_mut() else {
            return Ok(());
        };
        self.buffer.clear();
        for record in batch.values() {
            if (self.format)(record, &mut self.buffer).is_err() {
                return Err(FileError::Format {
                    path: self
                        .directory
                        .join(format!(".{}.inprogress", in_progress.name)),
                }
                .into());
            }
            self.buffer.push('\n');
        }
        in_progress
            .file
            .write_all(self.buffer.as_bytes())
            .map_err(|source| FileError::Io {
                action: "write",
                path: self
                    .directory
                    .join(format!(".{}.inprogress", in_progress.name)),
                source,
            })?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.ensure_initialized()?;
        // The end of the input is final: everything written is committed.
        self.commit_up_to(u64::MAX)?;
        if let Some((name, path)) = self.close_in_progress()? {
            let committed = self.directory.join(&name);
            std::fs::rename(&path, &committed).map_err(FileError::io("commit", &path))?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<u8>, BoxError> {
        self.ensure_initialized()?;
        if let Some((name, path)) = self.close_in_progress()? {
            let pending = self.pending_path(&name);
            std::fs::rename(&path, &pending).map_err(FileError::io("rename", &path))?;
            self.pending.push(PendingPart {
                checkpoint_id,
                name,
            });
        }
        let state = FileSinkState {
            next_part: self.next_part,
            pending: self.pending.clone(),
        };
        Ok(postcard::to_stdvec(&state)?)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), BoxError> {
        let restored = if state.is_empty() {
            None
        } else {
            let state = postcard::from_bytes(state).map_err(|source| FileError::CorruptState {
                directory: self.directory.clone(),
                source,
            })?;
            Some(state)
        };
        Ok(self.initialize(restored)?)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        if !self.transactional {
            return Ok(());
        }
        Ok(self.commit_up_to(checkpoint_id)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rivulet-file-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A sink subtask opened by hand, as the runtime would.
    fn open(dir: &Path, subtask: usize, checkpointing: bool) -> FileSink<u32> {
        let mut ctx = OperatorContext::new("Sink: files", subtask, 2, 128);
        ctx.checkpointing = checkpointing;
        let mut sink = FileSink::new(dir);
        sink.open(&ctx).unwrap();
        sink
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn part_names_parse_in_every_state() {
        let sink = FileSink::<u32>::new("out");
        assert_eq!(sink.parse_part_name("part-1-7"), Some((1, 7)));
        assert_eq!(sink.parse_part_name(".part-0-12.inprogress"), Some((0, 12)));
        assert_eq!(sink.parse_part_name(".part-3-0.pending"), Some((3, 0)));
        assert_eq!(sink.parse_part_name("_SUCCESS"), None);
        let csv = FileSink::<u32>::new("out")
            .with_part_prefix("stats-part")
            .with_part_suffix(".csv");
        assert_eq!(csv.parse_part_name("stats-part-2-5.csv"), Some((2, 5)));
        assert_eq!(
            csv.parse_part_name(".stats-part-2-6.csv.pending"),
            Some((2, 6))
        );
        assert_eq!(csv.parse_part_name("part-2-5"), None);
        assert_eq!(csv.part_name(3), "stats-part-0-3.csv");
    }

    #[test]
    fn sinks_with_other_prefixes_share_a_directory() {
        let dir = temp_dir("prefixes");
        let mut first = open(&dir, 0, false);
        first.write_batch(Records::from(vec![1])).unwrap();
        let mut ctx = OperatorContext::new("Sink: files", 0, 1, 128);
        ctx.checkpointing = false;
        let mut second = FileSink::<u32>::new(&dir).with_part_prefix("other");
        second.open(&ctx).unwrap();
        second.write_batch(Records::from(vec![2])).unwrap();
        first.finish().unwrap();
        second.finish().unwrap();
        assert_eq!(files(&dir), vec!["other-0-0", "part-0-0"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checkpoints_pre_commit_and_completions_commit() {
        let dir = temp_dir("two-phase");
        let mut sink = open(&dir, 0, true);
        sink.write_batch(Records::from(vec![1, 2])).unwrap();
        assert_eq!(files(&dir), vec![".part-0-0.inprogress"]);
        sink.snapshot_state(1).unwrap();
        sink.write_batch(Records::from(vec![3])).unwrap();
        sink.snapshot_state(2).unwrap();
        assert_eq!(files(&dir), vec![".part-0-0.pending", ".part-0-1.pending"]);
        sink.notify_checkpoint_complete(1).unwrap();
        assert_eq!(files(&dir), vec![".part-0-1.pending", "part-0-0"]);
        assert_eq!(read(&dir, "part-0-0"), "1\n2\n");
        // A checkpoint without new records pre-commits nothing new.
        sink.snapshot_state(3).unwrap();
        sink.notify_checkpoint_complete(3).unwrap();
        assert_eq!(files(&dir), vec!["part-0-0", "part-0-1"]);
        sink.write_batch(Records::from(vec![4])).unwrap();
        sink.finish().unwrap();
        assert_eq!(files(&dir), vec!["part-0-0", "part-0-1", "part-0-2"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restore_commits_its_pending_files_and_deletes_leftovers() {
        let dir = temp_dir("restore");
        let mut sink = open(&dir, 0, true);
        sink.write_batch(Records::from(vec![1])).unwrap();
        let state = sink.snapshot_state(1).unwrap();
        // The checkpoint completes, but the failure strikes before the notification; the failed
        // attempt also left a pending file of checkpoint 2 (never completed) and an in-progress
        // file. Subtask 1's files are not this subtask's business.
        sink.write_batch(Records::from(vec![2])).unwrap();
        sink.snapshot_state(2).unwrap();
        sink.write_batch(Records::from(vec![3])).unwrap();
        let mut other = open(&dir, 1, true);
        other.write_batch(Records::from(vec![9])).unwrap();
        drop((sink, other));
        assert_eq!(
            files(&dir),
            vec![
                ".part-0-0.pending",
                ".part-0-1.pending",
                ".part-0-2.inprogress",
                ".part-1-0.inprogress"
            ]
        );
        for _ in 0..2 {
            // Restoring twice (a second failure) commits idempotently.
            let mut restored = open(&dir, 0, true);
            restored.restore_state(&state).unwrap();
            assert_eq!(files(&dir), vec![".part-1-0.inprogress", "part-0-0"]);
            assert_eq!(read(&dir, "part-0-0"), "1\n");
        }
        let mut restored = open(&dir, 0, true);
        restored.restore_state(&state).unwrap();
        restored.write_batch(Records::from(vec![2, 3])).unwrap();
        restored.finish().unwrap();
        assert_eq!(
            files(&dir),
            vec![".part-1-0.inprogress", "part-0-0", "part-0-1"]
        );
        assert_eq!(read(&dir, "part-0-1"), "2\n3\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restore_retracts_what_a_finished_attempt_committed_after_the_checkpoint() {
        let dir = temp_dir("retract");
        let mut sink = open(&dir, 0, true);
        sink.write_batch(Records::from(vec![1])).unwrap();
        let state = sink.snapshot_state(1).unwrap();
        sink.notify_checkpoint_complete(1).unwrap();
        // The input ends: everything is committed. Then another subtask fails, and the job
        // restores checkpoint 1, which replays record 2.
        sink.write_batch(Records::from(vec![2])).unwrap();
        sink.finish().unwrap();
        assert_eq!(files(&dir), vec!["part-0-0", "part-0-1"]);
        let mut restored = open(&dir, 0, true);
        restored.restore_state(&state).unwrap();
        assert_eq!(files(&dir), vec!["part-0-0"]);
        restored.write_batch(Records::from(vec![2])).unwrap();
        restored.finish().unwrap();
        assert_eq!(read(&dir, "part-0-1"), "2\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_checkpointing_the_end_of_input_commits() {
        let dir = temp_dir("no-checkpoints");
        std::fs::create_dir_all(&dir).unwrap();
        // A leftover of an earlier failed run, and a committed file of an earlier job.
        std::fs::write(dir.join(".part-0-0.inprogress"), "stale\n").unwrap();
        std::fs::write(dir.join("part-0-4"), "old\n").unwrap();
        let mut sink = open(&dir, 0, false);
        sink.write_batch(Records::from(vec![1])).unwrap();
        sink.notify_checkpoint_complete(1).unwrap();
        assert_eq!(files(&dir), vec![".part-0-5.inprogress", "part-0-4"]);
        sink.finish().unwrap();
        assert_eq!(files(&dir), vec!["part-0-4", "part-0-5"]);
        assert_eq!(read(&dir, "part-0-5"), "1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_pending_file_is_an_error_naming_it() {
        let dir = temp_dir("missing");
        let mut sink = open(&dir, 0, true);
        sink.write_batch(Records::from(vec![1])).unwrap();
        let state = sink.snapshot_state(1).unwrap();
        std::fs::remove_file(dir.join(".part-0-0.pending")).unwrap();
        let mut restored = open(&dir, 0, true);
        let error = restored.restore_state(&state).unwrap_err().to_string();
        assert!(error.contains(".part-0-0.pending"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
