//! Task loops: what the thread of one subtask runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::{CancelFlag, Inbox, MAX_WAIT, Received};
use crate::checkpoint::{Aligned, BarrierAligner, Coordinator};
use crate::error::TaskError;
use crate::message::{Barrier, Message};
use crate::operator::Output;
use crate::time::Clock;

/// What every task loop needs from its job.
pub(crate) struct TaskEnv {
    pub(crate) cancel: Arc<CancelFlag>,
    pub(crate) buffer_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) checkpoints: Option<Arc<Coordinator>>,
}

/// The body of one subtask's thread.
pub(crate) trait TaskBody: Send {
    fn run(self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError>;
}

/// What changed for a task after an input event: its watermark, its idleness, or both.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputUpdate {
    pub(crate) watermark: Option<i64>,
    pub(crate) idle: Option<bool>,
}

/// Tracks the watermark, idleness and end of every input channel of a task.
///
/// A task's watermark is the minimum over its active channels; a channel that is idle or ended
/// does not hold it back, and the watermark never goes backwards. When every open channel is
/// idle, the task itself is idle, and its watermark becomes the largest any channel reached.
pub(crate) struct InputTracker {
    watermarks: Vec<i64>,
    ended: Vec<bool>,
    idle: Vec<bool>,
    open: usize,
    current: i64,
    task_idle: bool,
}

impl InputTracker {
    pub(crate) fn new(channels: usize) -> Self {
        InputTracker {
            watermarks: vec![i64::MIN; channels],
            ended: vec![false; channels],
            idle: vec![false; channels],
            open: channels,
            current: i64::MIN,
            task_idle: false,
        }
    }

    fn recompute(&mut self) -> InputUpdate {
        let mut update = InputUpdate::default();
        let min = (0..self.watermarks.len())
            .filter(|&c| !self.ended[c] && !self.idle[c])
            .map(|c| self.watermarks[c])
            .min();
        let all_idle = self.open > 0 && min.is_none();
        if all_idle != self.task_idle {
            self.task_idle = all_idle;
            update.idle = Some(all_idle);
        }
        // When the last active input goes idle, what every input already promised holds: emit
        // the largest watermark any of them reached (as Flink's watermark valve does).
        let min = if all_idle {
            (0..self.watermarks.len())
                .filter(|&c| !self.ended[c])
                .map(|c| self.watermarks[c])
                .max()
        } else {
            min
        };
        if let Some(min) = min
            && min > self.current
        {
            self.current = min;
            update.watermark = Some(min);
        }
        update
    }

    /// Data arrived on `channel`, which makes it active.
    pub(crate) fn on_data(&mut self, channel: usize) -> InputUpdate {
        if self.idle[channel] {
            self.idle[channel] = false;
            self.recompute()
        } else {
            InputUpdate::default()
        }
    }

    /// Channel `channel` reached `watermark`.
    pub(crate) fn on_watermark(&mut self, channel: usize, watermark: i64) -> InputUpdate {
        let was_idle = std::mem::replace(&mut self.idle[channel], false);
        if watermark <= self.watermarks[channel] && !was_idle {
            return InputUpdate::default();
        }
        self.watermarks[channel] = self.watermarks[channel].max(watermark);
        self.recompute()
    }

    /// Channel `channel` became idle or active.
    pub(crate) fn on_idle(&mut self, channel: usize, idle: bool) -> InputUpdate {
        if self.idle[channel] == idle {
            return InputUpdate::default();
        }
        self.idle[channel] = idle;
        self.recompute()
    }

    /// Channel `channel` ended; also says whether every channel has now ended.
    pub(crate) fn on_end(&mut self, channel: usize) -> (InputUpdate, bool) {
        if !self.ended[channel] {
            self.ended[channel] = true;
            self.open -= 1;
        }
        if self.open == 0 {
            (InputUpdate::default(), true)
        } else {
            (self.recompute(), false)
        }
    }
}

