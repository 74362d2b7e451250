//! The unit of data exchange: batches of records.
//!
//! Records never travel one at a time. Every edge of a job carries batches of one type that
//! implements [`Batch`]: [`Records<T>`] for typed streams of Rust values, and
//! [`ChangelogBatch`](crate::ChangelogBatch) for the relational plane's Arrow data. Channels,
//! exchanges and the executor are written once against this trait, so both kinds of record share
//! one data plane.

use serde::{Deserialize, Serialize};

use crate::error::BoxError;

pub mod arrow;

/// A batch of records: what flows along an edge of a job.
///
/// A batch can be split by row into several buffers (what a hash exchange does), buffered until a
/// full batch is ready, cloned for a broadcast, and serialized for checkpoints.
pub trait Batch: Clone + Send + 'static {
    /// Accumulates rows until a batch is full enough to send.
    type Buffer: BatchBuffer<Self>;

    /// The number of rows.
    fn len(&self) -> usize;

    /// Whether the batch has no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves row `i` into `buffers[targets[i]]`, for every row.
    ///
    /// `targets` has one entry per row and every entry is below `buffers.len()`.
    fn scatter(self, targets: &[u32], buffers: &mut [Self::Buffer]) -> Result<(), BoxError>;

    /// Appends this batch's serialized form to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), BoxError>;

    /// Reads a batch written by [`Batch::encode`].
    fn decode(bytes: &[u8]) -> Result<Self, BoxError>;
}

/// Rows collected for one target until they are sent as one batch.
pub trait BatchBuffer<B>: Default + Send + 'static {
    /// The number of buffered rows.
    fn len(&self) -> usize;

    /// Whether nothing is buffered.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a whole batch.
    fn push(&mut self, batch: B) -> Result<(), BoxError>;

    /// Removes the buffered rows as one batch, or returns `None` when nothing is buffered.
    fn take(&mut self) -> Result<Option<B>, BoxError>;
}

/// The record types a typed stream can carry.
///
/// Records are cloned (per subtask, for broadcasts), sent between threads, and serialized for
/// state and checkpoints, so they need `Clone + Send + 'static` and serde's two derives. Every
/// such type implements `Data` automatically.
///
/// ```
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Click { user: String, page: String, ts: i64 }
///
/// fn assert_data<T: rivulet_runtime::Data>() {}
/// assert_data::<Click>();
/// ```
pub trait Data: Clone + Send + Serialize + for<'de> Deserialize<'de> + 'static {}

impl<T> Data for T where T: Clone + Send + Serialize + for<'de> Deserialize<'de> + 'static {}

/// The timestamp of a record that has none (Flink's "no timestamp").
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// A batch of typed records, each with an optional event-time timestamp.
///
/// Timestamps are `i64` milliseconds. A batch either carries a timestamp for every record or none
/// at all; records of a stream without event time carry none, which costs nothing.
///
/// ```
/// use rivulet_runtime::Records;
///
/// let mut batch = Records::from(vec!["a", "b"]);
/// batch.push("c");
/// assert_eq!(batch.len(), 3);
/// assert_eq!(batch.timestamps(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Records<T> {
    values: Vec<T>,
    /// Empty, or one timestamp per value.
    timestamps: Vec<i64>,
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records {
            values: Vec::new(),
            timestamps: Vec::new(),
        }
    }
}

impl<T> From<Vec<T>> for Records<T> {
    fn from(values: Vec<T>) -> Self {
        Records {
            values,
            timestamps: Vec::new(),
        }
    }
}

