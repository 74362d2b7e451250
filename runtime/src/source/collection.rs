//! In-memory sources: vectors, iterators and generators. All are replayable: the position is the
//! index of the next record.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Source, SourcePoll, SourceReader};
use crate::batch::{Data, Records};
use crate::error::BoxError;

/// A part of a vector: records `start..end`, read up to `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VecSplit {
    /// The first record of the split.
    pub start: u64,
    /// One past the last record of the split.
    pub end: u64,
    /// The next record to read.
    pub position: u64,
}

/// Splits `0..len` into `parts` contiguous ranges of nearly equal size.
fn ranges(len: u64, parts: usize) -> impl Iterator<Item = (u64, u64)> {
    let parts = parts.max(1) as u64;
    (0..parts).map(move |i| (len * i / parts, len * (i + 1) / parts))
}

/// A parallel source over a vector; each subtask reads a contiguous part of it.
#[derive(Debug, Clone)]
pub struct VecSource<T> {
    records: Arc<Vec<T>>,
}

impl<T> VecSource<T> {
    /// A source emitting `records` in order within each split.
    pub fn new(records: Vec<T>) -> Self {
        VecSource {
            records: Arc::new(records),
        }
    }
}

/// Reads one [`VecSplit`].
pub struct VecReader<T> {
    records: Arc<Vec<T>>,
    split: VecSplit,
}

impl<T: Data + Sync> Source for VecSource<T> {
    type Batch = Records<T>;
    type Split = VecSplit;
    type Reader = VecReader<T>;

    fn splits(&self, parallelism: usize) -> Result<Vec<VecSplit>, BoxError> {
        Ok(ranges(self.records.len() as u64, parallelism)
            .map(|(start, end)| VecSplit {
                start,
                end,
                position: start,
            })
            .collect())
    }

    fn create_reader(&self, split: VecSplit) -> Result<VecReader<T>, BoxError> {
        if split.end > self.records.len() as u64 || split.position > split.end {
            return Err(format!(
                "split {split:?} does not fit a vector of {} records; restore with the same input",
                self.records.len()
            )
            .into());
        }
        Ok(VecReader {
            records: Arc::clone(&self.records),
            split,
        })
    }

    fn name(&self) -> String {
        "Source: from_vec".to_owned()
    }
}

impl<T: Data + Sync> SourceReader for VecReader<T> {
    type Batch = Records<T>;
    type Split = VecSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<Records<T>>, BoxError> {
        let from = self.split.position;
        if from >= self.split.end {
            return Ok(SourcePoll::Finished);
        }
        let to = (from + max_records as u64).min(self.split.end);
        self.split.position = to;
        Ok(SourcePoll::Ready(Records::from(
            self.records[from as usize..to as usize].to_vec(),
        )))
    }

    fn snapshot(&self) -> VecSplit {
        self.split.clone()
    }
}

/// The position of an [`IterSource`]: how many records were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterSplit {
    /// The number of records already emitted.
    pub position: u64,
}

/// A non-parallel source over a clonable iterable; a restore re-iterates and skips what was read.
#[derive(Debug, Clone)]
pub struct IterSource<I> {
    iterable: I,
}

impl<I> IterSource<I> {
    /// A source emitting what `iterable` yields.
    pub fn new(iterable: I) -> Self {
        IterSource { iterable }
    }
}

/// Reads an [`IterSource`].
pub struct IterReader<It> {
    iter: It,
    position: u64,
}

