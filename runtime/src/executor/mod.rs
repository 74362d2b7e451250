//! The executor: turns a job graph into threads, one per subtask, and watches them.
//!
//! `launch` builds every subtask's inbox, exchange writers and operator chain, then starts one OS
//! thread per subtask. The first failure stops the whole job: every other task is cancelled and
//! woken, and the error names the operator and subtask. [`JobHandle`] gives asynchronous
//! control (cancel, wait, live metrics); [`StreamEnv::execute`](crate::StreamEnv::execute) waits
//! on the calling thread.

pub(crate) mod task;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::channel::{CancelFlag, Wake};
use crate::checkpoint::{
    CheckpointConfig, CheckpointStats, CompletedCheckpoint, Coordinator, RestartStrategy,
    SavepointRestore, read_folder,
};
use crate::error::{BoxError, JobError, TaskError, panic_message};
use crate::exchange::ShipStrategy;
use crate::graph::{AnyInbox, AnyOutput, BuildContext, JobGraph, NodeKind, StreamGraph};
use crate::operator::OperatorContext;
use crate::operator::chain::{OperatorMetrics, Runtime};
use crate::time::Clock;
use std::collections::BTreeMap;
use std::path::PathBuf;
use task::{TaskBody, TaskEnv};

/// How a job runs: the executor's part of the environment's configuration.
#[derive(Debug, Clone)]
pub(crate) struct ExecConfig {
    pub(crate) parallelism: usize,
    pub(crate) max_parallelism: u16,
    pub(crate) batch_size: usize,
    pub(crate) buffer_timeout: Duration,
    pub(crate) channel_capacity: usize,
    pub(crate) chaining: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) checkpoint: Option<CheckpointConfig>,
    pub(crate) restart: RestartStrategy,
    pub(crate) savepoint: Option<SavepointRestore>,
}

/// Every operator's name, parallelism and live counters.
type SharedMetrics = Arc<Vec<(String, usize, Arc<OperatorMetrics>)>>;

/// Record counts of one operator, summed over its subtasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorStats {
    /// The operator's name.
    pub name: String,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// Records the operator received.
    pub records_in: u64,
    /// Records the operator emitted.
    pub records_out: u64,
    /// Records the operator dropped because they arrived behind the watermark.
    pub late_records_dropped: u64,
}

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// The job's name.
    pub name: String,
    /// Wall-clock time from start to the end of the last task.
    pub duration: Duration,
    /// Per-operator record counts of the last attempt, in the order operators were declared.
    pub operators: Vec<OperatorStats>,
    /// How many times the job was restarted after a failure.
    pub restarts: u32,
    /// How many checkpoints (and savepoints) completed.
    pub checkpoints: u64,
    /// What each completed checkpoint took.
    pub checkpoint_stats: Vec<CheckpointStats>,
}

impl JobResult {
    /// The statistics of the first operator called `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorStats> {
        self.operators.iter().find(|o| o.name == name)
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "job {:?} finished in {:.3?}", self.name, self.duration)?;
        for op in &self.operators {
            writeln!(
                f,
                "  {:<32} parallelism {:>3}  in {:>12}  out {:>12}",
                op.name, op.parallelism, op.records_in, op.records_out
            )?;
        }
        Ok(())
    }
}

/// Shared by every task of a job: cancellation, the first failure, and who to wake.
pub(crate) struct JobControl {
    name: String,
    cancel: Arc<CancelFlag>,
    wakers: Mutex<Vec<Arc<dyn Wake>>>,
    first_error: Mutex<Option<JobError>>,
    cancelled_by_user: AtomicBool,
}

impl JobControl {
    fn stop_all(&self) {
        self.cancel.cancel();
        for waker in self.wakers.lock().iter() {
            waker.wake_all();
        }
    }

    fn fail(&self, error: JobError) {
        {
            let mut first = self.first_error.lock();
            if first.is_none() {
                *first = Some(error);
            }
        }
        self.stop_all();
    }

    pub(crate) fn cancel_by_user(&self) {
        self.cancelled_by_user.store(true, Ordering::Release);
        self.stop_all();
    }
}

