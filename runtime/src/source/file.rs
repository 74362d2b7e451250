//! Text files as a bounded source: one split per file, one `String` record per line, the
//! position a byte offset.
//!
//! A [`FileSplit`] names a file and the byte offset of the next line to read. A reader opens the
//! file, seeks to the offset and reads lines through a [`BufReader`]; its snapshot is the split
//! with the offset after the last line it returned, so a restored job seeks straight back to it.
//! Records carry no timestamps: add them with
//! [`assign_timestamps_and_watermarks`](crate::DataStream::assign_timestamps_and_watermarks) or
//! [`from_source_with_watermarks`](crate::StreamEnv::from_source_with_watermarks).
//!
//! [`FileError`] is also the error of the [file sink](crate::sink::FileSink).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Source, SourcePoll, SourceReader};
use crate::batch::Records;
use crate::error::BoxError;

/// Why a file could not be read or written, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system refused an operation on a file or directory.
    #[error("could not {action} {path:?}: {source}")]
    Io {
        /// What was being done: "open", "read", "list", "rename", ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error(
        "the line at byte {offset} of {path:?} is not valid UTF-8; convert the file to UTF-8 first"
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The byte offset where the line starts.
        offset: u64,
    },
    /// A restored position lies beyond the end of its file: the file shrank since the checkpoint.
    #[error(
        "cannot resume {path:?} at byte {offset}: the file has only {len} bytes; restore with the same input files"
    )]
    OffsetBeyondEnd {
        /// The file.
        path: PathBuf,
        /// The checkpointed offset.
        offset: u64,
        /// The file's length now.
        len: u64,
    },
    /// A pending part file of a completed checkpoint is gone and was never committed.
    #[error(
        "pending part file {pending:?} of a completed checkpoint is missing and {committed:?} does not exist; the output directory was changed outside the job"
    )]
    MissingPending {
        /// The pending file that should have been there.
        pending: PathBuf,
        /// Its final name.
        committed: PathBuf,
    },
    /// A record could not be formatted (its `Display` or the sink's format function failed).
    #[error("could not format a record for {path:?}")]
    Format {
        /// The part file being written.
        path: PathBuf,
    },
    /// The sink's checkpointed state does not decode.
    #[error("the checkpointed state of the file sink for {directory:?} does not decode: {source}")]
    CorruptState {
        /// The sink's output directory.
        directory: PathBuf,
        /// What the decoder said.
        #[source]
        source: postcard::Error,
    },
}

impl FileError {
    /// An I/O error while doing `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| FileError::Io {
            action,
            path,
            source,
        }
    }
}

/// A file to read, and the byte offset of the next line in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSplit {
    /// The file.
    pub path: PathBuf,
    /// The byte offset of the next line to read (0 at the start).
    pub offset: u64,
}

/// A bounded source of the lines of text files, one split per file.
///
/// Each path is a file or a directory; a directory stands for its regular files, in name order,
/// except hidden ones (names starting with `.` or `_`, as Flink skips them). Lines end at `\n`
/// (a `\r` before it is dropped); the last line needs no newline. The source finishes when every
/// file is read to its end.
///
/// ```
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::source::TextFileSource;
///
/// let dir = std::env::temp_dir().join(format!("rivulet-doc-text-source-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("a.txt"), "one\ntwo\n").unwrap();
/// std::fs::write(dir.join("b.txt"), "three").unwrap();
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let lines = env.from_source(TextFileSource::new([&dir])).collect();
/// env.execute("read").unwrap();
/// assert_eq!(lines.take_sorted(), vec!["one", "three", "two"]);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct TextFileSource {
    paths: Vec<PathBuf>,
    buffer_size: usize,
}

impl TextFileSource {
    /// A source of the lines of `paths`: files, or directories of files.
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        TextFileSource {
            paths: paths.into_iter().map(Into::into).collect(),
            buffer_size: 64 * 1024,
        }
    }

    /// Sets the size of each reader's buffer, the chunk in which files are read.
    ///
    /// Default: 64 KiB.
    pub fn with_buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.max(1);
        self
    }

    /// The files to read: the paths, with directories replaced by their visible files.
    fn files(&self) -> Result<Vec<PathBuf>, FileError> {
        let mut files = Vec::new();
        for path in &self.paths {
            let metadata = std::fs::metadata(path).map_err(FileError::io("read", path))?;
            if !metadata.is_dir() {
                files.push(path.clone());
                continue;
            }
            let mut inside = Vec::new();
            for entry in std::fs::read_dir(path).map_err(FileError::io("list", path))? {
                let entry = entry.map_err(FileError::io("list", path))?;
                let hidden = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
                let file_type = entry.file_type().map_err(FileError::io("list", path))?;
                if !hidden && !file_type.is_dir() {
                    inside.push(entry.path());
                }
            }
            inside.sort();
            files.extend(inside);
        }
        Ok(files)
    }
}

impl Source for TextFileSource {
    type Batch = Records<String>;
    type Split = FileSplit;
    type Reader = TextFileReader;

    fn splits(&self, _parallelism: usize) -> Result<Vec<FileSplit>, BoxError> {
        Ok(self
            .files()?
            .into_iter()
            .map(|path| FileSplit { path, offset: 0 })
            .collect())
    }

