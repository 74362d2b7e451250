//! Windows: group a keyed stream into finite buckets by time (or count) and compute one result
//! per key and window, as Flink's DataStream windows.
//!
//! - [`assigner`]: which windows a record belongs to ([`TumblingEventTimeWindows`],
//!   [`SlidingEventTimeWindows`], [`EventTimeSessionWindows`], their processing-time twins, and
//!   [`GlobalWindows`]).
//! - [`trigger`]: when a window emits its result ([`EventTimeTrigger`], [`ProcessingTimeTrigger`],
//!   [`CountTrigger`], or a custom [`Trigger`]).
//! - [`function`]: what a window computes, incrementally ([`reduce`] / [`aggregate`]) or over all
//!   of its records ([`ProcessWindowFunction`]).
//! - `operator`: the window operator, a batch at a time. Window contents live per key and window
//!   in hash tables per key group, found with the key hash that also picked the key group; an
//!   index of live windows ordered by time fires them from the watermark (or the processing-time
//!   clock), not one timer per key and window.
//! - `store`: those tables and the index.
//!
//! Windows are built with [`KeyedStream::window`](crate::KeyedStream::window) (or
//! [`DataStream::window_all`](crate::DataStream::window_all)), which returns a
//! [`WindowedStream`](crate::datastream::WindowedStream).
//!
//! Late records (their windows' end plus the allowed lateness passed by the watermark) are dropped
//! and counted, or, after [`side_output_late_data`], returned as a second stream. Window state is
//! checkpointed per key group in the keyed state format (the window is the namespace); the index
//! is rebuilt from it on restore.
//!
//! [`reduce`]: crate::datastream::WindowedStream::reduce
//! [`aggregate`]: crate::datastream::WindowedStream::aggregate
//! [`side_output_late_data`]: crate::datastream::WindowedStream::side_output_late_data
//!
//! Clicks per user and minute of event time, with records up to 5 s out of order:
//!
//! ```
//! use std::time::Duration;
//! use rivulet_runtime::StreamEnv;
//! use rivulet_runtime::time::WatermarkStrategy;
//! use rivulet_runtime::window::TumblingEventTimeWindows;
//!
//! let env = StreamEnv::new().with_parallelism(2);
//! // (user, clicks, timestamp in ms)
//! let clicks = vec![(1u32, 1u64, 1_000i64), (2, 1, 2_000), (1, 1, 59_000), (1, 1, 61_000)];
//! let per_minute = env
//!     .from_vec(clicks)
//!     .assign_timestamps_and_watermarks(
//!         WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
//!             .with_timestamp_assigner(|c: &(u32, u64, i64), _| c.2),
//!     )
//!     .key_by(|c| c.0)
//!     .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
//!     .reduce(|a, b| (a.0, a.1 + b.1, a.2.min(b.2)))
//!     .collect();
//! env.execute("clicks per minute").unwrap();
//! assert_eq!(
//!     per_minute.take_sorted(),
//!     vec![(1, 1, 61_000), (1, 2, 1_000), (2, 1, 2_000)]
//! );
//! ```
//!
//! Global windows with a count trigger:
//!
//! ```
//! use rivulet_runtime::StreamEnv;
//! use rivulet_runtime::window::{CountTrigger, GlobalWindows};
//!
//! let env = StreamEnv::new().with_parallelism(1);
//! // Sum every two readings of a sensor.
//! let pairs = env
//!     .from_vec(vec![(1u32, 1u64), (2, 10), (1, 2), (1, 3), (2, 20)])
//!     .key_by(|(sensor, _)| *sensor)
//!     .window(GlobalWindows::create())
//!     .trigger(CountTrigger::of(2))
//!     .reduce(|x, y| (x.0, x.1 + y.1))
//!     .collect();
//! env.execute("pairs").unwrap();
//! assert_eq!(pairs.take_sorted(), vec![(1, 3), (2, 30)]);
//! ```

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod assigner;
pub mod function;
pub(crate) mod operator;
mod store;
pub mod trigger;

pub use assigner::{
    EventTimeSessionWindows, GlobalWindows, ProcessingTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows,
    WindowAssigner,
};
pub use function::ProcessWindowFunction;
pub use trigger::{
    CountTrigger, EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, TimeDomain, Trigger,
    TriggerContext, TriggerResult,
};

