//! Bounded channels between subtasks.
//!
//! Every subtask that reads from other subtasks owns one [`Inbox`]: one bounded queue per input
//! channel (one per upstream subtask and edge) under a single lock, so the reading thread waits on
//! all of its inputs at once. Each channel has two lanes: the data lane, bounded by a capacity in
//! messages (a full lane blocks its writer: that is backpressure), and a priority lane for control
//! events that may overtake data (what unaligned checkpoints need). The reader can hold back
//! single channels (what barrier alignment needs), and what is queued can be inspected for
//! snapshots of in-flight data.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::message::{Barrier, Message};

/// The flag every blocked sender and receiver of a job watches.
#[derive(Debug, Default)]
pub(crate) struct CancelFlag {
    cancelled: AtomicBool,
}

impl CancelFlag {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

/// Something that can be woken up when the job is cancelled.
pub(crate) trait Wake: Send + Sync {
    fn wake_all(&self);
}

struct Lanes<B> {
    data: VecDeque<Message<B>>,
    /// Control events that overtake the data lane, each with how many messages of the data lane
    /// it overtook when it was queued.
    priority: VecDeque<(Message<B>, usize)>,
}

struct InboxState<B> {
    channels: Vec<Lanes<B>>,
    /// Channels the reader does not take data from for now (aligning a barrier).
    held: Vec<bool>,
    /// Where the round-robin scan for data starts next.
    next: usize,
    reader_waiting: bool,
    writers_waiting: usize,
}

/// What [`Inbox::recv`] found.
#[derive(Debug)]
pub(crate) enum Received<B> {
    /// A message from channel `channel`.
    Message(usize, Message<B>),
    /// An unaligned barrier from channel `channel`, which overtook the first `overtaken`
    /// messages still queued in that channel's data lane.
    Overtaking {
        /// The channel.
        channel: usize,
        /// The barrier.
        barrier: Barrier,
        /// How many messages of the channel's data lane were queued ahead of it.
        overtaken: usize,
    },
    /// Nothing arrived before the deadline.
    Timeout,
    /// The job is cancelled.
    Cancelled,
}

/// The input side of one subtask: a bounded queue per input channel.
pub(crate) struct Inbox<B> {
    state: Mutex<InboxState<B>>,
    readable: Condvar,
    writable: Condvar,
    capacity: usize,
    cancel: Arc<CancelFlag>,
}

impl<B: Send> Inbox<B> {
    /// An inbox with `channels` input channels of `capacity` messages each.
    pub(crate) fn new(channels: usize, capacity: usize, cancel: Arc<CancelFlag>) -> Self {
        Inbox {
            state: Mutex::new(InboxState {
                channels: (0..channels)
                    .map(|_| Lanes {
                        data: VecDeque::with_capacity(capacity),
                        priority: VecDeque::new(),
                    })
                    .collect(),
                held: vec![false; channels],
                next: 0,
                reader_waiting: false,
                writers_waiting: 0,
            }),
            readable: Condvar::new(),
            writable: Condvar::new(),
            capacity: capacity.max(1),
            cancel,
        }
    }

    /// The number of input channels.
    pub(crate) fn channels(&self) -> usize {
        self.state.lock().channels.len()
    }

    /// Queues `message` on `channel`'s data lane, waiting while the lane is full.
    ///
    /// Returns false when the job was cancelled before the message could be queued.
    pub(crate) fn send(&self, channel: usize, message: Message<B>) -> bool {
        let mut state = self.state.lock();
        while state.channels[channel].data.len() >= self.capacity {
            if self.cancel.is_cancelled() {
                return false;
            }
            state.writers_waiting += 1;
            self.writable.wait(&mut state);
            state.writers_waiting -= 1;
        }
        if self.cancel.is_cancelled() {
            return false;
        }
        state.channels[channel].data.push_back(message);
        if state.reader_waiting {
            self.readable.notify_one();
        }
        true
    }

    /// Queues `message` on `channel`'s priority lane, which is never full.
    #[cfg(test)]
    pub(crate) fn send_priority(&self, channel: usize, message: Message<B>) {
        let mut state = self.state.lock();
        let overtaken = state.channels[channel].data.len();
        state.channels[channel]
            .priority
            .push_back((message, overtaken));
        if state.reader_waiting {
            self.readable.notify_one();
        }
    }

