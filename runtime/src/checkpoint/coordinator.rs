//! The checkpoint coordinator: triggers checkpoints, collects acknowledgements, completes them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::config::CheckpointConfig;
use super::storage::{
    CheckpointError, CompletedCheckpoint, InFlightData, Storage, SubtaskState, store_at,
};
use crate::graph::NodeId;
use crate::operator::OperatorState;

/// Where a savepoint goes and who waits for it.
type SavepointRequest = (
    PathBuf,
    tokio::sync::oneshot::Sender<Result<PathBuf, CheckpointError>>,
);

struct Pending {
    id: u64,
    started: Instant,
    acks: BTreeMap<(NodeId, usize), SubtaskState>,
    /// Unaligned snapshots whose in-flight data is still being collected.
    awaiting_in_flight: BTreeSet<(NodeId, usize)>,
    /// The in-flight data of unaligned snapshots, by the operator subtask heading the task.
    in_flight: BTreeMap<(NodeId, usize), InFlightData>,
    /// Whether some task snapshotted it unaligned.
    unaligned: bool,
    /// The longest time an operator spent capturing its state for it, on its task's thread.
    longest_pause: Duration,
    savepoint: Option<SavepointRequest>,
}

struct State {
    /// Every operator subtask of the running attempt.
    expected: BTreeSet<(NodeId, usize)>,
    /// Operator subtasks whose task has finished.
    finished: BTreeSet<(NodeId, usize)>,
    /// Checkpoints triggered and not yet complete, by id.
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    last_trigger: Option<Instant>,
    last_completion: Option<Instant>,
    /// A checkpoint every task acknowledged, waiting to be written by the coordinator thread.
    to_write: VecDeque<(
        CompletedCheckpoint,
        Option<SavepointRequest>,
        Instant,
        bool,
        Duration,
    )>,
    /// What every completed checkpoint took.
    stats: Vec<CheckpointStats>,
    /// Whether the coordinator thread is writing a checkpoint.
    writing: bool,
    completed: u64,
    /// How many attempts started; the first restores only when resuming.
    attempts: u32,
    /// The stable id of every operator of the running attempt.
    operator_ids: BTreeMap<NodeId, String>,
    /// A savepoint asked for while another checkpoint was running.
    queued_savepoint: Option<SavepointRequest>,
    /// Whether the running attempt ended: no checkpoint can complete until the next starts.
    ended: bool,
}

/// Triggers checkpoints and collects what every operator subtask acknowledges. Lives as long as
/// the job, across restarts.
pub(crate) struct Coordinator {
    config: CheckpointConfig,
    /// Whether checkpoints are triggered periodically; without, only savepoints are taken.
    periodic: bool,
    /// The latest triggered checkpoint; source tasks compare it with the last they saw.
    triggered: AtomicU64,
    /// The latest completed checkpoint; tasks notify their operators when it moves.
    completed: AtomicU64,
    state: Mutex<State>,
    /// Apart from `state`, so writing a checkpoint never blocks the tasks' acknowledgements.
    storage: Mutex<Storage>,
}

/// What one completed checkpoint (or savepoint) took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's id.
    pub id: u64,
    /// Whether it was a savepoint.
    pub savepoint: bool,
    /// From the trigger until it was stored.
    pub duration: Duration,
    /// The size of the captured state, in bytes (in-flight data included).
    pub state_bytes: u64,
    /// The size of the in-flight data stored by unaligned snapshots, in bytes (0 when the
    /// checkpoint was aligned everywhere).
    pub in_flight_bytes: u64,
    /// Whether some task took its snapshot unaligned (from the start, or after its alignment
    /// timed out).
    pub unaligned: bool,
    /// The longest an operator's task paused processing to capture its state for this
    /// checkpoint (serialization and writing happen off the task's thread where the operator
    /// supports it, see [`Operator::snapshot_state_async`](crate::Operator::snapshot_state_async)).
    pub longest_pause: Duration,
}

/// What tasks use to acknowledge: the coordinator itself.
pub(crate) type CheckpointAcks = Arc<Coordinator>;

