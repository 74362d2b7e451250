//! Window assigners: which windows a record belongs to, as Flink's `WindowAssigner`s.

use std::time::Duration;

use super::trigger::{EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, Trigger};
use super::{GlobalWindow, TimeWindow, Window, millis};

/// Assigns every record to zero or more windows. Cloned for every subtask.
pub trait WindowAssigner: Clone + Send + Sync + 'static {
    /// The windows it assigns.
    type Window: Window;

    /// Appends the windows of a record with event time `timestamp` (or [`NO_TIMESTAMP`]),
    /// arriving at processing time `processing_time`, to `out`.
    ///
    /// [`NO_TIMESTAMP`]: crate::NO_TIMESTAMP
    fn assign_windows(&self, timestamp: i64, processing_time: i64, out: &mut Vec<Self::Window>);

    /// The trigger used unless [`WindowedStream::trigger`](crate::datastream::WindowedStream::trigger)
    /// sets another.
    fn default_trigger(&self) -> Box<dyn Trigger<Self::Window>>;

    /// Whether windows are in event time: records need timestamps, and windows fire and are
    /// cleaned up by the watermark (plus the allowed lateness).
    fn is_event_time(&self) -> bool;

    /// Whether windows merge (sessions); then [`merge`](Self::merge) is called for every new
    /// window. Default: false.
    fn is_merging(&self) -> bool {
        false
    }

    /// Merges `new` with the key's live windows `active` (disjoint, sorted): returns the merged
    /// window and the indices of the windows of `active` it absorbs (empty if none). The default
    /// merges nothing.
    fn merge(&self, _active: &[Self::Window], new: &Self::Window) -> (Self::Window, Vec<usize>) {
        (new.clone(), Vec::new())
    }

    /// As [`merge`](Self::merge), but writes the indices of the absorbed windows into
    /// `absorbed` (cleared first) instead of a new vector. The window operator calls it for
    /// every record of a merging assigner, with one buffer it reuses. The default calls
    /// [`merge`](Self::merge); override both when allocating per record matters.
    fn merge_into(
        &self,
        active: &[Self::Window],
        new: &Self::Window,
        absorbed: &mut Vec<usize>,
    ) -> Self::Window {
        let (merged, indices) = self.merge(active, new);
        absorbed.clear();
        absorbed.extend(indices);
        merged
    }
}

/// Merges `new` with the windows of `active` it intersects (Flink's session merging); writes
/// their indices into `absorbed`.
fn merge_time_windows(
    active: &[TimeWindow],
    new: &TimeWindow,
    absorbed: &mut Vec<usize>,
) -> TimeWindow {
    absorbed.clear();
    let mut merged = *new;
    for (i, window) in active.iter().enumerate() {
        if window.intersects(new) {
            merged = merged.cover(window);
            absorbed.push(i);
        }
    }
    merged
}

/// Tumbling windows: fixed-size, non-overlapping windows of event time, aligned to the epoch
/// (plus an optional offset).
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::window::{TimeWindow, TumblingEventTimeWindows, WindowAssigner};
///
/// let mut windows = Vec::new();
/// TumblingEventTimeWindows::of(Duration::from_secs(60)).assign_windows(61_000, 0, &mut windows);
/// assert_eq!(windows, vec![TimeWindow::new(60_000, 120_000)]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TumblingEventTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size` (at least 1 ms).
    pub fn of(size: Duration) -> Self {
        TumblingEventTimeWindows {
            size: millis(size).max(1),
            offset: 0,
        }
    }

    /// Shifts the windows by `offset`, e.g. to align daily windows to a time zone. Default: 0.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset) % self.size;
        self
    }
}

impl WindowAssigner for TumblingEventTimeWindows {
    type Window = TimeWindow;

    fn assign_windows(&self, timestamp: i64, _: i64, out: &mut Vec<TimeWindow>) {
        let start = TimeWindow::window_start(timestamp, self.offset, self.size);
        out.push(TimeWindow::new(start, start.saturating_add(self.size)));
    }