/// A job whose threads are running.
pub(crate) struct RunningJob {
    pub(crate) control: Arc<JobControl>,
    threads: Vec<JoinHandle<()>>,
    metrics: SharedMetrics,
    started: Instant,
    stop_trigger: Arc<AtomicBool>,
    trigger: Option<JoinHandle<()>>,
}

pub(crate) fn snapshot_metrics(
    metrics: &[(String, usize, Arc<OperatorMetrics>)],
) -> Vec<OperatorStats> {
    metrics
        .iter()
        .map(|(name, parallelism, m)| OperatorStats {
            name: name.clone(),
            parallelism: *parallelism,
            records_in: m.records_in.load(Ordering::Relaxed),
            records_out: m.records_out.load(Ordering::Relaxed),
            late_records_dropped: m.late_records.load(Ordering::Relaxed),
        })
        .collect()
}

impl RunningJob {
    pub(crate) fn metrics(&self) -> SharedMetrics {
        Arc::clone(&self.metrics)
    }

    /// Waits for every task and reports how the job ended.
    pub(crate) fn join(self) -> Result<JobResult, JobError> {
        for thread in self.threads {
            // Task bodies catch their panics; a join error would be a runtime bug.
            let _ = thread.join();
        }
        self.stop_trigger.store(true, Ordering::Release);
        if let Some(trigger) = self.trigger {
            trigger.thread().unpark();
            let _ = trigger.join();
        }
        if let Some(error) = self.control.first_error.lock().take() {
            return Err(error);
        }
        if self.control.cancelled_by_user.load(Ordering::Acquire) {
            return Err(JobError::Cancelled {
                job: self.control.name.clone(),
            });
        }
        Ok(JobResult {
            name: self.control.name.clone(),
            duration: self.started.elapsed(),
            operators: snapshot_metrics(&self.metrics),
            restarts: 0,
            checkpoints: 0,
            checkpoint_stats: Vec::new(),
        })
    }
}