impl Coordinator {
    pub(crate) fn new(config: Option<CheckpointConfig>) -> Self {
        let periodic = config.is_some();
        let config = config.unwrap_or_else(|| CheckpointConfig::every(Duration::from_secs(3600)));
        let storage = match &config.directory {
            Some(dir) => Storage::directory(dir.clone(), config.retained),
            None => Storage::memory(config.retained),
        };
        let next_id = storage.latest().map_or(1, |c| c.id + 1);
        Coordinator {
            config,
            periodic,
            triggered: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            storage: Mutex::new(storage),
            state: Mutex::new(State {
                expected: BTreeSet::new(),
                finished: BTreeSet::new(),
                pending: BTreeMap::new(),
                next_id,
                last_trigger: None,
                last_completion: None,
                to_write: VecDeque::new(),
                stats: Vec::new(),
                writing: false,
                completed: 0,
                attempts: 0,
                operator_ids: BTreeMap::new(),
                queued_savepoint: None,
                ended: false,
            }),
        }
    }

    /// Resets for a new attempt of the job with these operator subtasks; returns the latest
    /// completed checkpoint to restore from.
    pub(crate) fn start_attempt(
        &self,
        expected: impl IntoIterator<Item = (NodeId, usize)>,
        operator_ids: BTreeMap<NodeId, String>,
    ) -> Option<CompletedCheckpoint> {
        let mut state = self.state.lock();
        state.expected = expected.into_iter().collect();
        state.operator_ids = operator_ids;
        state.finished.clear();
        abort_all(&mut state.pending, "a task failed");
        state.last_trigger = Some(Instant::now());
        state.attempts += 1;
        if state.attempts == 1 && !self.config.resume {
            return None;
        }
        drop(state);
        self.storage.lock().latest()
    }

    /// Whether barriers are aligned.
    pub(crate) fn aligned(&self) -> bool {
        self.config.mode == super::config::CheckpointingMode::ExactlyOnce
    }

    /// Whether checkpoints may be (or become) unaligned.
    pub(crate) fn unaligned_enabled(&self) -> bool {
        self.aligned() && self.config.unaligned
    }

    /// How long an aligned checkpoint may align at a task before it switches to unaligned there.
    pub(crate) fn aligned_timeout(&self) -> Option<Duration> {
        self.config.aligned_timeout
    }

    /// Whether checkpoint `id` may be unaligned: unaligned checkpoints are on and it is not a
    /// savepoint (savepoints are always aligned).
    pub(crate) fn may_be_unaligned(&self, id: u64) -> bool {
        if !self.unaligned_enabled() {
            return false;
        }
        let state = self.state.lock();
        state
            .pending
            .get(&id)
            .is_some_and(|p| p.savepoint.is_none())
    }

    /// Whether checkpoint `id` was triggered and is neither complete nor abandoned.
    pub(crate) fn is_pending(&self, id: u64) -> bool {
        self.state.lock().pending.contains_key(&id)
    }

    /// Whether the barriers of checkpoint `id` start out unaligned (no aligned timeout is set).
    pub(crate) fn starts_unaligned(&self, id: u64) -> bool {
        self.config.aligned_timeout.is_none() && self.may_be_unaligned(id)
    }

    /// The task headed by operator subtask (`node`, `subtask`) took an unaligned snapshot for
    /// checkpoint `id` and will acknowledge its in-flight data with
    /// [`Coordinator::ack_in_flight`]; the checkpoint waits for it.
    pub(crate) fn expect_in_flight(&self, id: u64, node: NodeId, subtask: usize) {
        let mut guard = self.state.lock();
        if let Some(pending) = guard.pending.get_mut(&id) {
            pending.awaiting_in_flight.insert((node, subtask));
            pending.unaligned = true;
        }
    }

    /// The in-flight data an unaligned snapshot owed is complete.
    pub(crate) fn ack_in_flight(&self, id: u64, node: NodeId, subtask: usize, data: InFlightData) {
        let mut guard = self.state.lock();
        let Some(pending) = guard.pending.get_mut(&id) else {
            return;
        };
        pending.awaiting_in_flight.remove(&(node, subtask));
        pending.in_flight.insert((node, subtask), data);
        self.try_complete(&mut guard);
    }

    /// The latest triggered checkpoint id (0: none yet).
    pub(crate) fn triggered(&self) -> u64 {
        self.triggered.load(Ordering::Acquire)
    }