    /// Sends an unaligned barrier on `channel`: first `pending` (the writer's partly filled
    /// batch, which precedes the barrier) on the data lane even when it is full, so a
    /// backpressured writer never blocks here, then the barrier on the priority lane, noting
    /// how many data messages it overtakes.
    ///
    /// Returns false when the job was cancelled.
    pub(crate) fn send_overtaking(
        &self,
        channel: usize,
        pending: Option<B>,
        barrier: Barrier,
    ) -> bool {
        let mut state = self.state.lock();
        if self.cancel.is_cancelled() {
            return false;
        }
        let lanes = &mut state.channels[channel];
        if let Some(batch) = pending {
            lanes.data.push_back(Message::Data(batch));
        }
        let overtaken = lanes.data.len();
        lanes
            .priority
            .push_back((Message::Barrier(barrier), overtaken));
        if state.reader_waiting {
            self.readable.notify_one();
        }
        true
    }

    /// Queues restored in-flight data on `channel`'s data lane before anything is sent, whatever
    /// the lane's capacity: it is read before any new input of the channel.
    pub(crate) fn preload(&self, channel: usize, batch: B) {
        let mut state = self.state.lock();
        state.channels[channel].data.push_back(Message::Data(batch));
    }

    /// Whether `channel`'s data lane has room for another message.
    pub(crate) fn has_room(&self, channel: usize) -> bool {
        self.state.lock().channels[channel].data.len() < self.capacity
    }

    /// Calls `visit` on the first `n` messages queued on `channel`'s data lane, in order, without
    /// taking them (what an overtaking barrier overtook).
    pub(crate) fn visit_queued<E>(
        &self,
        channel: usize,
        n: usize,
        mut visit: impl FnMut(&Message<B>) -> Result<(), E>,
    ) -> Result<(), E> {
        let state = self.state.lock();
        state.channels[channel]
            .data
            .iter()
            .take(n)
            .try_for_each(&mut visit)
    }

    /// Holds back or releases the data lane of `channel` (barrier alignment).
    pub(crate) fn set_held(&self, channel: usize, held: bool) {
        self.state.lock().held[channel] = held;
    }

    /// Takes the next message: priority lanes first, then data lanes round-robin, skipping held
    /// channels. Waits until `deadline` at the latest.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Received<B> {
        self.recv_lanes(deadline, true)
    }

    /// Takes the next message of a priority lane only, leaving data where it is (the reader
    /// has no room to send what data would produce). Waits until `deadline` at the latest.
    pub(crate) fn recv_priority(&self, deadline: Instant) -> Received<B> {
        self.recv_lanes(Some(deadline), false)
    }

    fn recv_lanes(&self, deadline: Option<Instant>, data: bool) -> Received<B> {
        let mut state = self.state.lock();
        loop {
            if self.cancel.is_cancelled() {
                return Received::Cancelled;
            }
            if let Some(found) = Self::take_next(&mut state, data) {
                self.wake_writers(&state, &found);
                return found;
            }
            state.reader_waiting = true;
            let timed_out = match deadline {
                Some(deadline) => self.readable.wait_until(&mut state, deadline).timed_out(),
                None => {
                    self.readable.wait(&mut state);
                    false
                }
            };
            state.reader_waiting = false;
            if timed_out {
                if let Some(found) = Self::take_next(&mut state, data) {
                    self.wake_writers(&state, &found);
                    return found;
                }
                return Received::Timeout;
            }
        }
    }

    /// Wakes blocked writers once the channel just read from is at most half full, so a fast
    /// writer is woken once per several batches rather than for every one.
    fn wake_writers(&self, state: &InboxState<B>, found: &Received<B>) {
        if state.writers_waiting == 0 {
            return;
        }
        let Received::Message(channel, _) = found else {
            // Priority messages free no room in a data lane.
            return;
        };
        if state.channels[*channel].data.len() <= self.capacity / 2 {
            self.writable.notify_all();
        }
    }