/// Tells a task when processing time moved, so its operators can fire what is due.
pub(crate) struct ProcessingTime {
    clock: Arc<dyn Clock>,
    last: i64,
}

impl ProcessingTime {
    pub(crate) fn new(clock: &Arc<dyn Clock>) -> Self {
        ProcessingTime {
            clock: Arc::clone(clock),
            last: i64::MIN,
        }
    }

    /// The clock's time if it advanced since the last call.
    pub(crate) fn advanced(&mut self) -> Option<i64> {
        let now = self.clock.now_ms();
        (now > self.last).then(|| {
            self.last = now;
            now
        })
    }
}

/// A task's part in checkpoints: barrier alignment over its input channels, and telling its
/// operators when a checkpoint completed.
pub(crate) struct Checkpointing {
    aligner: BarrierAligner,
    /// Exactly-once: hold back inputs whose barrier arrived; at-least-once: never.
    aligned: bool,
    coordinator: Option<Arc<Coordinator>>,
    notified: u64,
}

impl Checkpointing {
    pub(crate) fn new(channels: usize, coordinator: Option<&Arc<Coordinator>>) -> Self {
        Checkpointing {
            aligner: BarrierAligner::new(channels),
            aligned: coordinator.is_none_or(|c| c.aligned()),
            notified: coordinator.map_or(0, |c| c.completed()),
            coordinator: coordinator.cloned(),
        }
    }

    fn hold<C: Send>(&self, inbox: &Inbox<C>, channels: usize) {
        if !self.aligned {
            return;
        }
        for channel in 0..channels {
            inbox.set_held(channel, self.aligner.is_held(channel));
        }
    }

    /// A barrier arrived on `channel`; returns it once every channel delivered it.
    pub(crate) fn on_barrier<C: Send>(
        &mut self,
        inbox: &Inbox<C>,
        channel: usize,
        barrier: Barrier,
    ) -> Option<Barrier> {
        let aligned = self.aligner.on_barrier(channel, barrier);
        self.hold(inbox, inbox.channels());
        match aligned {
            Aligned::Complete(barrier) => Some(barrier),
            Aligned::Hold | Aligned::Ignore => None,
        }
    }

    /// `channel` ended; returns the barrier being aligned if that completed it.
    pub(crate) fn on_end<C: Send>(&mut self, inbox: &Inbox<C>, channel: usize) -> Option<Barrier> {
        let completed = self.aligner.on_end(channel);
        if completed.is_some() {
            self.hold(inbox, inbox.channels());
        }
        completed
    }

    /// The id of a checkpoint that completed since the last call.
    pub(crate) fn newly_completed(&mut self) -> Option<u64> {
        let completed = self.coordinator.as_ref()?.completed();
        (completed > self.notified).then(|| {
            self.notified = completed;
            completed
        })
    }
}

/// Flushes a task's output buffers every buffer timeout.
pub(crate) struct Flusher {
    timeout: Duration,
    next: Instant,
}

impl Flusher {
    pub(crate) fn new(timeout: Duration) -> Self {
        Flusher {
            timeout,
            next: Instant::now() + timeout,
        }
    }

    /// When the next flush is due, or sooner so cancellation is never missed for long.
    pub(crate) fn deadline(&self) -> Instant {
        self.next.min(Instant::now() + MAX_WAIT)
    }

    /// Whether a flush is due now; if so, schedules the next one.
    pub(crate) fn due(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.next {
            self.next = now + self.timeout;
            true
        } else {
            false
        }
    }

    /// How long until the next flush.
    pub(crate) fn remaining(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }
}

/// A task reading its input channels into its chain: a one-input operator, or a two-input
/// operator reading [`TwoInputs`](crate::graph::TwoInputs).
pub(crate) struct OneInputTask<B> {
    pub(crate) inbox: Arc<Inbox<B>>,
    pub(crate) chain: Box<dyn Output<B>>,
}

