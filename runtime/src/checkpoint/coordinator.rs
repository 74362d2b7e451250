//! The checkpoint coordinator: triggers checkpoints, collects acknowledgements, completes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::config::CheckpointConfig;
use super::storage::{CompletedCheckpoint, Storage, SubtaskState};
use crate::graph::NodeId;
use crate::operator::OperatorState;

struct Pending {
    id: u64,
    started: Instant,
    acks: BTreeMap<(NodeId, usize), SubtaskState>,
}

struct State {
    /// Every operator subtask of the running attempt.
    expected: BTreeSet<(NodeId, usize)>,
    /// Operator subtasks whose task has finished.
    finished: BTreeSet<(NodeId, usize)>,
    pending: Option<Pending>,
    next_id: u64,
    last_trigger: Option<Instant>,
    last_completion: Option<Instant>,
    storage: Storage,
    completed: u64,
    /// How many attempts started; the first restores only when resuming.
    attempts: u32,
}

/// Triggers checkpoints and collects what every operator subtask acknowledges. Lives as long as
/// the job, across restarts.
pub(crate) struct Coordinator {
    config: CheckpointConfig,
    /// The latest triggered checkpoint; source tasks compare it with the last they saw.
    triggered: AtomicU64,
    /// The latest completed checkpoint; tasks notify their operators when it moves.
    completed: AtomicU64,
    state: Mutex<State>,
}

/// What tasks use to acknowledge: the coordinator itself.
pub(crate) type CheckpointAcks = Arc<Coordinator>;

impl Coordinator {
    pub(crate) fn new(config: CheckpointConfig) -> Self {
        let storage = match &config.directory {
            Some(dir) => Storage::directory(dir.clone(), config.retained),
            None => Storage::memory(config.retained),
        };
        let next_id = storage.latest().map_or(1, |c| c.id + 1);
        Coordinator {
            config,
            triggered: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            state: Mutex::new(State {
                expected: BTreeSet::new(),
                finished: BTreeSet::new(),
                pending: None,
                next_id,
                last_trigger: None,
                last_completion: None,
                storage,
                completed: 0,
                attempts: 0,
            }),
        }
    }

    /// Resets for a new attempt of the job with these operator subtasks; returns the latest
    /// completed checkpoint to restore from.
    pub(crate) fn start_attempt(
        &self,
        expected: impl IntoIterator<Item = (NodeId, usize)>,
    ) -> Option<CompletedCheckpoint> {
        let mut state = self.state.lock();
        state.expected = expected.into_iter().collect();
        state.finished.clear();
        state.pending = None;
        state.last_trigger = Some(Instant::now());
        state.attempts += 1;
        if state.attempts == 1 && !self.config.resume {
            return None;
        }
        state.storage.latest()
    }

    /// The latest triggered checkpoint id (0: none yet).
    pub(crate) fn triggered(&self) -> u64 {
        self.triggered.load(Ordering::Acquire)
    }

    /// The latest completed checkpoint id (0: none yet).
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// How many checkpoints completed so far.
    pub(crate) fn completed_count(&self) -> u64 {
        self.state.lock().completed
    }

    /// An operator subtask captured its state for checkpoint `id`.
    pub(crate) fn ack(&self, id: u64, node: NodeId, subtask: usize, state: OperatorState) {
        let mut guard = self.state.lock();
        let Some(pending) = guard.pending.as_mut() else {
            return;
        };
        if pending.id != id {
            return;
        }
        pending.acks.insert(
            (node, subtask),
            SubtaskState {
                finished: false,
                state,
            },
        );
        self.try_complete(&mut guard);
    }

    /// The task running these operator subtasks finished.
    pub(crate) fn finished(&self, nodes: &[NodeId], subtask: usize) {
        let mut guard = self.state.lock();
        guard
            .finished
            .extend(nodes.iter().map(|node| (*node, subtask)));
        self.try_complete(&mut guard);
    }

    fn try_complete(&self, state: &mut State) {
        let Some(pending) = state.pending.as_ref() else {
            return;
        };
        let done = state
            .expected
            .iter()
            .all(|k| pending.acks.contains_key(k) || state.finished.contains(k));
        if !done {
            return;
        }
        let Some(pending) = state.pending.take() else {
            return;
        };
        let mut subtasks = pending.acks;
        for key in &state.expected {
            subtasks.entry(*key).or_insert_with(|| SubtaskState {
                finished: true,
                state: OperatorState::default(),
            });
        }
        let checkpoint = CompletedCheckpoint {
            id: pending.id,
            subtasks,
        };
        match state.storage.store(checkpoint) {
            Ok(()) => {
                state.completed += 1;
                state.last_completion = Some(Instant::now());
                self.completed.store(pending.id, Ordering::Release);
            }
            Err(error) => eprintln!("warning: checkpoint {} was not stored: {error}", pending.id),
        }
    }

    /// Triggers a checkpoint if one is due; abandons one that timed out.
    fn tick(&self) {
        let mut state = self.state.lock();
        if let Some(pending) = &state.pending {
            if pending.started.elapsed() > self.config.timeout {
                eprintln!(
                    "warning: checkpoint {} expired after {:?} before every task acknowledged it",
                    pending.id, self.config.timeout
                );
                state.pending = None;
            }
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
        let id = state.next_id;
        state.next_id += 1;
        state.last_trigger = Some(Instant::now());
        state.pending = Some(Pending {
            id,
            started: Instant::now(),
            acks: BTreeMap::new(),
        });
        self.triggered.store(id, Ordering::Release);
    }

    /// Runs the trigger loop on a thread until `stop` is set.
    pub(crate) fn spawn_trigger(self: &Arc<Self>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
        let coordinator = Arc::clone(self);
        let step =
            (self.config.interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        std::thread::Builder::new()
            .name("checkpoint coordinator".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    coordinator.tick();
                    std::thread::sleep(step);
                }
            })
            .map(|_| ())
    }
}
