//! Triggers decide when a window emits its result, as Flink's `Trigger`.
//!
//! The window operator asks the trigger on every record added to a window
//! ([`Trigger::on_element`]) and whenever a time the trigger registered for that window is
//! reached ([`Trigger::on_event_time`], [`Trigger::on_processing_time`]). Registered times are kept
//! in the operator's time-ordered window index, so they cost nothing per record once set.

use std::any::Any;

use super::Window;

/// What a window does after its trigger was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing.
    Continue,
    /// Emit the window's result and keep its contents.
    Fire,
    /// Drop the window's contents without emitting.
    Purge,
    /// Emit the window's result, then drop its contents.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window emits.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// Whether the window's contents are dropped.
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// The clock a registered wake-up time refers to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum TimeDomain {
    /// Event time, advanced by watermarks.
    EventTime,
    /// Processing time, read from the job's clock.
    ProcessingTime,
}

/// What a trigger can see and do for the window it is asked about: the current times, wake-up
/// times for this window, and one `i64` of state per key and window (e.g. a count).
#[derive(Debug)]
pub struct TriggerContext<'a> {
    pub(crate) watermark: i64,
    pub(crate) processing_time: i64,
    /// The wake-up times registered for this window.
    pub(crate) timers: &'a mut Vec<(TimeDomain, i64)>,
    /// Registrations and deletions made during this call, for the operator's index.
    pub(crate) changes: &'a mut Vec<TimerChange>,
    pub(crate) state: &'a mut i64,
}

/// A wake-up time added to or removed from a window, applied to the index by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerChange {
    Added(TimeDomain, i64),
    Removed(TimeDomain, i64),
}

impl TriggerContext<'_> {
    /// The current event time (watermark) of the operator; `i64::MIN` before the first one.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The current processing time in milliseconds.
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time
    }

    fn register(&mut self, domain: TimeDomain, time: i64) {
        if !self.timers.contains(&(domain, time)) {
            self.timers.push((domain, time));
            self.changes.push(TimerChange::Added(domain, time));
        }
    }

    fn delete(&mut self, domain: TimeDomain, time: i64) {
        if let Some(i) = self.timers.iter().position(|t| *t == (domain, time)) {
            self.timers.swap_remove(i);
            self.changes.push(TimerChange::Removed(domain, time));
        }
    }

    /// Asks for [`Trigger::on_event_time`] once the watermark reaches `time`. Registering the
    /// same time twice is one registration.
    pub fn register_event_time_timer(&mut self, time: i64) {
        self.register(TimeDomain::EventTime, time);
    }

    /// Asks for [`Trigger::on_processing_time`] once processing time reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.register(TimeDomain::ProcessingTime, time);
    }

    /// Cancels an event-time registration of this window.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        self.delete(TimeDomain::EventTime, time);
    }

    /// Cancels a processing-time registration of this window.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        self.delete(TimeDomain::ProcessingTime, time);
    }

    /// The trigger's state for this key and window. Default: 0. When sessions merge, the
    /// merged window's state is the sum of the merged windows' states.
    pub fn state(&self) -> i64 {
        *self.state
    }

    /// Sets the trigger's state for this key and window.
    pub fn set_state(&mut self, value: i64) {
        *self.state = value;
    }
}

