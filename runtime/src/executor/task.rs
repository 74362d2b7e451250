//! Task loops: what the thread of one subtask runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::Batch;
use crate::channel::{CancelFlag, Inbox, MAX_WAIT, Received};
use crate::checkpoint::{Aligned, BarrierAligner, Coordinator, InFlightLog};
use crate::error::{BoxError, TaskError};
use crate::graph::{NodeId, TwoInputs};
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

/// How a task's channel payload is encoded for the in-flight data of unaligned checkpoints.
pub(crate) struct PayloadCodec<C> {
    pub(crate) encode: fn(&C, &mut Vec<u8>) -> Result<(), BoxError>,
    pub(crate) decode: fn(&[u8]) -> Result<C, BoxError>,
}

impl<C> Clone for PayloadCodec<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for PayloadCodec<C> {}

impl<B: Batch> PayloadCodec<B> {
    /// The codec of a one-input task: the batch's own.
    pub(crate) fn of_batch() -> Self {
        PayloadCodec {
            encode: |batch, out| batch.encode(out),
            decode: B::decode,
        }
    }
}

impl<A: Batch, B: Batch> PayloadCodec<TwoInputs<A, B>> {
    /// The codec of a two-input task: a tag byte for the input, then the batch.
    pub(crate) fn of_two_inputs() -> Self {
        PayloadCodec {
            encode: |batch, out| match batch {
                TwoInputs::First(b) => {
                    out.push(0);
                    b.encode(out)
                }
                TwoInputs::Second(b) => {
                    out.push(1);
                    b.encode(out)
                }
            },
            decode: |bytes| match bytes.split_first() {
                Some((0, rest)) => Ok(TwoInputs::First(A::decode(rest)?)),
                Some((1, rest)) => Ok(TwoInputs::Second(B::decode(rest)?)),
                _ => Err("an in-flight batch of a two-input task without its input tag".into()),
            },
        }
    }
}

/// A task's part in checkpoints: barrier alignment over its input channels, unaligned snapshots
/// and the in-flight data they owe, and telling its operators when a checkpoint completed.
pub(crate) struct Checkpointing {
    aligner: BarrierAligner,
    /// Exactly-once: hold back inputs whose barrier arrived; at-least-once: never.
    aligned: bool,
    coordinator: Option<Arc<Coordinator>>,
    notified: u64,
    /// The operator subtask heading the task, which owns the task's in-flight data.
    head: (NodeId, usize),
    ended: Vec<bool>,
    /// The latest checkpoint this task snapshotted; its barriers arriving later only settle
    /// the in-flight log.
    snapshotted: u64,
    /// With an aligned-checkpoint timeout: the checkpoint being aligned and when it started.
    aligning_since: Option<(u64, Instant)>,
    aligned_timeout: Option<Duration>,
    /// Whether checkpoints may be unaligned.
    unaligned: bool,
    /// The in-flight data unaligned snapshots still collect, oldest first (several with
    /// concurrent checkpoints).
    logs: Vec<InFlightLog>,
}