/// Builds every subtask of `graph` and starts its threads.
pub(crate) fn launch(
    name: &str,
    graph: &StreamGraph,
    config: &ExecConfig,
    coordinator: Option<&Arc<Coordinator>>,
    first_restore: Option<CompletedCheckpoint>,
) -> Result<RunningJob, JobError> {
    let job = JobGraph::build(
        name,
        graph,
        config.parallelism,
        config.max_parallelism,
        config.chaining,
    )?;
    let cancel = Arc::new(CancelFlag::default());
    let control = Arc::new(JobControl {
        name: name.to_owned(),
        cancel: Arc::clone(&cancel),
        wakers: Mutex::new(Vec::new()),
        first_error: Mutex::new(None),
        cancelled_by_user: AtomicBool::new(false),
    });

    // Channel layout: each non-chained edge owns a range of channels in its consumer's inboxes,
    // one per producing subtask (one in all for a forward edge).
    let mut channel_base = vec![0usize; graph.edges.len()];
    let mut channels = vec![0usize; job.vertices.len()];
    for (i, edge) in graph.edges.iter().enumerate() {
        if job.edge_chained[i] {
            continue;
        }
        let consumer = job.node_vertex[edge.to];
        channel_base[i] = channels[consumer];
        let producers = job.node_parallelism[edge.from];
        if job.edge_strategy[i] == ShipStrategy::Forward
            && producers != job.node_parallelism[edge.to]
        {
            return Err(JobError::InvalidGraph(
                crate::error::GraphError::InvalidParallelism {
                    operator: graph.nodes[edge.to].name.clone(),
                    parallelism: job.node_parallelism[edge.to],
                    max_parallelism: producers,
                },
            ));
        }
        channels[consumer] += if job.edge_strategy[i] == ShipStrategy::Forward {
            1
        } else {
            producers
        };
    }

    let mut inboxes: Vec<Vec<AnyInbox>> = Vec::with_capacity(job.vertices.len());
    for (v, vertex) in job.vertices.iter().enumerate() {
        let head = &graph.nodes[vertex.operators[0]];
        let mut subtask_inboxes = Vec::new();
        if channels[v] > 0 {
            for _ in 0..vertex.parallelism {
                let (inbox, waker) = match &head.kind {
                    NodeKind::OneInput(n) => {
                        n.new_inbox(channels[v], config.channel_capacity, Arc::clone(&cancel))
                    }
                    NodeKind::TwoInput(n) => {
                        n.new_inbox(channels[v], config.channel_capacity, Arc::clone(&cancel))
                    }
                    NodeKind::Source(_) => unreachable!("a source has no inputs"),
                };
                control.wakers.lock().push(waker);
                subtask_inboxes.push(inbox);
            }
        }
        inboxes.push(subtask_inboxes);
    }

    // Every operator subtask takes part in checkpoints; a restore starts from the latest one.
    let restore = coordinator.and_then(|c| {
        let latest = c.start_attempt(
            graph.nodes.iter().enumerate().flat_map(|(node, _)| {
                (0..job.node_parallelism[node]).map(move |subtask| (node, subtask))
            }),
            operator_ids(graph),
        );
        first_restore.or(latest)
    });
    if let Some(checkpoint) = &restore {
        preload_in_flight(graph, &job, &inboxes, checkpoint)?;
    }
    let metrics: Vec<Arc<OperatorMetrics>> = graph
        .nodes
        .iter()
        .map(|_| Arc::new(OperatorMetrics::default()))
        .collect();
    let context = |node: usize, subtask: usize| BuildContext {
        runtime: Runtime {
            node,
            metrics: Arc::clone(&metrics[node]),
            checkpoints: coordinator.cloned(),
            restore: restore.as_ref().and_then(|c| {
                let own = c.subtasks.get(&(node, subtask));
                if own.is_some_and(|s| s.finished) {
                    return None;
                }
                let mut state = c.keyed_state_of(node);
                state.operator = own.map(|s| s.state.operator.clone()).unwrap_or_default();
                Some(state)
            }),
        },
        restored_splits: restore.as_ref().map(|c| {
            c.operator_states_of(node)
                .into_iter()
                .map(|s| s.state.operator.clone())
                .collect()
        }),
        operator: OperatorContext {
            name: graph.nodes[node].name.clone(),
            subtask,
            parallelism: job.node_parallelism[node],
            max_parallelism: config.max_parallelism,
            clock: Arc::clone(&config.clock),
            checkpointing: config.checkpoint.is_some(),
            late_records: Arc::clone(&metrics[node].late_records),
        },
        batch_size: config.batch_size,
    };

    #[allow(clippy::type_complexity)]
    let mut bodies: Vec<(String, Box<dyn TaskBody>, OperatorContext, Vec<usize>)> = Vec::new();
    for (v, vertex) in job.vertices.iter().enumerate() {
        let tail = *vertex.operators.last().unwrap_or(&vertex.operators[0]);
        for subtask in 0..vertex.parallelism {
            let mut outs: Vec<AnyOutput> = Vec::new();
            for (i, edge) in graph.edges.iter().enumerate() {
                if edge.from != tail || job.edge_chained[i] {
                    continue;
                }
                let consumer = job.node_vertex[edge.to];
                let strategy = job.edge_strategy[i];
                let (targets, channel) = if strategy == ShipStrategy::Forward {
                    (
                        vec![Arc::clone(&inboxes[consumer][subtask])],
                        channel_base[i],
                    )
                } else {
                    (inboxes[consumer].clone(), channel_base[i] + subtask)
                };
                outs.push(edge.factory.writer(
                    targets,
                    channel,
                    strategy,
                    config.max_parallelism,
                    config.batch_size,
                ));
            }
            let mut out = match outs.len() {
                0 => graph.nodes[tail].output.discard(),
                1 => outs.pop().unwrap_or_else(|| unreachable!()),
                _ => graph.nodes[tail].output.fan_out(outs),
            };
            for &node in vertex.operators[1..].iter().rev() {
                match &graph.nodes[node].kind {
                    NodeKind::OneInput(n) => out = n.chain(context(node, subtask), out),
                    _ => unreachable!("only one-input operators are chained"),
                }
            }
            let head = vertex.operators[0];
            let body = match &graph.nodes[head].kind {
                NodeKind::Source(s) => s.build(context(head, subtask), out)?,
                NodeKind::OneInput(n) => {
                    let chain = n.chain(context(head, subtask), out);
                    n.head(&inboxes[v][subtask], chain, (head, subtask))
                }
                NodeKind::TwoInput(n) => n.head(context(head, subtask), &inboxes[v][subtask], out),
            };
            let thread_name = format!(
                "{} ({}/{})",
                job.chain_name(v),
                subtask + 1,
                vertex.parallelism
            );
            bodies.push((
                thread_name,
                body,
                context(head, subtask).operator,
                vertex.operators.clone(),
            ));
        }
    }

    let started = Instant::now();
    let mut threads = Vec::with_capacity(bodies.len());
    let stop_trigger = Arc::new(AtomicBool::new(false));
    for (thread_name, body, head, nodes) in bodies {
        let task_coordinator = coordinator.cloned();
        let env = TaskEnv {
            cancel: Arc::clone(&cancel),
            buffer_timeout: config.buffer_timeout,
            clock: Arc::clone(&config.clock),
            checkpoints: coordinator.cloned(),
        };
        let task_control = Arc::clone(&control);
        let spawned = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| body.run(&env)));
                match result {
                    Ok(Ok(())) => {
                        if let Some(coordinator) = task_coordinator {
                            coordinator.finished(&nodes, head.subtask);
                        }
                    }
                    Ok(Err(TaskError::Cancelled)) => {}
                    Ok(Err(TaskError::Failed(error))) => task_control.fail(*error),
                    Ok(Err(TaskError::User(source))) => {
                        task_control.fail(JobError::OperatorFailed {
                            operator: head.name,
                            subtask: head.subtask,
                            parallelism: head.parallelism,
                            source,
                        })
                    }
                    Err(payload) => task_control.fail(JobError::OperatorPanicked {
                        operator: head.name,
                        subtask: head.subtask,
                        parallelism: head.parallelism,
                        message: panic_message(payload.as_ref()),
                    }),
                }
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(source) => {
                control.fail(JobError::Spawn {
                    task: thread_name,
                    source,
                });
                break;
            }
        }
    }
    let trigger = match coordinator {
        Some(coordinator) => Some(
            coordinator
                .spawn_trigger(Arc::clone(&stop_trigger))
                .map_err(|source| JobError::Spawn {
                    task: "checkpoint coordinator".to_owned(),
                    source,
                })?,
        ),
        None => None,
    };
    let metrics = graph
        .nodes
        .iter()
        .zip(metrics)
        .enumerate()
        .map(|(i, (node, m))| (node.name.clone(), job.node_parallelism[i], m))
        .collect();
    Ok(RunningJob {
        control,
        threads,
        metrics: Arc::new(metrics),
        started,
        stop_trigger,
        trigger,
    })
}