impl<T> Records<T> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        Records {
            values: Vec::with_capacity(capacity),
            timestamps: Vec::new(),
        }
    }

    /// A batch of records with one timestamp each.
    ///
    /// # Panics
    /// When the two vectors differ in length, which is a bug in the caller.
    pub fn with_timestamps(values: Vec<T>, timestamps: Vec<i64>) -> Self {
        assert_eq!(
            values.len(),
            timestamps.len(),
            "a timestamped batch needs one timestamp per record"
        );
        Records { values, timestamps }
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The records.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The records' timestamps, when the batch carries them.
    pub fn timestamps(&self) -> Option<&[i64]> {
        if self.timestamps.is_empty() && !self.values.is_empty() {
            None
        } else {
            Some(&self.timestamps)
        }
    }

    /// Whether the records carry timestamps.
    pub fn has_timestamps(&self) -> bool {
        !self.timestamps.is_empty()
    }

    /// The records, dropping their timestamps.
    pub fn into_values(self) -> Vec<T> {
        self.values
    }

    /// The records and their timestamps (empty when the batch has none).
    pub fn into_parts(self) -> (Vec<T>, Vec<i64>) {
        (self.values, self.timestamps)
    }

    /// Appends a record without a timestamp.
    ///
    /// In a batch that carries timestamps it gets [`NO_TIMESTAMP`].
    pub fn push(&mut self, value: T) {
        if !self.timestamps.is_empty() {
            self.timestamps.push(NO_TIMESTAMP);
        }
        self.values.push(value);
    }

    /// Appends a record with its timestamp.
    pub fn push_with_timestamp(&mut self, value: T, timestamp: i64) {
        if self.timestamps.len() < self.values.len() {
            self.timestamps.resize(self.values.len(), NO_TIMESTAMP);
        }
        self.values.push(value);
        self.timestamps.push(timestamp);
    }

    /// Iterates over `(record, timestamp)` pairs; the timestamp is [`NO_TIMESTAMP`] when absent.
    pub fn iter(&self) -> impl Iterator<Item = (&T, i64)> {
        let ts = &self.timestamps;
        self.values
            .iter()
            .enumerate()
            .map(move |(i, v)| (v, ts.get(i).copied().unwrap_or(NO_TIMESTAMP)))
    }

    /// Keeps the records for which `keep` returns true, with their timestamps.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        if self.timestamps.is_empty() {
            self.values.retain(keep);
            return;
        }
        let mut write = 0;
        let len = self.values.len();
        for read in 0..len {
            if keep(&self.values[read]) {
                self.values.swap(write, read);
                self.timestamps[write] = self.timestamps[read];
                write += 1;
            }
        }
        self.values.truncate(write);
        self.timestamps.truncate(write);
    }

    /// Applies `f` to every record, keeping the timestamps.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Records<U> {
        Records {
            values: self.values.into_iter().map(f).collect(),
            timestamps: self.timestamps,
        }
    }

    /// Appends all records of `other`.
    pub fn append(&mut self, other: Records<T>) {
        if self.values.is_empty() {
            *self = other;
            return;
        }
        match (self.timestamps.is_empty(), other.timestamps.is_empty()) {
            (true, true) => {}
            (false, false) => {}
            (true, false) => self.timestamps.resize(self.values.len(), NO_TIMESTAMP),
            (false, true) => {
                let n = self.timestamps.len() + other.values.len();
                self.timestamps.resize(n, NO_TIMESTAMP);
            }
        }
        self.values.extend(other.values);
        self.timestamps.extend(other.timestamps);
    }
}

impl<T> IntoIterator for Records<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.values.into_iter()
    }
}

impl<T: Data> Batch for Records<T> {
    type Buffer = Records<T>;

    fn len(&self) -> usize {
        self.values.len()
    }

    fn scatter(self, targets: &[u32], buffers: &mut [Records<T>]) -> Result<(), BoxError> {
        debug_assert_eq!(targets.len(), self.values.len());
        if self.timestamps.is_empty() {
            for (value, &target) in self.values.into_iter().zip(targets) {
                buffers[target as usize].push(value);
            }
        } else {
            for ((value, ts), &target) in self.values.into_iter().zip(self.timestamps).zip(targets)
            {
                buffers[target as usize].push_with_timestamp(value, ts);
            }
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), BoxError> {
        let bytes = postcard::to_stdvec(self)?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Self, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

impl<T: Data> BatchBuffer<Records<T>> for Records<T> {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn push(&mut self, batch: Records<T>) -> Result<(), BoxError> {
        self.append(batch);
        Ok(())
    }

    fn take(&mut self) -> Result<Option<Records<T>>, BoxError> {
        if self.values.is_empty() {
            Ok(None)
        } else {
            Ok(Some(std::mem::take(self)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_keeps_timestamps_aligned() {
        let mut b = Records::with_timestamps(vec![1, 2, 3, 4], vec![10, 20, 30, 40]);
        b.retain(|v| v % 2 == 0);
        assert_eq!(b.values(), &[2, 4]);
        assert_eq!(b.timestamps(), Some(&[20, 40][..]));
    }

    #[test]
    fn scatter_moves_each_row_to_its_target() {
        let b = Records::with_timestamps(vec!["a", "b", "c"], vec![1, 2, 3]);
        let b = b.map(str::to_owned);
        let mut buffers = vec![Records::default(), Records::default()];
        b.scatter(&[1, 0, 1], &mut buffers).unwrap();
        assert_eq!(buffers[0].values(), &["b".to_owned()]);
        assert_eq!(buffers[1].values(), &["a".to_owned(), "c".to_owned()]);
        assert_eq!(buffers[1].timestamps(), Some(&[1, 3][..]));
    }

    #[test]
    fn append_mixes_timestamped_and_plain_batches() {
        let mut a = Records::from(vec![1]);
        a.append(Records::with_timestamps(vec![2], vec![7]));
        assert_eq!(a.timestamps(), Some(&[NO_TIMESTAMP, 7][..]));
    }

    #[test]
    fn encode_round_trips() {
        let b = Records::with_timestamps(vec![(1i64, "x".to_owned())], vec![5]);
        let mut bytes = Vec::new();
        b.encode(&mut bytes).unwrap();
        assert_eq!(Records::<(i64, String)>::decode(&bytes).unwrap(), b);
    }
}