impl<B: Send + 'static> TaskBody for OneInputTask<B> {
    fn run(mut self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError> {
        self.chain.open()?;
        let mut inputs = InputTracker::new(self.inbox.channels());
        let mut flusher = Flusher::new(env.buffer_timeout);
        let mut time = ProcessingTime::new(&env.clock);
        let mut checkpoints = Checkpointing::new(self.inbox.channels(), env.checkpoints.as_ref());
        loop {
            let update = match self.inbox.recv(Some(flusher.deadline())) {
                Received::Message(channel, Message::Data(batch)) => {
                    if let Some(idle) = inputs.on_data(channel).idle {
                        self.chain.emit_idle(idle)?;
                    }
                    self.chain.collect(batch)?;
                    InputUpdate::default()
                }
                Received::Message(channel, Message::Watermark(w)) => {
                    inputs.on_watermark(channel, w)
                }
                Received::Message(channel, Message::Idle(idle)) => inputs.on_idle(channel, idle),
                Received::Message(channel, Message::Barrier(barrier)) => {
                    if let Some(barrier) = checkpoints.on_barrier(&self.inbox, channel, barrier) {
                        self.chain.emit_barrier(barrier)?;
                    }
                    InputUpdate::default()
                }
                Received::Message(channel, Message::EndOfInput) => {
                    if let Some(barrier) = checkpoints.on_end(&self.inbox, channel) {
                        self.chain.emit_barrier(barrier)?;
                    }
                    let (update, all_ended) = inputs.on_end(channel);
                    if all_ended {
                        return self.chain.finish();
                    }
                    update
                }
                Received::Timeout => InputUpdate::default(),
                Received::Cancelled => return Err(TaskError::Cancelled),
            };
            if update.idle == Some(false) {
                self.chain.emit_idle(false)?;
            }
            if let Some(w) = update.watermark {
                self.chain.emit_watermark(w)?;
            }
            if update.idle == Some(true) {
                self.chain.emit_idle(true)?;
            }
            if let Some(now) = time.advanced() {
                self.chain.processing_time(now)?;
            }
            if let Some(id) = checkpoints.newly_completed() {
                self.chain.notify_checkpoint_complete(id)?;
            }
            if flusher.due() {
                self.chain.flush()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(w: i64) -> InputUpdate {
        InputUpdate {
            watermark: Some(w),
            idle: None,
        }
    }

    #[test]
    fn watermark_is_the_minimum_over_open_channels() {
        let mut t = InputTracker::new(3);
        assert_eq!(t.on_watermark(0, 10), InputUpdate::default());
        assert_eq!(t.on_watermark(1, 5), InputUpdate::default());
        assert_eq!(t.on_watermark(2, 7), wm(5));
        assert_eq!(t.on_watermark(1, 20), wm(7));
        assert_eq!(t.on_end(2), (wm(10), false));
        assert_eq!(t.on_end(0), (wm(20), false));
        assert_eq!(t.on_end(1), (InputUpdate::default(), true));
    }

    #[test]
    fn idle_channels_do_not_hold_the_watermark_back() {
        let mut t = InputTracker::new(2);
        assert_eq!(t.on_watermark(0, 100), InputUpdate::default());
        // Channel 1 never sent anything; once idle, channel 0 alone decides.
        assert_eq!(t.on_idle(1, true), wm(100));
        assert_eq!(t.on_watermark(0, 150), wm(150));
        // Channel 1 comes back behind the current watermark: nothing goes backwards.
        assert_eq!(t.on_watermark(1, 120), InputUpdate::default());
        assert_eq!(t.on_watermark(0, 300), InputUpdate::default());
        assert_eq!(t.on_watermark(1, 400), wm(300));
    }

    #[test]
    fn a_task_whose_inputs_are_all_idle_is_idle() {
        let mut t = InputTracker::new(2);
        assert_eq!(t.on_idle(0, true), InputUpdate::default());
        assert_eq!(
            t.on_idle(1, true),
            InputUpdate {
                watermark: None,
                idle: Some(true)
            }
        );
        assert_eq!(
            t.on_data(1),
            InputUpdate {
                watermark: None,
                idle: Some(false)
            }
        );
    }
}