/// Queues the in-flight data an unaligned checkpoint stored for each task on the task's input
/// channels, ahead of any new input. Such data restores only at the parallelism that took it.
fn preload_in_flight(
    graph: &StreamGraph,
    job: &JobGraph,
    inboxes: &[Vec<AnyInbox>],
    checkpoint: &CompletedCheckpoint,
) -> Result<(), JobError> {
    for (v, vertex) in job.vertices.iter().enumerate() {
        let head = vertex.operators[0];
        let stored = checkpoint.operator_states_of(head);
        let with_data = stored.iter().any(|s| !s.in_flight.is_empty());
        if !with_data {
            continue;
        }
        let fail = |subtask: usize, source: BoxError| JobError::InFlightRestore {
            operator: graph.nodes[head].name.clone(),
            subtask,
            checkpoint: checkpoint.id,
            source,
        };
        if stored.len() != vertex.parallelism {
            return Err(fail(
                0,
                format!(
                    "it was taken at parallelism {} and the job runs at {}; restore from a savepoint (always aligned) to rescale",
                    stored.len(),
                    vertex.parallelism
                )
                .into(),
            ));
        }
        for (subtask, inbox) in inboxes[v].iter().enumerate() {
            let Some(state) = checkpoint.subtasks.get(&(head, subtask)) else {
                continue;
            };
            let preloaded = match &graph.nodes[head].kind {
                NodeKind::OneInput(n) => n.preload(inbox, &state.in_flight),
                NodeKind::TwoInput(n) => n.preload(inbox, &state.in_flight),
                NodeKind::Source(_) => Ok(()),
            };
            preloaded.map_err(|source| fail(subtask, source))?;
        }
    }
    Ok(())
}