/// A window: a finite bucket of records, used as the state namespace of its contents.
pub trait Window:
    Clone + Eq + Ord + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The largest timestamp that still belongs to the window; event-time windows fire when the
    /// watermark reaches it.
    fn max_timestamp(&self) -> i64;

    /// Appends the window's namespace encoding (order-preserving) to `out`.
    fn encode_namespace(&self, out: &mut Vec<u8>);

    /// Reads a namespace written by [`encode_namespace`](Self::encode_namespace), e.g. to
    /// rebuild the window index from restored state.
    fn decode_namespace(bytes: &[u8]) -> Option<Self>;
}

/// A window of time `[start, end)`: start inclusive, end exclusive, as Flink's `TimeWindow`.
///
/// ```
/// use rivulet_runtime::window::{TimeWindow, Window};
///
/// let w = TimeWindow::new(0, 60_000);
/// assert_eq!(w.max_timestamp(), 59_999);
/// assert!(w.intersects(&TimeWindow::new(60_000, 120_000)));
/// assert_eq!(w.cover(&TimeWindow::new(60_000, 120_000)), TimeWindow::new(0, 120_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeWindow {
    /// The first timestamp of the window (inclusive).
    pub start: i64,
    /// The end of the window (exclusive).
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        TimeWindow { start, end }
    }

    /// Whether the two windows overlap or touch (Flink's rule for merging sessions).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window containing both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The start of the window of size `size` shifted by `offset` that contains `timestamp`
    /// (Flink's `TimeWindow.getWindowStartWithOffset`).
    /// Computed without overflow; a start before `i64::MIN` saturates to it.
    pub fn window_start(timestamp: i64, offset: i64, size: i64) -> i64 {
        let remainder = (i128::from(timestamp) - i128::from(offset)).rem_euclid(i128::from(size));
        (i128::from(timestamp) - remainder).max(i128::from(i64::MIN)) as i64
    }
}

/// Maps an `i64` to bytes whose lexicographic order is the numeric order.
fn ordered_bytes(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered_bytes(bytes: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

impl Window for TimeWindow {
    fn max_timestamp(&self) -> i64 {
        self.end - 1
    }

    fn encode_namespace(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&ordered_bytes(self.start));
        out.extend_from_slice(&ordered_bytes(self.end));
    }

    fn decode_namespace(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 {
            return None;
        }
        Some(TimeWindow::new(
            from_ordered_bytes(&bytes[..8])?,
            from_ordered_bytes(&bytes[8..])?,
        ))
    }
}

/// The one window of [`GlobalWindows`]: every record of a key, forever. It never fires by time;
/// give it a trigger such as [`CountTrigger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }

    fn encode_namespace(&self, out: &mut Vec<u8>) {
        out.push(0);
    }

    fn decode_namespace(bytes: &[u8]) -> Option<Self> {
        (bytes == [0]).then_some(GlobalWindow)
    }
}

/// Errors of window operators.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// An event-time window received a record without a timestamp.
    #[error(
        "window operator {operator:?} uses event-time windows but received a record without a timestamp; assign timestamps and watermarks upstream, or use processing-time windows"
    )]
    MissingTimestamp {
        /// The window operator's name.
        operator: String,
    },
}

/// Converts a duration to milliseconds, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_encoding_round_trips_and_keeps_order() {
        let windows = [
            TimeWindow::new(-20, -10),
            TimeWindow::new(-10, 0),
            TimeWindow::new(0, 10),
            TimeWindow::new(0, 20),
        ];
        let mut encoded = Vec::new();
        for w in windows {
            let mut bytes = Vec::new();
            w.encode_namespace(&mut bytes);
            assert_eq!(TimeWindow::decode_namespace(&bytes), Some(w));
            encoded.push(bytes);
        }
        assert!(encoded.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn window_start_handles_negative_timestamps_and_offsets() {
        assert_eq!(TimeWindow::window_start(5, 0, 10), 0);
        assert_eq!(TimeWindow::window_start(-1, 0, 10), -10);
        assert_eq!(TimeWindow::window_start(12, 3, 10), 3);
        assert_eq!(TimeWindow::window_start(2, 3, 10), -7);
    }
}
