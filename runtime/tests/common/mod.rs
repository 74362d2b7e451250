//! Fixtures the recovery tests share: a source whose second half waits for a checkpoint, and a
//! sink that reports checkpoint completion.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rivulet_runtime::source::{Source, SourcePoll, SourceReader, VecSplit};
use rivulet_runtime::{BoxError, Data, Records, SinkFunction};

/// Records `make(0)`, ..., `make(total - 1)` in one split per subtask, in small batches. The
/// second half of each split waits until `checkpointed` is set (by [`CheckpointWatch`]), so a
/// failure there always has a checkpoint to restore from.
#[derive(Clone)]
pub struct GatedSource<T> {
    pub total: u64,
    pub checkpointed: Arc<AtomicBool>,
    /// Counts the records emitted, over every attempt.
    pub emitted: Arc<AtomicU64>,
    /// The source fails once when a batch would include this record.
    pub fail_at: Option<(u64, Arc<AtomicBool>)>,
    pub batch: u64,
    pub make: fn(u64) -> T,
}

impl<T> GatedSource<T> {
    pub fn new(total: u64, checkpointed: Arc<AtomicBool>, make: fn(u64) -> T) -> Self {
        GatedSource {
            total,
            checkpointed,
            emitted: Arc::default(),
            fail_at: None,
            batch: 50,
            make,
        }
    }
}

pub struct GatedReader<T> {
    split: VecSplit,
    source: GatedSource<T>,
}

impl<T: Data + Sync> Source for GatedSource<T> {
    type Batch = Records<T>;
    type Split = VecSplit;
    type Reader = GatedReader<T>;

    fn splits(&self, parallelism: usize) -> Result<Vec<VecSplit>, BoxError> {
        let p = parallelism as u64;
        Ok((0..p)
            .map(|i| VecSplit {
                start: self.total * i / p,
                end: self.total * (i + 1) / p,
                position: self.total * i / p,
            })
            .collect())
    }

    fn create_reader(&self, split: VecSplit) -> Result<GatedReader<T>, BoxError> {
        Ok(GatedReader {
            split,
            source: self.clone(),
        })
    }
}

impl<T: Data + Sync> SourceReader for GatedReader<T> {
    type Batch = Records<T>;
    type Split = VecSplit;

    fn poll(&mut self, _max: usize) -> Result<SourcePoll<Records<T>>, BoxError> {
        let VecSplit {
            start,
            end,
            position,
        } = self.split;
        if position >= end {
            return Ok(SourcePoll::Finished);
        }
        let half = start + (end - start) / 2;
        if position >= half && !self.source.checkpointed.load(Ordering::SeqCst) {
            return Ok(SourcePoll::Idle);
        }
        // Small batches, so barriers fall between them often.
        let to = (position + self.source.batch).min(end);
        if let Some((at, armed)) = &self.source.fail_at
            && (position..to).contains(at)
            && armed.swap(false, Ordering::SeqCst)
        {
            return Err(format!("the source failed before record {at}").into());
        }
        self.split.position = to;
        self.source
            .emitted
            .fetch_add(to - position, Ordering::SeqCst);
        Ok(SourcePoll::Ready(Records::from(
            (position..to).map(self.source.make).collect::<Vec<T>>(),
        )))
    }

    fn snapshot(&self) -> VecSplit {
        self.split.clone()
    }
}

/// Sets its flag once a checkpoint completed: the gate of [`GatedSource`].
#[derive(Clone)]
pub struct CheckpointWatch(pub Arc<AtomicBool>);

impl<T: Send + 'static> SinkFunction<T> for CheckpointWatch {
    fn write_batch(&mut self, _batch: Records<T>) -> Result<(), BoxError> {
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), BoxError> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}
