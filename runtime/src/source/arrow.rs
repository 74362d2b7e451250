//! An in-memory source of Arrow batches, replayable: the position is the index of the next batch.

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::collection::VecSplit;
use super::{Source, SourcePoll, SourceReader};
use crate::batch::arrow::ChangelogBatch;
use crate::error::BoxError;

/// A part of a [`RecordBatchSource`]: batches `start..end`, read up to batch `position`.
pub type RecordBatchSplit = VecSplit;

/// A parallel source over Arrow batches held in memory; each subtask reads a contiguous run of
/// them.
///
/// Batches are emitted whole and in order within a split, each as one [`ChangelogBatch`]. The
/// source replays exactly after a restore, since its position is a batch index.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::source::RecordBatchSource;
///
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
/// let batch = |v: Vec<i64>| RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(v))]);
/// let env = StreamEnv::new().with_parallelism(2);
/// let arrow_stream = env.from_source(RecordBatchSource::new([batch(vec![1, 2])?, batch(vec![3])?]));
/// # let _ = arrow_stream;
/// # Ok::<(), arrow::error::ArrowError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecordBatchSource {
    batches: Arc<Vec<ChangelogBatch>>,
}

impl RecordBatchSource {
    /// A source of insert-only batches.
    pub fn new(batches: impl IntoIterator<Item = RecordBatch>) -> Self {
        Self::from_changelog(batches.into_iter().map(ChangelogBatch::insert_only))
    }

    /// A source of changelog batches, with their row kinds.
    pub fn from_changelog(batches: impl IntoIterator<Item = ChangelogBatch>) -> Self {
        RecordBatchSource {
            batches: Arc::new(batches.into_iter().collect()),
        }
    }

    /// The number of batches.
    pub fn num_batches(&self) -> usize {
        self.batches.len()
    }
}

/// Reads one [`RecordBatchSplit`] of a [`RecordBatchSource`].
#[derive(Debug)]
pub struct RecordBatchReader {
    batches: Arc<Vec<ChangelogBatch>>,
    split: RecordBatchSplit,
}

impl Source for RecordBatchSource {
    type Batch = ChangelogBatch;
    type Split = RecordBatchSplit;
    type Reader = RecordBatchReader;

    fn splits(&self, parallelism: usize) -> Result<Vec<RecordBatchSplit>, BoxError> {
        let len = self.batches.len() as u64;
        let parts = parallelism.max(1) as u64;
        Ok((0..parts)
            .map(|i| RecordBatchSplit {
                start: len * i / parts,
                end: len * (i + 1) / parts,
                position: len * i / parts,
            })
            .collect())
    }

    fn create_reader(&self, split: RecordBatchSplit) -> Result<RecordBatchReader, BoxError> {
        if split.end > self.batches.len() as u64 || split.position > split.end {
            return Err(format!(
                "split {split:?} does not fit a source of {} batches; restore with the same input",
                self.batches.len()
            )
            .into());
        }
        Ok(RecordBatchReader {
            batches: Arc::clone(&self.batches),
            split,
        })
    }

    fn name(&self) -> String {
        "Source: record batches".to_owned()
    }
}

impl SourceReader for RecordBatchReader {
    type Batch = ChangelogBatch;
    type Split = RecordBatchSplit;

    /// Returns the next batch whole, whatever its size.
    fn poll(&mut self, _max_records: usize) -> Result<SourcePoll<ChangelogBatch>, BoxError> {
        let position = self.split.position;
        if position >= self.split.end {
            return Ok(SourcePoll::Finished);
        }
        self.split.position = position + 1;
        Ok(SourcePoll::Ready(self.batches[position as usize].clone()))
    }

    fn snapshot(&self) -> RecordBatchSplit {
        self.split.clone()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn source(batches: i64) -> RecordBatchSource {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatchSource::new((0..batches).map(|i| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(vec![i]))],
            )
            .unwrap()
        }))
    }

    fn read(reader: &mut RecordBatchReader, limit: usize) -> Vec<i64> {
        let mut seen = Vec::new();
        while seen.len() < limit {
            match reader.poll(1024).unwrap() {
                SourcePoll::Ready(b) => seen.extend(
                    b.data()
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .values(),
                ),
                _ => break,
            }
        }
        seen
    }

    #[test]
    fn splits_are_contiguous_runs_covering_every_batch_once() {
        let source = source(7);
        let splits = source.splits(3).unwrap();
        assert_eq!(splits.len(), 3);
        let mut seen = Vec::new();
        for split in splits {
            seen.extend(read(&mut source.create_reader(split).unwrap(), usize::MAX));
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_reader_resumes_from_its_snapshot() {
        let source = source(5);
        let mut reader = source
            .create_reader(source.splits(1).unwrap()[0].clone())
            .unwrap();
        assert_eq!(read(&mut reader, 2), vec![0, 1]);
        let mut resumed = source.create_reader(reader.snapshot()).unwrap();
        assert_eq!(read(&mut resumed, usize::MAX), vec![2, 3, 4]);
        let too_far = RecordBatchSplit {
            start: 0,
            end: 9,
            position: 0,
        };
        assert!(source.create_reader(too_far).is_err());
    }
}
