//! Watermark strategies: how event-time timestamps are assigned and watermarks generated.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::batch::{NO_TIMESTAMP, Records};

/// Turns the timestamps a stream has seen into watermarks.
///
/// One generator runs per source split (or per subtask of
/// [`assign_timestamps_and_watermarks`](crate::DataStream::assign_timestamps_and_watermarks)).
pub trait WatermarkGenerator: Send + 'static {
    /// Sees the timestamp of every record.
    fn on_event(&mut self, timestamp: i64);

    /// The watermark to emit now, if there is one; asked after every batch and periodically.
    fn current_watermark(&mut self) -> Option<i64>;
}

/// Watermarks that trail the largest timestamp seen by a fixed bound: records may arrive up to
/// `bound` out of order. The watermark is `max_timestamp - bound - 1`, as in Flink.
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    bound: i64,
    max_timestamp: Option<i64>,
}

impl BoundedOutOfOrderness {
    /// A generator allowing records to be up to `bound` late.
    pub fn new(bound: Duration) -> Self {
        BoundedOutOfOrderness {
            bound: bound.as_millis() as i64,
            max_timestamp: None,
        }
    }
}

impl WatermarkGenerator for BoundedOutOfOrderness {
    fn on_event(&mut self, timestamp: i64) {
        if timestamp != NO_TIMESTAMP {
            self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        }
    }

    fn current_watermark(&mut self) -> Option<i64> {
        self.max_timestamp
            .map(|m| m.saturating_sub(self.bound).saturating_sub(1))
    }
}

type GeneratorFactory = Arc<dyn Fn() -> Box<dyn WatermarkGenerator> + Send + Sync>;
type TimestampAssigner<T> = Arc<dyn Fn(&T, i64) -> i64 + Send + Sync>;

/// How a stream gets event time: a timestamp assigner, a watermark generator, and an optional
/// idleness timeout.
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::time::WatermarkStrategy;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Reading { sensor: String, ts: i64, value: f64 }
///
/// let strategy = WatermarkStrategy::<Reading>::for_bounded_out_of_orderness(Duration::from_secs(5))
///     .with_timestamp_assigner(|r, _| r.ts)
///     .with_idleness(Duration::from_secs(30));
/// # let _ = strategy;
/// ```
pub struct WatermarkStrategy<T> {
    generator: GeneratorFactory,
    assigner: Option<TimestampAssigner<T>>,
    idleness: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            generator: Arc::clone(&self.generator),
            assigner: self.assigner.clone(),
            idleness: self.idleness,
        }
    }
}

impl<T> fmt::Debug for WatermarkStrategy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkStrategy")
            .field("has_timestamp_assigner", &self.assigner.is_some())
            .field("idleness", &self.idleness)
            .finish()
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Watermarks for records that arrive at most `bound` out of order.
    pub fn for_bounded_out_of_orderness(bound: Duration) -> Self {
        Self::for_generator(move || BoundedOutOfOrderness::new(bound))
    }

    /// Watermarks for timestamps that never decrease: the watermark follows the largest
    /// timestamp seen.
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// Watermarks from a custom generator, made once per split or subtask.
    pub fn for_generator<G: WatermarkGenerator>(
        make: impl Fn() -> G + Send + Sync + 'static,
    ) -> Self {
        WatermarkStrategy {
            generator: Arc::new(move || Box::new(make())),
            assigner: None,
            idleness: None,
        }
    }

    /// Timestamps the records with `assign(record, previous timestamp)`; without an assigner
    /// records keep the timestamps they carry.
    pub fn with_timestamp_assigner(
        mut self,
        assign: impl Fn(&T, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(assign));
        self
    }

    /// Marks a split or subtask idle when it produced nothing for `timeout` of processing time,
    /// so it stops holding back the watermark; it becomes active again with its next record.
    ///
    /// Default: never idle.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// The per-split (or per-subtask) state of this strategy, created at processing time `now`
    /// (idleness counts from there).
    pub(crate) fn instance(&self, now: i64) -> WatermarkTracker<T> {
        WatermarkTracker {
            generator: (self.generator)(),
            assigner: self.assigner.clone(),
            idleness: self.idleness.map(|d| d.as_millis() as i64),
            emitted: i64::MIN,
            last_active: Some(now),
            idle: false,
        }
    }
}

/// What a [`WatermarkTracker`] says after a batch or a tick.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WatermarkUpdate {
    pub(crate) watermark: Option<i64>,
    pub(crate) idle: Option<bool>,
}