/// The stable id of every operator: its uid, or its position and name.
fn operator_ids(graph: &StreamGraph) -> BTreeMap<usize, String> {
    graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                i,
                n.uid.clone().unwrap_or_else(|| format!("{i}-{}", n.name)),
            )
        })
        .collect()
}

/// Reads a savepoint and maps its state to the operators of `graph` by operator id.
fn read_savepoint(
    graph: &StreamGraph,
    restore: &SavepointRestore,
) -> Result<CompletedCheckpoint, JobError> {
    let saved = read_folder(&restore.path).map_err(|source| JobError::Savepoint {
        path: restore.path.clone(),
        source,
    })?;
    let by_id: BTreeMap<String, usize> = operator_ids(graph)
        .into_iter()
        .map(|(n, id)| (id, n))
        .collect();
    let mut mapped = CompletedCheckpoint {
        id: saved.id,
        ..Default::default()
    };
    for ((old, subtask), state) in saved.subtasks {
        let id = saved.operator_ids.get(&old).cloned().unwrap_or_default();
        match by_id.get(&id) {
            Some(&node) => {
                mapped.subtasks.insert((node, subtask), state);
                mapped.operator_ids.insert(node, id);
            }
            None if restore.allow_non_restored_state => {}
            None => {
                return Err(JobError::UnknownSavepointState {
                    operator: id,
                    path: restore.path.clone(),
                });
            }
        }
    }
    Ok(mapped)
}

/// Runs a job to its end: launches it, and after a failure restarts it from the latest
/// completed checkpoint as long as the restart strategy allows.
pub(crate) struct Supervisor {
    name: String,
    /// Behind a lock only so the supervisor can be shared; it is read at each launch.
    graph: Mutex<StreamGraph>,
    config: ExecConfig,
    coordinator: Option<Arc<Coordinator>>,
    /// The running attempt, for cancellation and live metrics.
    current: Mutex<Option<(Arc<JobControl>, SharedMetrics)>>,
    cancelled: AtomicBool,
}

impl Supervisor {
    pub(crate) fn new(
        name: &str,
        graph: StreamGraph,
        config: ExecConfig,
    ) -> Result<Self, JobError> {
        // Validate before anything runs, so graph errors surface from `execute` directly.
        JobGraph::build(
            name,
            &graph,
            config.parallelism,
            config.max_parallelism,
            config.chaining,
        )?;
        let coordinator = Some(Arc::new(Coordinator::new(config.checkpoint.clone())));
        Ok(Supervisor {
            name: name.to_owned(),
            graph: Mutex::new(graph),
            config,
            coordinator,
            current: Mutex::new(None),
            cancelled: AtomicBool::new(false),
        })
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some((control, _)) = self.current.lock().as_ref() {
            control.cancel_by_user();
        }
    }

    pub(crate) fn metrics(&self) -> Vec<OperatorStats> {
        match self.current.lock().as_ref() {
            Some((_, metrics)) => snapshot_metrics(metrics),
            None => Vec::new(),
        }
    }

    pub(crate) fn run(&self) -> Result<JobResult, JobError> {
        let mut failures = Vec::new();
        let mut restarts = 0;
        let mut first_restore = match &self.config.savepoint {
            Some(restore) => Some(read_savepoint(&self.graph.lock(), restore)?),
            None => None,
        };
        loop {
            let job = launch(
                &self.name,
                &self.graph.lock(),
                &self.config,
                self.coordinator.as_ref(),
                first_restore.take(),
            )?;
            *self.current.lock() = Some((Arc::clone(&job.control), job.metrics()));
            if self.cancelled.load(Ordering::Acquire) {
                job.control.cancel_by_user();
            }
            let checkpoints = || self.coordinator.as_ref().map_or(0, |c| c.completed_count());
            match job.join() {
                Ok(mut result) => {
                    result.restarts = restarts;
                    result.checkpoints = checkpoints();
                    result.checkpoint_stats = self
                        .coordinator
                        .as_ref()
                        .map(|c| c.stats())
                        .unwrap_or_default();
                    return Ok(result);
                }
                Err(error @ JobError::Cancelled { .. }) => return Err(error),
                Err(error) => {
                    if self.cancelled.load(Ordering::Acquire) {
                        return Err(error);
                    }
                    failures.push(Instant::now());
                    match self.config.restart.next_delay(&failures) {
                        Some(delay) => {
                            eprintln!(
                                "job {:?} failed, restarting in {delay:?}: {error}",
                                self.name
                            );
                            std::thread::sleep(delay);
                            restarts += 1;
                        }
                        None => return Err(error),
                    }
                }
            }
        }
    }
}