    fn create_reader(&self, split: FileSplit) -> Result<TextFileReader, BoxError> {
        Ok(TextFileReader::open(split, self.buffer_size)?)
    }

    fn name(&self) -> String {
        "Source: text files".to_owned()
    }
}

/// Reads the lines of one [`FileSplit`].
#[derive(Debug)]
pub struct TextFileReader {
    split: FileSplit,
    reader: BufReader<File>,
    /// The length of the last line read: the capacity the next line's buffer starts with.
    line_capacity: usize,
}

impl TextFileReader {
    /// Opens the split's file at its offset, with a buffer of `buffer_size` bytes.
    fn open(split: FileSplit, buffer_size: usize) -> Result<Self, FileError> {
        let path = &split.path;
        let mut file = File::open(path).map_err(FileError::io("open", path))?;
        let len = file.metadata().map_err(FileError::io("read", path))?.len();
        if split.offset > len {
            return Err(FileError::OffsetBeyondEnd {
                path: path.clone(),
                offset: split.offset,
                len,
            });
        }
        if split.offset > 0 {
            file.seek(SeekFrom::Start(split.offset))
                .map_err(FileError::io("seek in", path))?;
        }
        Ok(TextFileReader {
            reader: BufReader::with_capacity(buffer_size, file),
            split,
            line_capacity: 64,
        })
    }
}

impl SourceReader for TextFileReader {
    type Batch = Records<String>;
    type Split = FileSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<Records<String>>, BoxError> {
        let mut lines = Vec::with_capacity(max_records.min(4096));
        while lines.len() < max_records {
            // Each line's bytes become the record's `String` without a copy.
            let mut bytes = Vec::with_capacity(self.line_capacity);
            let read = self
                .reader
                .read_until(b'\n', &mut bytes)
                .map_err(FileError::io("read", &self.split.path))?;
            if read == 0 {
                break;
            }
            self.line_capacity = read;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            let line = String::from_utf8(bytes).map_err(|_| FileError::NotUtf8 {
                path: self.split.path.clone(),
                offset: self.split.offset,
            })?;
            self.split.offset += read as u64;
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        Ok(SourcePoll::Ready(Records::from(lines)))
    }

    fn snapshot(&self) -> FileSplit {
        self.split.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rivulet-file-source-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read_all(reader: &mut TextFileReader, max: usize) -> Vec<String> {
        let mut lines = Vec::new();
        while let SourcePoll::Ready(batch) = reader.poll(max).unwrap() {
            lines.extend(batch.into_values());
        }
        lines
    }

    #[test]
    fn lines_end_at_newlines_with_or_without_carriage_returns() {
        let dir = temp_dir("lines");
        let file = dir.join("a.txt");
        std::fs::write(&file, "a\r\nbb\n\nccc").unwrap();
        let source = TextFileSource::new([&file]).with_buffer_size(2);
        let split = source.splits(1).unwrap().remove(0);
        let mut reader = source.create_reader(split).unwrap();
        assert_eq!(read_all(&mut reader, 3), vec!["a", "bb", "", "ccc"]);
        assert_eq!(reader.snapshot().offset, 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reader_resumes_from_its_snapshot() {
        let dir = temp_dir("resume");
        let file = dir.join("a.txt");
        std::fs::write(&file, "1\n22\n333\n4444\n").unwrap();
        let source = TextFileSource::new([&file]);
        let mut reader = source
            .create_reader(source.splits(1).unwrap().remove(0))
            .unwrap();
        let SourcePoll::Ready(first) = reader.poll(2).unwrap() else {
            panic!("expected lines")
        };
        assert_eq!(first.into_values(), vec!["1", "22"]);
        let snapshot = reader.snapshot();
        assert_eq!(snapshot.offset, 5);
        let mut resumed = source.create_reader(snapshot).unwrap();
        assert_eq!(read_all(&mut resumed, 10), vec!["333", "4444"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directories_list_their_visible_files_in_name_order() {
        let dir = temp_dir("listing");
        for name in ["b.txt", "a.txt", ".hidden", "_SUCCESS"] {
            std::fs::write(dir.join(name), "x\n").unwrap();
        }
        let splits = TextFileSource::new([&dir]).splits(4).unwrap();
        let names: Vec<_> = splits
            .iter()
            .map(|s| s.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, vec!["a.txt", "b.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = temp_dir("errors");
        let missing = dir.join("missing.txt");
        let error = TextFileSource::new([&missing]).splits(1).unwrap_err();
        assert!(error.to_string().contains("missing.txt"), "{error}");

        let file = dir.join("latin1.txt");
        std::fs::write(&file, b"ok\n\xe9t\xe9\n").unwrap();
        let source = TextFileSource::new([&file]);
        let mut reader = source
            .create_reader(source.splits(1).unwrap().remove(0))
            .unwrap();
        assert!(matches!(reader.poll(1).unwrap(), SourcePoll::Ready(_)));
        let error = reader.poll(1).unwrap_err().to_string();
        assert!(
            error.contains("latin1.txt") && error.contains("byte 3"),
            "{error}"
        );

        let beyond = FileSplit {
            path: file.clone(),
            offset: 100,
        };
        let error = source.create_reader(beyond).unwrap_err().to_string();
        assert!(error.contains("only 7 bytes"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