    fn default_trigger(&self) -> Box<dyn Trigger<TimeWindow>> {
        Box::new(EventTimeTrigger)
    }

    fn is_event_time(&self) -> bool {
        true
    }
}

/// Appends the sliding windows of `size` every `slide` (shifted by `offset`) containing `time`.
fn sliding_windows(time: i64, size: i64, slide: i64, offset: i64, out: &mut Vec<TimeWindow>) {
    let last_start = TimeWindow::window_start(time, offset, slide);
    let mut start = last_start;
    while start > time - size {
        out.push(TimeWindow::new(start, start.saturating_add(size)));
        start -= slide;
    }
}

/// Sliding windows: windows of `size` starting every `slide` of event time, so a record belongs
/// to `size / slide` windows.
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::window::{SlidingEventTimeWindows, TimeWindow, WindowAssigner};
///
/// let mut windows = Vec::new();
/// SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5))
///     .assign_windows(7, 0, &mut windows);
/// assert_eq!(windows, vec![TimeWindow::new(5, 15), TimeWindow::new(0, 10)]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SlidingEventTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingEventTimeWindows {
    /// Windows of `size` every `slide` (both at least 1 ms).
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingEventTimeWindows {
            size: millis(size).max(1),
            slide: millis(slide).max(1),
            offset: 0,
        }
    }

    /// Shifts the windows by `offset`. Default: 0.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset) % self.slide;
        self
    }
}

impl WindowAssigner for SlidingEventTimeWindows {
    type Window = TimeWindow;

    fn assign_windows(&self, timestamp: i64, _: i64, out: &mut Vec<TimeWindow>) {
        sliding_windows(timestamp, self.size, self.slide, self.offset, out);
    }

    fn default_trigger(&self) -> Box<dyn Trigger<TimeWindow>> {
        Box::new(EventTimeTrigger)
    }

    fn is_event_time(&self) -> bool {
        true
    }
}

/// Session windows: a key's records closer than `gap` in event time form one window; a record
/// that bridges two sessions merges them.
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::window::{EventTimeSessionWindows, TimeWindow, WindowAssigner};
///
/// let sessions = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
/// let active = [TimeWindow::new(0, 10), TimeWindow::new(20, 30)];
/// let (merged, absorbed) = sessions.merge(&active, &TimeWindow::new(10, 20));
/// assert_eq!((merged, absorbed), (TimeWindow::new(0, 30), vec![0, 1]));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EventTimeSessionWindows {
    gap: i64,
}

impl EventTimeSessionWindows {
    /// Sessions that end after `gap` (at least 1 ms) without records.
    pub fn with_gap(gap: Duration) -> Self {
        EventTimeSessionWindows {
            gap: millis(gap).max(1),
        }
    }
}

impl WindowAssigner for EventTimeSessionWindows {
    type Window = TimeWindow;

    fn assign_windows(&self, timestamp: i64, _: i64, out: &mut Vec<TimeWindow>) {
        out.push(TimeWindow::new(
            timestamp,
            timestamp.saturating_add(self.gap),
        ));
    }

    fn default_trigger(&self) -> Box<dyn Trigger<TimeWindow>> {
        Box::new(EventTimeTrigger)
    }

    fn is_event_time(&self) -> bool {
        true
    }

    fn is_merging(&self) -> bool {
        true
    }

    fn merge(&self, active: &[TimeWindow], new: &TimeWindow) -> (TimeWindow, Vec<usize>) {
        let mut absorbed = Vec::new();
        let merged = merge_time_windows(active, new, &mut absorbed);
        (merged, absorbed)
    }

    fn merge_into(
        &self,
        active: &[TimeWindow],
        new: &TimeWindow,
        absorbed: &mut Vec<usize>,
    ) -> TimeWindow {
        merge_time_windows(active, new, absorbed)
    }
}

/// Tumbling windows of processing time: a record belongs to the window of the time it arrives.
#[derive(Debug, Clone, Copy)]
pub struct TumblingProcessingTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingProcessingTimeWindows {
    /// Windows of `size` (at least 1 ms).
    pub fn of(size: Duration) -> Self {
        TumblingProcessingTimeWindows {
            size: millis(size).max(1),
            offset: 0,
        }
    }