/// Decides when a window fires, as Flink's `Trigger`. Cloned for every subtask.
///
/// A trigger that fires a window early every `n` records and at the end of the window:
///
/// ```
/// use rivulet_runtime::window::{TimeWindow, Trigger, TriggerContext, TriggerResult, Window};
///
/// #[derive(Clone)]
/// struct EveryNAndAtEnd(i64);
///
/// impl Trigger<TimeWindow> for EveryNAndAtEnd {
///     fn on_element(&mut self, _ts: i64, window: &TimeWindow, ctx: &mut TriggerContext<'_>) -> TriggerResult {
///         ctx.register_event_time_timer(window.max_timestamp());
///         let seen = ctx.state() + 1;
///         ctx.set_state(seen % self.0);
///         if seen == self.0 { TriggerResult::Fire } else { TriggerResult::Continue }
///     }
///     fn on_event_time(&mut self, time: i64, window: &TimeWindow, _: &mut TriggerContext<'_>) -> TriggerResult {
///         if time == window.max_timestamp() { TriggerResult::Fire } else { TriggerResult::Continue }
///     }
///     fn on_processing_time(&mut self, _: i64, _: &TimeWindow, _: &mut TriggerContext<'_>) -> TriggerResult {
///         TriggerResult::Continue
///     }
/// }
/// ```
pub trait Trigger<W: Window>: Any + Send + 'static {
    /// A record was added to `window`.
    fn on_element(
        &mut self,
        timestamp: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// The watermark reached `time`, which this trigger registered for `window`.
    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// Processing time reached `time`, which this trigger registered for `window`.
    fn on_processing_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// Windows merged into `window` (session windows): the merged windows' registrations are
    /// gone; register what the merged window needs. The default does nothing.
    fn on_merge(&mut self, _window: &W, _ctx: &mut TriggerContext<'_>) {}
}

/// Fires once the watermark passes the end of the window, and again for every late record
/// within the allowed lateness. The default trigger of event-time assigners.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeTrigger;

impl EventTimeTrigger {
    /// The trigger.
    pub fn create() -> Self {
        EventTimeTrigger
    }
}

impl<W: Window> Trigger<W> for EventTimeTrigger {
    fn on_element(&mut self, _: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_watermark() {
            // A late record within the allowed lateness: fire with the updated contents.
            TriggerResult::Fire
        } else {
            ctx.register_event_time_timer(window.max_timestamp());
            TriggerResult::Continue
        }
    }

    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_processing_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_merge(&mut self, window: &W, ctx: &mut TriggerContext<'_>) {
        if window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp());
        }
    }
}

/// Fires once processing time passes the end of the window. The default trigger of
/// processing-time assigners.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessingTimeTrigger;

impl ProcessingTimeTrigger {
    /// The trigger.
    pub fn create() -> Self {
        ProcessingTimeTrigger
    }
}

impl<W: Window> Trigger<W> for ProcessingTimeTrigger {
    fn on_element(&mut self, _: i64, window: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        ctx.register_processing_time_timer(window.max_timestamp());
        TriggerResult::Continue
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Fire
    }

    fn on_merge(&mut self, window: &W, ctx: &mut TriggerContext<'_>) {
        ctx.register_processing_time_timer(window.max_timestamp());
    }
}

/// Fires every `n` records added to a window (the count restarts after each firing; the contents
/// are kept). Usually given to [`GlobalWindows`](super::GlobalWindows).
///
/// ```
/// use rivulet_runtime::window::{CountTrigger, GlobalWindows};
/// # let env = rivulet_runtime::StreamEnv::new().with_parallelism(1);
/// # let stream = env.from_vec(vec![(1u32, 1u64)]);
/// let sums = stream
///     .key_by(|(k, _)| *k)
///     .window(GlobalWindows::create())
///     .trigger(CountTrigger::of(100))
///     .reduce(|a, b| (a.0, a.1 + b.1));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger {
    count: i64,
}

impl CountTrigger {
    /// Fires every `count` records (at least 1).
    pub fn of(count: u64) -> Self {
        CountTrigger {
            count: i64::try_from(count).unwrap_or(i64::MAX).max(1),
        }
    }
}

impl<W: Window> Trigger<W> for CountTrigger {
    fn on_element(&mut self, _: i64, _: &W, ctx: &mut TriggerContext<'_>) -> TriggerResult {
        let seen = ctx.state() + 1;
        if seen >= self.count {
            ctx.set_state(0);
            TriggerResult::Fire
        } else {
            ctx.set_state(seen);
            TriggerResult::Continue
        }
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_merge(&mut self, _: &W, ctx: &mut TriggerContext<'_>) {
        // Merged counts are summed; fire with the next record if the sum reached the count.
        if ctx.state() >= self.count {
            ctx.set_state(self.count - 1);
        }
    }
}

/// Never fires: the default trigger of [`GlobalWindows`](super::GlobalWindows), which need a
/// trigger of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverTrigger;

impl<W: Window> Trigger<W> for NeverTrigger {
    fn on_element(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(&mut self, _: i64, _: &W, _: &mut TriggerContext<'_>) -> TriggerResult {
        TriggerResult::Continue
    }
}