impl Checkpointing {
    pub(crate) fn new(
        channels: usize,
        coordinator: Option<&Arc<Coordinator>>,
        head: (NodeId, usize),
    ) -> Self {
        Checkpointing {
            aligner: BarrierAligner::new(channels),
            aligned: coordinator.is_none_or(|c| c.aligned()),
            notified: coordinator.map_or(0, |c| c.completed()),
            aligned_timeout: coordinator
                .filter(|c| c.unaligned_enabled())
                .and_then(|c| c.aligned_timeout()),
            unaligned: coordinator.is_some_and(|c| c.unaligned_enabled()),
            coordinator: coordinator.cloned(),
            head,
            ended: vec![false; channels],
            snapshotted: 0,
            aligning_since: None,
            logs: Vec::new(),
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

    /// A barrier arrived in order on `channel`; returns the barrier to snapshot and forward, once
    /// every channel delivered it (aligned) or at once (unaligned).
    pub(crate) fn on_barrier<C: Send>(
        &mut self,
        inbox: &Inbox<C>,
        channel: usize,
        barrier: Barrier,
    ) -> Option<Barrier> {
        if barrier.checkpoint_id <= self.snapshotted {
            self.settle(channel, barrier.checkpoint_id, Vec::new());
            return None;
        }
        if barrier.unaligned && self.aligned {
            return Some(self.snapshot_unaligned(inbox, Some((channel, Vec::new())), barrier));
        }
        let aligned = self.aligner.on_barrier(channel, barrier);
        self.hold(inbox, inbox.channels());
        match aligned {
            Aligned::Complete(barrier) => {
                self.aligning_since = None;
                self.snapshotted = barrier.checkpoint_id;
                Some(barrier)
            }
            Aligned::Hold => {
                if self.aligned_timeout.is_some()
                    && self
                        .aligning_since
                        .is_none_or(|(id, _)| id != barrier.checkpoint_id)
                {
                    self.aligning_since = Some((barrier.checkpoint_id, Instant::now()));
                }
                None
            }
            Aligned::Ignore => None,
        }
    }

    /// An unaligned barrier overtook `overtaken` messages of `channel`'s data lane; returns the
    /// barrier to snapshot and forward when it is the first of its checkpoint here.
    pub(crate) fn on_overtaking<C: Send>(
        &mut self,
        inbox: &Inbox<C>,
        channel: usize,
        barrier: Barrier,
        overtaken: usize,
        codec: PayloadCodec<C>,
    ) -> Result<Option<Barrier>, TaskError> {
        if !self.aligned {
            return Ok(self.on_barrier(inbox, channel, barrier));
        }
        let id = barrier.checkpoint_id;
        let owing = self
            .logs
            .iter()
            .any(|log| log.checkpoint_id() == id && log.is_owing(channel));
        if id <= self.snapshotted && !owing {
            return Ok(None);
        }
        // What the barrier overtook belongs to the snapshot: capture it from the lane now,
        // without waiting for the task to process it.
        let mut captured = Vec::new();
        inbox.visit_queued(channel, overtaken, |message| {
            if let Message::Data(batch) = message {
                let mut bytes = Vec::new();
                (codec.encode)(batch, &mut bytes)?;
                captured.push(bytes);
            }
            Ok::<(), BoxError>(())
        })?;
        if id <= self.snapshotted {
            self.settle(channel, id, captured);
            return Ok(None);
        }
        Ok(Some(self.snapshot_unaligned(
            inbox,
            Some((channel, captured)),
            barrier,
        )))
    }

    /// Snapshots for `barrier` now, unaligned: releases every held channel and starts the log
    /// of the in-flight data the snapshot owes. `arrived`: the channel whose barrier triggered
    /// it and the encoded batches that barrier overtook.
    fn snapshot_unaligned<C: Send>(
        &mut self,
        inbox: &Inbox<C>,
        arrived: Option<(usize, Vec<Vec<u8>>)>,
        barrier: Barrier,
    ) -> Barrier {
        let id = barrier.checkpoint_id;
        let aligning_this = self
            .aligner
            .aligning()
            .is_some_and(|b| b.checkpoint_id == id);
        let delivered = (0..self.ended.len())
            .map(|c| self.ended[c] || (aligning_this && self.aligner.is_held(c)))
            .collect::<Vec<_>>();
        self.aligner.abandon();
        self.hold(inbox, inbox.channels());
        self.aligning_since = None;
        self.snapshotted = id;
        let mut log = InFlightLog::new(id, delivered);
        if let Some((channel, overtaken)) = arrived {
            log.on_barrier(channel, overtaken);
        }
        if let Some(coordinator) = &self.coordinator {
            coordinator.expect_in_flight(id, self.head.0, self.head.1);
        }
        // A log of an older checkpoint stays: with concurrent checkpoints it may still complete.
        self.logs.push(log);
        self.ack_if_complete();
        Barrier {
            unaligned: true,
            ..barrier
        }
    }

    /// The barrier of checkpoint `id` arrived on `channel` after this task snapshotted it.
    fn settle(&mut self, channel: usize, id: u64, overtaken: Vec<Vec<u8>>) {
        if let Some(log) = self.logs.iter_mut().find(|l| l.checkpoint_id() == id) {
            log.on_barrier(channel, overtaken);
            self.ack_if_complete();
        }
    }

    fn ack_if_complete(&mut self) {
        if !self.logs.iter().any(InFlightLog::is_complete) {
            return;
        }
        let (complete, owing) = std::mem::take(&mut self.logs)
            .into_iter()
            .partition::<Vec<_>, _>(InFlightLog::is_complete);
        self.logs = owing;
        if let Some(coordinator) = &self.coordinator {
            for log in complete {
                let id = log.checkpoint_id();
                coordinator.ack_in_flight(id, self.head.0, self.head.1, log.into_data());
            }
        }
    }

    /// A message was read from `channel`'s data lane: an unaligned snapshot may owe it.
    pub(crate) fn on_message<C>(
        &mut self,
        channel: usize,
        message: &Message<C>,
        codec: PayloadCodec<C>,
    ) -> Result<(), TaskError> {
        if self.logs.is_empty() {
            return Ok(());
        }
        for log in &mut self.logs {
            log.on_message(channel, |out| match message {
                Message::Data(batch) => (codec.encode)(batch, out).map(|()| true),
                _ => Ok(false),
            })?;
        }
        self.ack_if_complete();
        Ok(())
    }

    /// Whether checkpoints may be unaligned.
    pub(crate) fn unaligned(&self) -> bool {
        self.unaligned
    }

    /// When the alignment in progress times out (with an aligned-checkpoint timeout).
    pub(crate) fn alignment_deadline(&self) -> Option<Instant> {
        let (_, since) = self.aligning_since?;
        Some(since + self.aligned_timeout?)
    }

    /// Switches the alignment in progress to unaligned if it took longer than the aligned
    /// checkpoint timeout; returns the barrier to snapshot and forward then.
    pub(crate) fn on_alignment_timeout<C: Send>(&mut self, inbox: &Inbox<C>) -> Option<Barrier> {
        if self.alignment_deadline()? > Instant::now() {
            return None;
        }
        self.aligning_since = None;
        let barrier = self.aligner.aligning()?;
        // Savepoints stay aligned however long they take.
        let allowed = self
            .coordinator
            .as_ref()
            .is_some_and(|c| c.may_be_unaligned(barrier.checkpoint_id));
        allowed.then(|| self.snapshot_unaligned(inbox, None, barrier))
    }

    /// `channel` ended; returns the barrier being aligned if that completed it.
    pub(crate) fn on_end<C: Send>(&mut self, inbox: &Inbox<C>, channel: usize) -> Option<Barrier> {
        self.ended[channel] = true;
        if !self.logs.is_empty() {
            self.logs.iter_mut().for_each(|log| log.on_end(channel));
            self.ack_if_complete();
        }
        let completed = self.aligner.on_end(channel);
        if let Some(barrier) = completed {
            self.hold(inbox, inbox.channels());
            self.aligning_since = None;
            self.snapshotted = barrier.checkpoint_id;
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

/// How often a task whose output is full checks again for room.
pub(crate) const OUTPUT_ROOM_POLL: Duration = Duration::from_millis(1);

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
    pub(crate) codec: PayloadCodec<B>,
    /// The operator subtask heading the task.
    pub(crate) head: (NodeId, usize),
}

impl<B: Send + 'static> TaskBody for OneInputTask<B> {
    fn run(mut self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError> {
        self.chain.open()?;
        let mut inputs = InputTracker::new(self.inbox.channels());
        let mut flusher = Flusher::new(env.buffer_timeout);
        let mut time = ProcessingTime::new(&env.clock);
        let mut checkpoints =
            Checkpointing::new(self.inbox.channels(), env.checkpoints.as_ref(), self.head);
        loop {
            let deadline = match checkpoints.alignment_deadline() {
                Some(timeout) => timeout.min(flusher.deadline()),
                None => flusher.deadline(),
            };
            // With unaligned checkpoints, a task whose output is full reads no new data (it
            // would block in the full channel, deaf to barriers) but still takes barriers.
            let received = if checkpoints.unaligned() && !self.chain.has_room() {
                self.inbox
                    .recv_priority(deadline.min(Instant::now() + OUTPUT_ROOM_POLL))
            } else {
                self.inbox.recv(Some(deadline))
            };
            if let Received::Message(channel, message) = &received {
                checkpoints.on_message(*channel, message, self.codec)?;
            }
            let update = match received {
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
                Received::Overtaking {
                    channel,
                    barrier,
                    overtaken,
                } => {
                    if let Some(barrier) = checkpoints.on_overtaking(
                        &self.inbox,
                        channel,
                        barrier,
                        overtaken,
                        self.codec,
                    )? {
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
            if let Some(barrier) = checkpoints.on_alignment_timeout(&self.inbox) {
                self.chain.emit_barrier(barrier)?;
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