    fn take_next(state: &mut InboxState<B>, data: bool) -> Option<Received<B>> {
        for (channel, lanes) in state.channels.iter_mut().enumerate() {
            match lanes.priority.pop_front() {
                Some((Message::Barrier(barrier), overtaken)) => {
                    return Some(Received::Overtaking {
                        channel,
                        barrier,
                        overtaken,
                    });
                }
                Some((message, _)) => return Some(Received::Message(channel, message)),
                None => {}
            }
        }
        if !data {
            return None;
        }
        let n = state.channels.len();
        for step in 0..n {
            let channel = (state.next + step) % n;
            if state.held[channel] {
                continue;
            }
            if let Some(message) = state.channels[channel].data.pop_front() {
                state.next = (channel + 1) % n;
                return Some(Received::Message(channel, message));
            }
        }
        None
    }
}

impl<B: Send> Wake for Inbox<B> {
    fn wake_all(&self) {
        let _state = self.state.lock();
        self.readable.notify_all();
        self.writable.notify_all();
    }
}

/// How long to wait at most when a deadline is far away, so a task notices cancellation even if
/// a wake-up were lost.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn full_lane_blocks_the_writer_until_the_reader_takes() {
        let cancel = Arc::new(CancelFlag::default());
        let inbox = Arc::new(Inbox::<u32>::new(1, 2, cancel));
        assert!(inbox.send(0, Message::Data(1)));
        assert!(inbox.send(0, Message::Data(2)));
        let writer = {
            let inbox = Arc::clone(&inbox);
            thread::spawn(move || inbox.send(0, Message::Data(3)))
        };
        // The writer cannot finish before one message is taken; take all three in order.
        for expected in 1..=3 {
            match inbox.recv(None) {
                Received::Message(0, Message::Data(v)) => assert_eq!(v, expected),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(writer.join().unwrap());
    }

    #[test]
    fn priority_lane_overtakes_data_and_held_channels_wait() {
        let cancel = Arc::new(CancelFlag::default());
        let inbox = Inbox::<u32>::new(2, 4, cancel);
        inbox.send(0, Message::Data(1));
        inbox.send(1, Message::Data(2));
        inbox.send_priority(1, Message::EndOfInput);
        inbox.set_held(0, true);
        assert!(matches!(
            inbox.recv(None),
            Received::Message(1, Message::EndOfInput)
        ));
        assert!(matches!(
            inbox.recv(None),
            Received::Message(1, Message::Data(2))
        ));
        assert!(matches!(
            inbox.recv(Some(Instant::now())),
            Received::Timeout
        ));
        inbox.set_held(0, false);
        assert!(matches!(
            inbox.recv(None),
            Received::Message(0, Message::Data(1))
        ));
    }

    #[test]
    fn an_overtaking_barrier_counts_what_it_overtook_even_past_capacity() {
        let cancel = Arc::new(CancelFlag::default());
        let inbox = Inbox::<u32>::new(2, 2, cancel);
        inbox.send(0, Message::Data(1));
        inbox.send(0, Message::Data(2));
        let barrier = Barrier {
            checkpoint_id: 4,
            timestamp: 0,
            unaligned: true,
        };
        // The lane is full; the writer's pending batch still goes in, without blocking.
        assert!(inbox.send_overtaking(0, Some(3), barrier));
        match inbox.recv(None) {
            Received::Overtaking {
                channel: 0,
                barrier: b,
                overtaken: 3,
            } => assert_eq!(b, barrier),
            other => panic!("unexpected {other:?}"),
        }
        for expected in 1..=3 {
            assert!(matches!(
                inbox.recv(None),
                Received::Message(0, Message::Data(v)) if v == expected
            ));
        }
    }

    #[test]
    fn cancel_wakes_a_blocked_writer() {
        let cancel = Arc::new(CancelFlag::default());
        let inbox = Arc::new(Inbox::<u32>::new(1, 1, Arc::clone(&cancel)));
        inbox.send(0, Message::Data(1));
        let writer = {
            let inbox = Arc::clone(&inbox);
            thread::spawn(move || inbox.send(0, Message::Data(2)))
        };
        cancel.cancel();
        inbox.wake_all();
        assert!(!writer.join().unwrap());
    }
}