    /// The latest completed checkpoint id (0: none yet).
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// What every completed checkpoint took, so far.
    pub(crate) fn stats(&self) -> Vec<CheckpointStats> {
        self.state.lock().stats.clone()
    }

    /// How many checkpoints completed so far.
    pub(crate) fn completed_count(&self) -> u64 {
        self.state.lock().completed
    }

    /// An operator subtask captured its state for checkpoint `id`.
    pub(crate) fn ack(&self, id: u64, node: NodeId, subtask: usize, state: OperatorState) {
        let mut guard = self.state.lock();
        let Some(pending) = guard.pending.get_mut(&id) else {
            return;
        };
        pending.acks.insert(
            (node, subtask),
            SubtaskState {
                finished: false,
                state,
                in_flight: Vec::new(),
            },
        );
        self.try_complete(&mut guard);
    }

    /// An operator's task paused `pause` to capture its state for checkpoint `id`.
    pub(crate) fn record_pause(&self, id: u64, pause: Duration) {
        if let Some(pending) = self.state.lock().pending.get_mut(&id) {
            pending.longest_pause = pending.longest_pause.max(pause);
        }
    }

    /// An operator subtask could not capture its state for checkpoint `id`: the checkpoint is
    /// abandoned (the job goes on; the next checkpoint is triggered as usual).
    pub(crate) fn decline(&self, id: u64, reason: String) {
        let mut guard = self.state.lock();
        if let Some(pending) = guard.pending.remove(&id) {
            eprintln!("warning: checkpoint {id} was abandoned: {reason}");
            abort(pending, &reason);
        }
    }

    /// The task running these operator subtasks finished.
    pub(crate) fn finished(&self, nodes: &[NodeId], subtask: usize) {
        let mut guard = self.state.lock();
        guard
            .finished
            .extend(nodes.iter().map(|node| (*node, subtask)));
        self.try_complete(&mut guard);
    }

    /// Completes every pending checkpoint all tasks acknowledged; a completed checkpoint
    /// subsumes the older ones still pending.
    fn try_complete(&self, state: &mut State) {
        let done: Vec<u64> = state
            .pending
            .values()
            .filter(|pending| {
                state
                    .expected
                    .iter()
                    .all(|k| pending.acks.contains_key(k) || state.finished.contains(k))
                    && pending
                        .awaiting_in_flight
                        .iter()
                        .all(|k| state.finished.contains(k))
            })
            .map(|pending| pending.id)
            .collect();
        let Some(&newest) = done.last() else {
            return;
        };
        let older: Vec<u64> = state.pending.range(..newest).map(|(id, _)| *id).collect();
        for id in older {
            if let Some(pending) = state.pending.remove(&id) {
                if done.contains(&id) {
                    self.complete(state, pending);
                } else {
                    abort(pending, "a newer checkpoint completed first");
                }
            }
        }
        if let Some(pending) = state.pending.remove(&newest) {
            self.complete(state, pending);
        }
    }

    /// Queues a checkpoint every task acknowledged for writing.
    fn complete(&self, state: &mut State, pending: Pending) {
        let mut subtasks = pending.acks;
        for key in &state.expected {
            subtasks.entry(*key).or_insert_with(|| SubtaskState {
                finished: true,
                ..SubtaskState::default()
            });
        }
        for (key, data) in pending.in_flight {
            if let Some(subtask) = subtasks.get_mut(&key) {
                subtask.in_flight = data;
            }
        }
        let checkpoint = CompletedCheckpoint {
            id: pending.id,
            subtasks,
            operator_ids: state.operator_ids.clone(),
        };
        // Writing happens on the coordinator thread, so the last task to acknowledge goes on
        // processing at once.
        state.to_write.push_back((
            checkpoint,
            pending.savepoint,
            pending.started,
            pending.unaligned,
            pending.longest_pause,
        ));
    }

    /// Writes a checkpoint every task acknowledged, then announces its completion.
    fn write_completed(&self) {
        while self.write_next() {}
    }

