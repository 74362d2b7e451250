//! Barrier alignment at tasks with several input channels.

use crate::message::Barrier;

/// What a task does with a barrier it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aligned {
    /// Hold back the channel the barrier came from until alignment completes.
    Hold,
    /// Every channel delivered the barrier: release all channels, snapshot, forward it.
    Complete(Barrier),
    /// A barrier of an abandoned checkpoint; drop it.
    Ignore,
}

/// Tracks which input channels delivered the barrier of the checkpoint being aligned.
#[derive(Debug)]
pub(crate) struct BarrierAligner {
    current: Option<Barrier>,
    received: Vec<bool>,
    ended: Vec<bool>,
}

impl BarrierAligner {
    pub(crate) fn new(channels: usize) -> Self {
        BarrierAligner {
            current: None,
            received: vec![false; channels],
            ended: vec![false; channels],
        }
    }

    fn complete(&mut self) -> Option<Barrier> {
        let done = self
            .received
            .iter()
            .zip(&self.ended)
            .all(|(received, ended)| *received || *ended);
        if !done {
            return None;
        }
        self.received.iter_mut().for_each(|r| *r = false);
        self.current.take()
    }

    /// Channel `channel` delivered `barrier`.
    pub(crate) fn on_barrier(&mut self, channel: usize, barrier: Barrier) -> Aligned {
        match self.current {
            Some(current) if barrier.checkpoint_id < current.checkpoint_id => {
                return Aligned::Ignore;
            }
            Some(current) if barrier.checkpoint_id == current.checkpoint_id => {}
            _ => {
                // A newer checkpoint: an unfinished older alignment is abandoned.
                self.received.iter_mut().for_each(|r| *r = false);
                self.current = Some(barrier);
            }
        }
        self.received[channel] = true;
        match self.complete() {
            Some(barrier) => Aligned::Complete(barrier),
            None => Aligned::Hold,
        }
    }

    /// Channel `channel` ended; this may complete an alignment.
    pub(crate) fn on_end(&mut self, channel: usize) -> Option<Barrier> {
        self.ended[channel] = true;
        self.current?;
        self.complete()
    }

    /// Whether `channel` is held back: it delivered the barrier being aligned.
    pub(crate) fn is_held(&self, channel: usize) -> bool {
        self.received[channel]
    }

    /// The barrier being aligned, if any.
    pub(crate) fn aligning(&self) -> Option<Barrier> {
        self.current
    }

    /// Gives up the alignment in progress (the checkpoint went unaligned): every channel is
    /// released.
    pub(crate) fn abandon(&mut self) {
        self.received.iter_mut().for_each(|r| *r = false);
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier(id: u64) -> Barrier {
        Barrier {
            checkpoint_id: id,
            timestamp: 0,
            unaligned: false,
        }
    }

    #[test]
    fn alignment_waits_for_every_open_channel() {
        let mut a = BarrierAligner::new(3);
        assert_eq!(a.on_barrier(0, barrier(1)), Aligned::Hold);
        assert_eq!(a.on_end(2), None);
        assert_eq!(a.on_barrier(1, barrier(1)), Aligned::Complete(barrier(1)));
        assert_eq!(a.on_barrier(1, barrier(2)), Aligned::Hold);
        assert_eq!(a.on_barrier(0, barrier(2)), Aligned::Complete(barrier(2)));
    }

    #[test]
    fn a_newer_barrier_abandons_an_older_alignment() {
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.on_barrier(0, barrier(1)), Aligned::Hold);
        assert_eq!(a.on_barrier(1, barrier(2)), Aligned::Hold);
        assert_eq!(a.on_barrier(1, barrier(1)), Aligned::Ignore);
        assert_eq!(a.on_barrier(0, barrier(2)), Aligned::Complete(barrier(2)));
    }

    #[test]
    fn an_ending_channel_completes_alignment() {
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.on_barrier(0, barrier(5)), Aligned::Hold);
        assert_eq!(a.on_end(1), Some(barrier(5)));
    }
}
