//! Task loops: what the thread of one subtask runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::{CancelFlag, Inbox, MAX_WAIT, Received};
use crate::error::TaskError;
use crate::graph::TwoInputs;
use crate::message::Message;
use crate::operator::chain::TwoInputChained;
use crate::operator::{Output, TwoInputOperator};

/// What every task loop needs from its job.
pub(crate) struct TaskEnv {
    pub(crate) cancel: Arc<CancelFlag>,
    pub(crate) buffer_timeout: Duration,
}

/// The body of one subtask's thread.
pub(crate) trait TaskBody: Send {
    fn run(self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError>;
}

/// Tracks the watermark and the end of every input channel of a task.
///
/// A task's watermark is the minimum over its channels; a channel that ended no longer holds it
/// back.
pub(crate) struct InputTracker {
    watermarks: Vec<i64>,
    ended: Vec<bool>,
    open: usize,
    current: i64,
}

impl InputTracker {
    pub(crate) fn new(channels: usize) -> Self {
        InputTracker {
            watermarks: vec![i64::MIN; channels],
            ended: vec![false; channels],
            open: channels,
            current: i64::MIN,
        }
    }

    fn advance(&mut self) -> Option<i64> {
        let min = self
            .watermarks
            .iter()
            .zip(&self.ended)
            .filter(|(_, ended)| !**ended)
            .map(|(w, _)| *w)
            .min()?;
        (min > self.current).then(|| {
            self.current = min;
            min
        })
    }

    /// Channel `channel` reached `watermark`; returns the task's new watermark if it advanced.
    pub(crate) fn on_watermark(&mut self, channel: usize, watermark: i64) -> Option<i64> {
        if watermark <= self.watermarks[channel] {
            return None;
        }
        self.watermarks[channel] = watermark;
        self.advance()
    }

    /// Channel `channel` ended; returns the new watermark, if it advanced, and whether every
    /// channel has now ended.
    pub(crate) fn on_end(&mut self, channel: usize) -> (Option<i64>, bool) {
        if !self.ended[channel] {
            self.ended[channel] = true;
            self.open -= 1;
        }
        if self.open == 0 {
            (None, true)
        } else {
            (self.advance(), false)
        }
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

/// A task whose head operator has one input.
pub(crate) struct OneInputTask<B> {
    pub(crate) inbox: Arc<Inbox<B>>,
    pub(crate) chain: Box<dyn Output<B>>,
}

impl<B: Send + 'static> TaskBody for OneInputTask<B> {
    fn run(mut self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError> {
        self.chain.open()?;
        let mut inputs = InputTracker::new(self.inbox.channels());
        let mut flusher = Flusher::new(env.buffer_timeout);
        loop {
            match self.inbox.recv(Some(flusher.deadline())) {
                Received::Message(_, Message::Data(batch)) => self.chain.collect(batch)?,
                Received::Message(channel, Message::Watermark(w)) => {
                    if let Some(w) = inputs.on_watermark(channel, w) {
                        self.chain.emit_watermark(w)?;
                    }
                }
                Received::Message(_, Message::Barrier(_)) => {}
                Received::Message(channel, Message::EndOfInput) => {
                    let (watermark, all_ended) = inputs.on_end(channel);
                    if let Some(w) = watermark {
                        self.chain.emit_watermark(w)?;
                    }
                    if all_ended {
                        return self.chain.finish();
                    }
                }
                Received::Timeout => {}
                Received::Cancelled => return Err(TaskError::Cancelled),
            }
            if flusher.due() {
                self.chain.flush()?;
            }
        }
    }
}

/// A task whose head operator has two inputs.
pub(crate) struct TwoInputTask<O: TwoInputOperator> {
    pub(crate) inbox: Arc<Inbox<TwoInputs<O::In1, O::In2>>>,
    pub(crate) op: TwoInputChained<O>,
}

impl<O: TwoInputOperator> TaskBody for TwoInputTask<O> {
    fn run(mut self: Box<Self>, env: &TaskEnv) -> Result<(), TaskError> {
        self.op.open()?;
        let mut inputs = InputTracker::new(self.inbox.channels());
        let mut flusher = Flusher::new(env.buffer_timeout);
        loop {
            match self.inbox.recv(Some(flusher.deadline())) {
                Received::Message(_, Message::Data(TwoInputs::First(batch))) => {
                    self.op.process1(batch)?
                }
                Received::Message(_, Message::Data(TwoInputs::Second(batch))) => {
                    self.op.process2(batch)?
                }
                Received::Message(channel, Message::Watermark(w)) => {
                    if let Some(w) = inputs.on_watermark(channel, w) {
                        self.op.watermark(w)?;
                    }
                }
                Received::Message(_, Message::Barrier(_)) => {}
                Received::Message(channel, Message::EndOfInput) => {
                    let (watermark, all_ended) = inputs.on_end(channel);
                    if let Some(w) = watermark {
                        self.op.watermark(w)?;
                    }
                    if all_ended {
                        return self.op.finish();
                    }
                }
                Received::Timeout => {}
                Received::Cancelled => return Err(TaskError::Cancelled),
            }
            if flusher.due() {
                self.op.flush()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_minimum_over_open_channels() {
        let mut t = InputTracker::new(3);
        assert_eq!(t.on_watermark(0, 10), None);
        assert_eq!(t.on_watermark(1, 5), None);
        assert_eq!(t.on_watermark(2, 7), Some(5));
        assert_eq!(t.on_watermark(1, 20), Some(7));
        assert_eq!(t.on_end(2), (Some(10), false));
        assert_eq!(t.on_end(0), (Some(20), false));
        assert_eq!(t.on_end(1), (None, true));
    }
}