    /// Writes the next checkpoint waiting to be written; false when none was.
    fn write_next(&self) -> bool {
        let Some((checkpoint, savepoint, started, unaligned, longest_pause)) = ({
            let mut state = self.state.lock();
            let next = state.to_write.pop_front();
            state.writing = next.is_some();
            next
        }) else {
            return false;
        };
        let id = checkpoint.id;
        let bytes = checkpoint
            .subtasks
            .values()
            .map(|s| {
                s.state.operator.len()
                    + s.state.keyed.values().map(Vec::len).sum::<usize>()
                    + s.in_flight.iter().map(|(_, b)| b.len()).sum::<usize>()
            })
            .sum::<usize>() as u64;
        let in_flight_bytes = checkpoint
            .subtasks
            .values()
            .flat_map(|s| s.in_flight.iter().map(|(_, b)| b.len() as u64))
            .sum::<u64>();
        let is_savepoint = savepoint.is_some();
        let stored = match savepoint {
            Some((dir, waiter)) => {
                let folder = dir.join(format!("savepoint-{id}"));
                let stored = store_at(&folder, &checkpoint);
                let reply = match &stored {
                    Ok(()) => Ok(folder),
                    Err(e) => Err(CheckpointError::Aborted {
                        id,
                        reason: e.to_string(),
                    }),
                };
                let _ = waiter.send(reply);
                stored
            }
            None => self.storage.lock().store(checkpoint),
        };
        let mut state = self.state.lock();
        state.writing = false;
        match stored {
            Ok(()) => {
                state.completed += 1;
                state.last_completion = Some(Instant::now());
                state.stats.push(CheckpointStats {
                    id,
                    savepoint: is_savepoint,
                    duration: started.elapsed(),
                    state_bytes: bytes,
                    in_flight_bytes,
                    unaligned,
                    longest_pause,
                });
                self.completed.fetch_max(id, Ordering::AcqRel);
            }
            Err(error) => eprintln!("warning: checkpoint {id} was not stored: {error}"),
        }
        true
    }

    /// Triggers a checkpoint if one is due; abandons one that timed out.
    fn tick(&self) {
        self.write_completed();
        let mut state = self.state.lock();
        if state.writing || !state.to_write.is_empty() {
            return;
        }
        let expired: Vec<u64> = state
            .pending
            .values()
            .filter(|p| p.started.elapsed() > self.config.timeout)
            .map(|p| p.id)
            .collect();
        for id in expired {
            eprintln!(
                "warning: checkpoint {id} expired after {:?} before every task acknowledged it",
                self.config.timeout
            );
            if let Some(pending) = state.pending.remove(&id) {
                abort(pending, "it timed out");
            }
        }
        if state.queued_savepoint.is_some() {
            // A savepoint runs alone: it waits for the pending checkpoints to end.
            if state.pending.is_empty()
                && let Some(request) = state.queued_savepoint.take()
            {
                self.start(&mut state, Some(request));
            }
            return;
        }
        let savepoint_running = state.pending.values().any(|p| p.savepoint.is_some());
        if savepoint_running || state.pending.len() >= self.config.max_concurrent {
            return;
        }
        if !self.periodic {
            return;
        }
        let due = state
            .last_trigger
            .is_none_or(|t| t.elapsed() >= self.config.interval);
        let paused = state
            .last_completion
            .is_some_and(|t| t.elapsed() < self.config.min_pause);
        let all_finished = state.finished.len() >= state.expected.len();
        if !due || paused || all_finished {
            return;
        }
        self.start(&mut state, None);
    }

    fn start(&self, state: &mut State, savepoint: Option<SavepointRequest>) {
        let id = state.next_id;
        state.next_id += 1;
        state.last_trigger = Some(Instant::now());
        state.pending.insert(
            id,
            Pending {
                id,
                started: Instant::now(),
                acks: BTreeMap::new(),
                awaiting_in_flight: BTreeSet::new(),
                in_flight: BTreeMap::new(),
                unaligned: false,
                longest_pause: Duration::ZERO,
                savepoint,
            },
        );
        self.triggered.store(id, Ordering::Release);
    }