    /// Shifts the windows by `offset`. Default: 0.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset) % self.size;
        self
    }
}

impl WindowAssigner for TumblingProcessingTimeWindows {
    type Window = TimeWindow;

    fn assign_windows(&self, _: i64, processing_time: i64, out: &mut Vec<TimeWindow>) {
        let start = TimeWindow::window_start(processing_time, self.offset, self.size);
        out.push(TimeWindow::new(start, start.saturating_add(self.size)));
    }

    fn default_trigger(&self) -> Box<dyn Trigger<TimeWindow>> {
        Box::new(ProcessingTimeTrigger)
    }

    fn is_event_time(&self) -> bool {
        false
    }
}

/// Sliding windows of processing time.
#[derive(Debug, Clone, Copy)]
pub struct SlidingProcessingTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingProcessingTimeWindows {
    /// Windows of `size` every `slide` (both at least 1 ms).
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingProcessingTimeWindows {
            size: millis(size).max(1),
            slide: millis(slide).max(1),
            offset: 0,
        }
    }

    /// Shifts the windows by `offset`. Default: 0.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset) % self.slide;
        self
    }
}

impl WindowAssigner for SlidingProcessingTimeWindows {
    type Window = TimeWindow;

    fn assign_windows(&self, _: i64, processing_time: i64, out: &mut Vec<TimeWindow>) {
        sliding_windows(processing_time, self.size, self.slide, self.offset, out);
    }

    fn default_trigger(&self) -> Box<dyn Trigger<TimeWindow>> {
        Box::new(ProcessingTimeTrigger)
    }

    fn is_event_time(&self) -> bool {
        false
    }
}

/// Session windows of processing time.
#[derive(Debug, Clone, Copy)]
pub struct ProcessingTimeSessionWindows {
    gap: i64,
}

impl ProcessingTimeSessionWindows {
    /// Sessions that end after `gap` (at least 1 ms) without records.
    pub fn with_gap(gap: Duration) -> Self {
        ProcessingTimeSessionWindows {
            gap: millis(gap).max(1),
        }
    }
}

impl WindowAssigner for ProcessingTimeSessionWindows {
    type Window = TimeWindow;

    fn assign_windows(&self, _: i64, processing_time: i64, out: &mut Vec<TimeWindow>) {
        out.push(TimeWindow::new(
            processing_time,
            processing_time.saturating_add(self.gap),
        ));
    }

    fn default_trigger(&self) -> Box<dyn Trigger<TimeWindow>> {
        Box::new(ProcessingTimeTrigger)
    }

    fn is_event_time(&self) -> bool {
        false
    }

    fn is_merging(&self) -> bool {
        true
    }

    fn merge(&self, active: &[TimeWindow], new: &TimeWindow) -> (TimeWindow, Vec<usize>) {
        let mut absorbed = Vec::new();
        let merged = merge_time_windows(active, new, &mut absorbed);
        (merged, absorbed)
    }

    fn merge_into(
        &self,
        active: &[TimeWindow],
        new: &TimeWindow,
        absorbed: &mut Vec<usize>,
    ) -> TimeWindow {
        merge_time_windows(active, new, absorbed)
    }
}

/// One window per key holding all of its records. Its default trigger never fires, so set one,
/// e.g. [`CountTrigger`](super::CountTrigger). Records need no timestamps. Unlike Flink, the
/// window's state is dropped at the end of input (watermark `i64::MAX`), without firing.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The assigner.
    pub fn create() -> Self {
        GlobalWindows
    }
}

impl WindowAssigner for GlobalWindows {
    type Window = GlobalWindow;

    fn assign_windows(&self, _: i64, _: i64, out: &mut Vec<GlobalWindow>) {
        out.push(GlobalWindow);
    }

    fn default_trigger(&self) -> Box<dyn Trigger<GlobalWindow>> {
        Box::new(NeverTrigger)
    }

    fn is_event_time(&self) -> bool {
        false
    }
}