/// Control over a job started with [`StreamEnv::execute_async`](crate::StreamEnv::execute_async).
///
/// The handle's futures work on any async runtime.
///
/// ```
/// use rivulet_runtime::StreamEnv;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let env = StreamEnv::new().with_parallelism(1);
/// let out = env.from_vec(vec![1, 2, 3]).map(|x| x * 10).collect();
/// let handle = env.execute_async("async job").unwrap();
/// let result = handle.wait().await.unwrap();
/// assert_eq!(result.operator("Map").unwrap().records_out, 3);
/// assert_eq!(out.take_sorted(), vec![10, 20, 30]);
/// # });
/// ```
pub struct JobHandle {
    supervisor: Arc<Supervisor>,
    done: tokio::sync::watch::Receiver<bool>,
    result: Arc<Mutex<Option<Result<JobResult, JobError>>>>,
}

impl JobHandle {
    pub(crate) fn spawn(supervisor: Supervisor) -> Result<JobHandle, JobError> {
        let supervisor = Arc::new(supervisor);
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let result = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&result);
        let running = Arc::clone(&supervisor);
        std::thread::Builder::new()
            .name(format!("job supervisor {:?}", supervisor.name))
            .spawn(move || {
                *slot.lock() = Some(running.run());
                let _ = done_tx.send(true);
            })
            .map_err(|source| JobError::Spawn {
                task: "job supervisor".to_owned(),
                source,
            })?;
        Ok(JobHandle {
            supervisor,
            done,
            result,
        })
    }

    /// Live record counts per operator of the running attempt.
    pub fn metrics(&self) -> Vec<OperatorStats> {
        self.supervisor.metrics()
    }

    /// Whether every task has ended.
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }

    /// Takes a savepoint into `dir` (an aligned snapshot of every operator, mapped by uid) and
    /// returns its folder once every task acknowledged it.
    ///
    /// # Errors
    /// When the savepoint was abandoned (a task failed, it timed out) or could not be written.
    pub async fn trigger_savepoint(&self, dir: impl Into<PathBuf>) -> Result<PathBuf, JobError> {
        let dir = dir.into();
        let Some(coordinator) = self.supervisor.coordinator.as_ref() else {
            unreachable!("every job has a checkpoint coordinator")
        };
        let waiting = coordinator.trigger_savepoint(dir.clone());
        match waiting.await {
            Ok(Ok(folder)) => Ok(folder),
            Ok(Err(source)) => Err(JobError::Savepoint { path: dir, source }),
            Err(_) => Err(JobError::Savepoint {
                path: dir,
                source: crate::checkpoint::CheckpointError::Aborted {
                    id: 0,
                    reason: "the job ended first".to_owned(),
                },
            }),
        }
    }

    /// Takes a savepoint, then cancels the job; returns the savepoint's folder.
    ///
    /// # Errors
    /// As [`JobHandle::trigger_savepoint`]; the job keeps running when the savepoint failed.
    pub async fn stop_with_savepoint(&self, dir: impl Into<PathBuf>) -> Result<PathBuf, JobError> {
        let folder = self.trigger_savepoint(dir).await?;
        self.cancel().await;
        Ok(folder)
    }

    async fn until_done(&self) {
        let mut done = self.done.clone();
        // An error means the supervisor is gone, which only happens after it reported.
        let _ = done.wait_for(|finished| *finished).await;
    }

    /// Cancels the job and waits until every task has stopped: when this returns, no operator
    /// of the job runs any more.
    pub async fn cancel(&self) {
        self.supervisor.cancel();
        self.until_done().await;
    }

    /// Waits for the job to end.
    ///
    /// # Errors
    /// The job's failure, or [`JobError::Cancelled`] when it was cancelled.
    pub async fn wait(self) -> Result<JobResult, JobError> {
        self.until_done().await;
        self.result.lock().take().unwrap_or_else(|| {
            Err(JobError::Cancelled {
                job: self.supervisor.name.clone(),
            })
        })
    }
}
