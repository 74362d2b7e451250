//! Unaligned checkpoints at a task: which input data a snapshot taken at the first barrier keeps.
//!
//! A task snapshots its operators when the first barrier of an unaligned checkpoint arrives. The
//! snapshot then owes the data that was logically before the barrier but not yet processed:
//! - on a channel whose barrier overtook its data lane, the messages it overtook (captured from
//!   the lane at once, without waiting for the task to process them);
//! - on a channel whose barrier has not arrived yet, everything read until it does.
//!
//! [`InFlightLog`] encodes that data; the task processes it as usual. Once every channel is
//! accounted for, the log is acknowledged to the coordinator with the snapshot, and a restore
//! queues it on the same channels before any new input.

use crate::error::BoxError;

/// The input data one unaligned snapshot of a task still collects, per input channel.
#[derive(Debug)]
pub(crate) struct InFlightLog {
    checkpoint_id: u64,
    /// Whether each channel still owes what it delivers until its barrier.
    owing: Vec<bool>,
    /// Encoded data batches, with the channel each came from, in channel order.
    data: Vec<(usize, Vec<u8>)>,
}

impl InFlightLog {
    /// A log for the snapshot of `checkpoint_id`, taken now. `delivered[c]`: channel `c` already
    /// delivered its barrier in order (or ended), so it owes nothing.
    pub(crate) fn new(checkpoint_id: u64, delivered: impl IntoIterator<Item = bool>) -> Self {
        InFlightLog {
            checkpoint_id,
            owing: delivered.into_iter().map(|d| !d).collect(),
            data: Vec::new(),
        }
    }

    /// The checkpoint whose snapshot this log belongs to.
    pub(crate) fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// Whether `channel` still owes data.
    pub(crate) fn is_owing(&self, channel: usize) -> bool {
        self.owing[channel]
    }

    /// The barrier arrived on `channel`, having overtaken the `overtaken` encoded batches (in
    /// lane order); nothing more is owed by the channel.
    pub(crate) fn on_barrier(&mut self, channel: usize, overtaken: Vec<Vec<u8>>) {
        if std::mem::replace(&mut self.owing[channel], false) {
            self.data
                .extend(overtaken.into_iter().map(|b| (channel, b)));
        }
    }

    /// A message was read from `channel`'s data lane; `encode` appends its batch, if it is
    /// data, to the buffer it is given (and returns false for other messages).
    pub(crate) fn on_message(
        &mut self,
        channel: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<bool, BoxError>,
    ) -> Result<(), BoxError> {
        if !self.owing[channel] {
            return Ok(());
        }
        let mut bytes = Vec::new();
        if encode(&mut bytes)? {
            self.data.push((channel, bytes));
        }
        Ok(())
    }

    /// `channel` ended: it owes nothing more.
    pub(crate) fn on_end(&mut self, channel: usize) {
        self.owing[channel] = false;
    }

    /// Whether every channel is accounted for.
    pub(crate) fn is_complete(&self) -> bool {
        !self.owing.contains(&true)
    }

    /// The collected data: (input channel, encoded batch); each channel's batches in order.
    pub(crate) fn into_data(self) -> Vec<(usize, Vec<u8>)> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(v: u8) -> impl FnOnce(&mut Vec<u8>) -> Result<bool, BoxError> {
        move |out| {
            out.push(v);
            Ok(true)
        }
    }

    fn control(_out: &mut Vec<u8>) -> Result<bool, BoxError> {
        Ok(false)
    }

    #[test]
    fn overtaken_messages_and_messages_before_late_barriers_are_kept() {
        let mut log = InFlightLog::new(7, [false, false, true]);
        log.on_barrier(0, vec![vec![1], vec![2]]);
        log.on_message(1, data(10)).unwrap();
        log.on_message(1, control).unwrap();
        // Channel 0's overtaken data was captured; what it delivers now is after the barrier.
        log.on_message(0, data(3)).unwrap();
        log.on_message(2, data(30)).unwrap();
        assert!(!log.is_complete());
        log.on_barrier(1, vec![vec![11]]);
        log.on_message(1, data(12)).unwrap();
        assert!(log.is_complete());
        assert_eq!(
            log.into_data(),
            vec![(0, vec![1]), (0, vec![2]), (1, vec![10]), (1, vec![11])]
        );
    }

    proptest! {
        /// Against a reference: a channel keeps exactly what it delivered before its barrier
        /// plus what its barrier overtook, in order, and the log completes once every channel
        /// delivered its barrier or ended.
        #[test]
        fn keeps_what_precedes_each_barrier(
            script in prop::collection::vec((0usize..3, 0u8..4), 0..60),
            overtaken in prop::collection::vec(0usize..3, 3),
        ) {
            let mut log = InFlightLog::new(1, [false, false, false]);
            let mut arrived = [false; 3];
            let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
            for (step, (channel, what)) in script.iter().enumerate() {
                let c = *channel;
                if *what == 0 && !arrived[c] {
                    arrived[c] = true;
                    let batches: Vec<Vec<u8>> =
                        (0..overtaken[c]).map(|i| vec![200 + i as u8]).collect();
                    expected[c].extend(batches.clone());
                    log.on_barrier(c, batches);
                } else {
                    if !arrived[c] {
                        expected[c].push(vec![step as u8]);
                    }
                    log.on_message(c, data(step as u8)).unwrap();
                }
            }
            prop_assert_eq!(log.is_complete(), arrived.iter().all(|a| *a));
            for c in 0..3 {
                log.on_end(c);
            }
            prop_assert!(log.is_complete());
            let mut by_channel: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
            for (c, bytes) in log.into_data() {
                by_channel[c].push(bytes);
            }
            prop_assert_eq!(by_channel, expected);
        }
    }
}