impl<I> Source for IterSource<I>
where
    I: IntoIterator + Clone + Send + 'static,
    I::IntoIter: Send + 'static,
    I::Item: Data,
{
    type Batch = Records<I::Item>;
    type Split = IterSplit;
    type Reader = IterReader<I::IntoIter>;

    fn splits(&self, _parallelism: usize) -> Result<Vec<IterSplit>, BoxError> {
        Ok(vec![IterSplit { position: 0 }])
    }

    fn create_reader(&self, split: IterSplit) -> Result<Self::Reader, BoxError> {
        let mut iter = self.iterable.clone().into_iter();
        for _ in 0..split.position {
            if iter.next().is_none() {
                return Err(format!(
                    "cannot restore position {} of an iterator that yields fewer records",
                    split.position
                )
                .into());
            }
        }
        Ok(IterReader {
            iter,
            position: split.position,
        })
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn name(&self) -> String {
        "Source: from_iter".to_owned()
    }
}

impl<It> SourceReader for IterReader<It>
where
    It: Iterator + Send + 'static,
    It::Item: Data,
{
    type Batch = Records<It::Item>;
    type Split = IterSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<Self::Batch>, BoxError> {
        let values: Vec<It::Item> = self.iter.by_ref().take(max_records).collect();
        if values.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        self.position += values.len() as u64;
        Ok(SourcePoll::Ready(Records::from(values)))
    }

    fn snapshot(&self) -> IterSplit {
        IterSplit {
            position: self.position,
        }
    }
}

/// A part of a generated sequence: indices `start..end`, read up to `position`.
pub type GeneratorSplit = VecSplit;

/// A parallel source of `count` records made by a function of their index `0..count`.
///
/// The function is cloned per subtask. The same index always yields the same record, so the
/// source replays exactly after a restore.
#[derive(Clone)]
pub struct GeneratorSource<F> {
    count: u64,
    generate: F,
}

impl<F> GeneratorSource<F> {
    /// A source of `generate(0)`, `generate(1)`, ..., `generate(count - 1)`.
    pub fn new(count: u64, generate: F) -> Self {
        GeneratorSource { count, generate }
    }
}

/// Reads one [`GeneratorSplit`].
pub struct GeneratorReader<F> {
    generate: F,
    split: GeneratorSplit,
}

impl<T, F> Source for GeneratorSource<F>
where
    T: Data,
    F: Fn(u64) -> T + Clone + Send + 'static,
{
    type Batch = Records<T>;
    type Split = GeneratorSplit;
    type Reader = GeneratorReader<F>;

    fn splits(&self, parallelism: usize) -> Result<Vec<GeneratorSplit>, BoxError> {
        Ok(ranges(self.count, parallelism)
            .map(|(start, end)| VecSplit {
                start,
                end,
                position: start,
            })
            .collect())
    }

    fn create_reader(&self, split: GeneratorSplit) -> Result<Self::Reader, BoxError> {
        Ok(GeneratorReader {
            generate: self.generate.clone(),
            split,
        })
    }

    fn name(&self) -> String {
        "Source: generator".to_owned()
    }
}

impl<T, F> SourceReader for GeneratorReader<F>
where
    T: Data,
    F: Fn(u64) -> T + Send + 'static,
{
    type Batch = Records<T>;
    type Split = GeneratorSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<Records<T>>, BoxError> {
        let from = self.split.position;
        if from >= self.split.end {
            return Ok(SourcePoll::Finished);
        }
        let to = (from + max_records as u64).min(self.split.end);
        self.split.position = to;
        Ok(SourcePoll::Ready(Records::from(
            (from..to).map(&self.generate).collect::<Vec<T>>(),
        )))
    }

    fn snapshot(&self) -> GeneratorSplit {
        self.split.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_splits_cover_every_record_once() {
        let source = VecSource::new((0..10).collect::<Vec<i64>>());
        let splits = source.splits(3).unwrap();
        let mut seen = Vec::new();
        for split in splits {
            let mut reader = source.create_reader(split).unwrap();
            while let SourcePoll::Ready(b) = reader.poll(2).unwrap() {
                seen.extend(b.into_values());
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn iter_source_resumes_from_its_snapshot() {
        let source = IterSource::new(0..7i64);
        let mut reader = source.create_reader(IterSplit { position: 0 }).unwrap();
        let SourcePoll::Ready(first) = reader.poll(3).unwrap() else {
            panic!("expected records")
        };
        assert_eq!(first.into_values(), vec![0, 1, 2]);
        let mut resumed = source.create_reader(reader.snapshot()).unwrap();
        let SourcePoll::Ready(rest) = resumed.poll(10).unwrap() else {
            panic!("expected records")
        };
        assert_eq!(rest.into_values(), vec![3, 4, 5, 6]);
    }
}