/// One split's or subtask's timestamp assignment, watermark generation and idleness.
pub(crate) struct WatermarkTracker<T> {
    generator: Box<dyn WatermarkGenerator>,
    assigner: Option<TimestampAssigner<T>>,
    idleness: Option<i64>,
    emitted: i64,
    last_active: Option<i64>,
    idle: bool,
}

impl<T> WatermarkTracker<T> {
    /// Assigns timestamps to `batch`, feeds them to the generator and returns the watermark and
    /// activity change to emit after it. `now` is the processing time.
    pub(crate) fn on_batch(
        &mut self,
        batch: Records<T>,
        now: i64,
    ) -> (Records<T>, WatermarkUpdate) {
        let batch = match &self.assigner {
            Some(assign) => {
                let (values, previous) = batch.into_parts();
                let timestamps: Vec<i64> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| assign(v, previous.get(i).copied().unwrap_or(NO_TIMESTAMP)))
                    .collect();
                Records::with_timestamps(values, timestamps)
            }
            None => batch,
        };
        if let Some(ts) = batch.timestamps() {
            for &t in ts {
                self.generator.on_event(t);
            }
        }
        let mut update = WatermarkUpdate::default();
        if !batch.is_empty() {
            self.last_active = Some(now);
            if self.idle {
                self.idle = false;
                update.idle = Some(false);
            }
        }
        update.watermark = self.advance();
        (batch, update)
    }

    fn advance(&mut self) -> Option<i64> {
        match self.generator.current_watermark() {
            Some(w) if w > self.emitted => {
                self.emitted = w;
                Some(w)
            }
            _ => None,
        }
    }

    /// A periodic tick at processing time `now`: a new watermark, or the switch to idle.
    pub(crate) fn on_tick(&mut self, now: i64) -> WatermarkUpdate {
        let mut update = WatermarkUpdate {
            watermark: self.advance(),
            idle: None,
        };
        if let Some(timeout) = self.idleness
            && !self.idle
        {
            let since = *self.last_active.get_or_insert(now);
            if now.saturating_sub(since) >= timeout {
                self.idle = true;
                update.idle = Some(true);
            }
        }
        update
    }

    /// The last watermark emitted.
    pub(crate) fn watermark(&self) -> i64 {
        self.emitted
    }

    /// Whether the split or subtask is idle.
    pub(crate) fn is_idle(&self) -> bool {
        self.idle
    }
}

/// Watermark tracking over one kind of batch, as the source task uses it per split.
pub(crate) trait BatchWatermarks<B>: Send {
    fn on_batch(&mut self, batch: B, now: i64) -> (B, WatermarkUpdate);
    fn on_tick(&mut self, now: i64) -> WatermarkUpdate;
    fn watermark(&self) -> i64;
    fn is_idle(&self) -> bool;
}

impl<T: Send + 'static> BatchWatermarks<Records<T>> for WatermarkTracker<T> {
    fn on_batch(&mut self, batch: Records<T>, now: i64) -> (Records<T>, WatermarkUpdate) {
        WatermarkTracker::on_batch(self, batch, now)
    }

    fn on_tick(&mut self, now: i64) -> WatermarkUpdate {
        WatermarkTracker::on_tick(self, now)
    }

    fn watermark(&self) -> i64 {
        WatermarkTracker::watermark(self)
    }

    fn is_idle(&self) -> bool {
        WatermarkTracker::is_idle(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_maximum() {
        let mut g = BoundedOutOfOrderness::new(Duration::from_millis(5));
        assert_eq!(g.current_watermark(), None);
        g.on_event(100);
        g.on_event(90);
        assert_eq!(g.current_watermark(), Some(94));
    }

    #[test]
    fn tracker_assigns_timestamps_and_goes_idle_on_the_clock() {
        let strategy = WatermarkStrategy::<(i64, u8)>::for_monotonous_timestamps()
            .with_timestamp_assigner(|r, _| r.0)
            .with_idleness(Duration::from_millis(50));
        let mut t = strategy.instance(1_000);
        let (batch, update) = t.on_batch(Records::from(vec![(10, 0), (20, 1)]), 1_000);
        assert_eq!(batch.timestamps(), Some(&[10, 20][..]));
        assert_eq!(update.watermark, Some(19));
        assert_eq!(t.on_tick(1_049).idle, None);
        assert_eq!(t.on_tick(1_050).idle, Some(true));
        let (_, update) = t.on_batch(Records::from(vec![(30, 2)]), 2_000);
        assert_eq!(update.idle, Some(false));
        assert_eq!(update.watermark, Some(29));
    }
}