    /// Asks for a savepoint into `dir`; the receiver gets the savepoint's folder once every
    /// task acknowledged it.
    pub(crate) fn trigger_savepoint(
        &self,
        dir: PathBuf,
    ) -> tokio::sync::oneshot::Receiver<Result<PathBuf, CheckpointError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut state = self.state.lock();
        if state.ended {
            let _ = tx.send(Err(CheckpointError::Aborted {
                id: 0,
                reason: "the job already ended".to_owned(),
            }));
            return rx;
        }
        if let Some((_, previous)) = state.queued_savepoint.replace((dir, tx)) {
            let _ = previous.send(Err(CheckpointError::Aborted {
                id: 0,
                reason: "another savepoint was asked for".to_owned(),
            }));
        }
        rx
    }

    /// Runs the trigger loop on a thread until `stop` is set (and the thread unparked); then
    /// writes what is still waiting.
    pub(crate) fn spawn_trigger(
        self: &Arc<Self>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let coordinator = Arc::clone(self);
        self.state.lock().ended = false;
        let step = if self.periodic {
            (self.config.interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(50))
        } else {
            Duration::from_millis(5)
        };
        std::thread::Builder::new()
            .name("checkpoint coordinator".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    coordinator.tick();
                    // Unparked at once when the job ends.
                    std::thread::park_timeout(step);
                }
                coordinator.write_completed();
                coordinator.end_attempt();
            })
    }

    /// The running attempt ended: a savepoint still waiting can no longer complete, so its
    /// caller hears so instead of waiting forever.
    fn end_attempt(&self) {
        let mut state = self.state.lock();
        state.ended = true;
        let reason = "the job ended before every task acknowledged it".to_owned();
        if let Some((_, waiter)) = state.queued_savepoint.take() {
            let _ = waiter.send(Err(CheckpointError::Aborted {
                id: 0,
                reason: reason.clone(),
            }));
        }
        abort_all(&mut state.pending, &reason);
    }
}

/// Abandons a pending checkpoint; a savepoint's caller hears why.
fn abort(pending: Pending, reason: &str) {
    if let Some((_, waiter)) = pending.savepoint {
        let _ = waiter.send(Err(CheckpointError::Aborted {
            id: pending.id,
            reason: reason.to_owned(),
        }));
    }
}

/// Abandons every pending checkpoint.
fn abort_all(pending: &mut BTreeMap<u64, Pending>, reason: &str) {
    for (_, pending) in std::mem::take(pending) {
        abort(pending, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator(max: usize) -> Coordinator {
        let config = CheckpointConfig::every(Duration::ZERO).with_max_concurrent_checkpoints(max);
        let coordinator = Coordinator::new(Some(config));
        coordinator.start_attempt([(0, 0), (1, 0)], BTreeMap::new());
        coordinator
    }

    fn ack_all(coordinator: &Coordinator, id: u64) {
        coordinator.ack(id, 0, 0, OperatorState::default());
        coordinator.ack(id, 1, 0, OperatorState::default());
    }

    #[test]
    fn at_most_the_maximum_of_checkpoints_is_pending() {
        for max in [1usize, 3] {
            let c = coordinator(max);
            for _ in 0..10 {
                c.tick();
            }
            let max = max as u64;
            assert_eq!(c.triggered(), max, "max {max}");
            // The newest completing subsumes the older ones; triggering resumes.
            ack_all(&c, max);
            c.write_completed();
            assert_eq!(c.completed(), max);
            assert_eq!(c.completed_count(), 1);
            assert!((1..max).all(|id| !c.is_pending(id)));
            c.tick();
            assert_eq!(c.triggered(), max + 1);
        }
    }

    #[test]
    fn concurrent_checkpoints_complete_in_any_order_of_acknowledgement() {
        let c = coordinator(2);
        c.tick();
        c.tick();
        assert_eq!(c.triggered(), 2);
        c.ack(2, 0, 0, OperatorState::default());
        ack_all(&c, 1);
        c.write_completed();
        assert_eq!(c.completed(), 1);
        c.ack(2, 1, 0, OperatorState::default());
        c.write_completed();
        assert_eq!(c.completed(), 2);
        assert_eq!(c.completed_count(), 2);
    }

    #[test]
    fn an_unaligned_snapshot_waits_for_its_in_flight_data() {
        let c = coordinator(1);
        c.tick();
        c.expect_in_flight(1, 1, 0);
        ack_all(&c, 1);
        c.write_completed();
        assert_eq!(c.completed(), 0);
        c.ack_in_flight(1, 1, 0, vec![(0, vec![1, 2, 3])]);
        c.write_completed();
        assert_eq!(c.completed(), 1);
        assert_eq!(c.stats()[0].in_flight_bytes, 3);
    }
}
