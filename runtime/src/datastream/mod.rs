//! The DataStream API: [`StreamEnv`] builds jobs from sources, operators and sinks.
//!
//! A [`Stream<B>`] is a handle on the batches one or more operators produce; typed streams of
//! Rust values are [`DataStream<T>`] (`Stream<Records<T>>`) with `map`, `filter`, `key_by`, ...,
//! and Arrow streams of the relational plane are `Stream<ChangelogBatch>`, transformed by
//! vectorised operators through [`Stream::transform`]. Both run on the same executor.

mod keyed;
mod windowed;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use keyed::{ConnectedStreams, KeyedConnectedStreams, KeyedStream};
pub use windowed::{WindowedStream, WindowedStreamWithLateData};

use crate::batch::{Batch, Data, Records};
use crate::checkpoint::{CheckpointConfig, RestartStrategy, SavepointRestore};
use crate::error::{GraphError, JobError};
use crate::exchange::{BatchKeySelector, ShipStrategy, TypedKeySelector};
use crate::executor::{ExecConfig, JobHandle, JobResult, Supervisor};
use crate::graph::{
    JobGraph, NodeId, NodeKind, OperatorNode, OutputOpsOf, StreamEdge, StreamGraph, StreamNode,
    TwoInputOperatorNode, TwoInputs, TypedEdge,
};
use crate::keys::DEFAULT_MAX_PARALLELISM;
use crate::operator::typed::{
    FilterOperator, FlatMapOperator, MapOperator, SinkFunction, SinkOperator,
};
use crate::operator::watermarks::TimestampsAndWatermarksOperator;
use crate::operator::{Operator, TwoInputOperator};
use crate::sink::{CollectHandle, CollectSink, ForEachSink, PrintSink};
use crate::source::{
    GeneratorSource, IterSource, Source, SourceOperatorNode, VecSource, WatermarksFactory,
};
use crate::time::{Clock, SystemClock, WatermarkStrategy};

static NEXT_ENV_ID: AtomicU64 = AtomicU64::new(0);

struct EnvInner {
    config: ExecConfig,
    graph: StreamGraph,
    /// A mistake found by an infallible builder method, reported by `execute`.
    deferred: Option<GraphError>,
}

/// The entry point of a streaming job: configuration plus the graph being built.
///
/// `StreamEnv` is a cheap handle (clones share one job). Build the job with `from_*` sources and
/// stream methods, then run it with [`StreamEnv::execute`].
///
/// ```
/// use rivulet_runtime::StreamEnv;
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let evens = env.from_vec((1..=10).collect::<Vec<i64>>()).filter(|x| x % 2 == 0).collect();
/// let result = env.execute("evens").unwrap();
/// assert_eq!(evens.take_sorted(), vec![2, 4, 6, 8, 10]);
/// assert_eq!(result.operator("Filter").unwrap().records_in, 10);
/// ```
#[derive(Clone)]
pub struct StreamEnv {
    inner: Arc<Mutex<EnvInner>>,
    id: u64,
}

impl Default for StreamEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for StreamEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("StreamEnv")
            .field("config", &inner.config)
            .field("operators", &inner.graph.nodes.len())
            .finish()
    }
}

impl StreamEnv {
    /// A new environment with a default parallelism equal to the number of cores.
    pub fn new() -> Self {
        let parallelism = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        StreamEnv {
            inner: Arc::new(Mutex::new(EnvInner {
                config: ExecConfig {
                    parallelism,
                    max_parallelism: DEFAULT_MAX_PARALLELISM,
                    batch_size: 1024,
                    buffer_timeout: Duration::from_millis(100),
                    channel_capacity: 8,
                    chaining: true,
                    clock: Arc::new(SystemClock),
                    checkpoint: None,
                    restart: RestartStrategy::None,
                    savepoint: None,
                },
                graph: StreamGraph::default(),
                deferred: None,
            })),
            id: NEXT_ENV_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A new, empty environment with this one's configuration: for building a program only to
    /// look at its graph (an explained plan) without adding to this environment.
    pub fn scratch(&self) -> StreamEnv {
        let config = self.inner.lock().config.clone();
        StreamEnv {
            inner: Arc::new(Mutex::new(EnvInner {
                config,
                graph: StreamGraph::default(),
                deferred: None,
            })),
            id: NEXT_ENV_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether `other` is this environment (or a clone of it).
    pub fn same(&self, other: &StreamEnv) -> bool {
        self.id == other.id
    }

    /// Sets the parallelism of operators that do not set their own.
    ///
    /// Default: the number of cores.
    pub fn with_parallelism(self, parallelism: usize) -> Self {
        self.inner.lock().config.parallelism = parallelism;
        self
    }

    /// Sets the maximum parallelism: the number of key groups, the unit in which keyed state is
    /// distributed and rescaled. Changing it later makes savepoints unrestorable.
    ///
    /// Default: 128.
    pub fn with_max_parallelism(self, max_parallelism: u16) -> Self {
        self.inner.lock().config.max_parallelism = max_parallelism.max(1);
        self
    }

    /// Sets how many records a batch holds before it is sent.
    ///
    /// Default: 1024.
    pub fn with_batch_size(self, batch_size: usize) -> Self {
        self.inner.lock().config.batch_size = batch_size.max(1);
        self
    }

    /// Sets how long a partly filled batch may wait before it is sent anyway.
    ///
    /// Default: 100 ms, as Flink's buffer timeout. Zero sends after every batch an operator emits.
    pub fn with_buffer_timeout(self, timeout: Duration) -> Self {
        self.inner.lock().config.buffer_timeout = timeout;
        self
    }

    /// Sets how many batches a channel between two subtasks holds before its writer blocks.
    ///
    /// Default: 8.
    pub fn with_channel_capacity(self, capacity: usize) -> Self {
        self.inner.lock().config.channel_capacity = capacity.max(1);
        self
    }

    /// Runs every operator in a task of its own instead of chaining neighbours.
    ///
    /// Default: chaining on.
    pub fn disable_operator_chaining(self) -> Self {
        self.inner.lock().config.chaining = false;
        self
    }

    /// Sets the clock processing time is read from; tests pass a
    /// [`ManualClock`](crate::time::ManualClock) to drive processing time by hand.
    ///
    /// Default: the system clock.
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.inner.lock().config.clock = Arc::new(clock);
        self
    }

    /// Takes checkpoints as `config` says: operator state and source positions, consistent
    /// across the job, from which a failed job restarts.
    ///
    /// Default: no checkpoints.
    pub fn with_checkpointing(self, config: CheckpointConfig) -> Self {
        self.inner.lock().config.checkpoint = Some(config);
        self
    }

    /// Sets what happens when a task fails: with a restart, the job resumes from its latest
    /// completed checkpoint (or from the start, without checkpoints).
    ///
    /// Default: [`RestartStrategy::None`], the job fails.
    pub fn with_restart_strategy(self, strategy: RestartStrategy) -> Self {
        self.inner.lock().config.restart = strategy;
        self
    }

    /// Starts the job from a savepoint's state.
    ///
    /// Default: no savepoint; the job starts empty.
    pub fn with_savepoint_restore(self, restore: SavepointRestore) -> Self {
        self.inner.lock().config.savepoint = Some(restore);
        self
    }

    /// The default parallelism.
    pub fn parallelism(&self) -> usize {
        self.inner.lock().config.parallelism
    }

    /// The maximum parallelism.
    pub fn max_parallelism(&self) -> u16 {
        self.inner.lock().config.max_parallelism
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.inner.lock().config.batch_size
    }

    /// The capacity of each channel, in batches.
    pub fn channel_capacity(&self) -> usize {
        self.inner.lock().config.channel_capacity
    }

    /// A parallel source over the records of a vector, split into contiguous parts.
    pub fn from_vec<T: Data + Sync>(&self, records: Vec<T>) -> DataStream<T> {
        self.from_source(VecSource::new(records))
    }

    /// A non-parallel source over what a clonable iterable yields.
    pub fn from_iter<I>(&self, iterable: I) -> DataStream<I::Item>
    where
        I: IntoIterator + Clone + Send + 'static,
        I::IntoIter: Send + 'static,
        I::Item: Data,
    {
        self.from_source(IterSource::new(iterable))
    }

    /// A parallel source of the numbers `start..end`.
    pub fn from_sequence(&self, range: std::ops::Range<i64>) -> DataStream<i64> {
        let start = range.start;
        let count = range.end.saturating_sub(range.start).max(0) as u64;
        self.from_source(GeneratorSource::new(count, move |i| start + i as i64))
            .name("Source: sequence")
    }

    /// A parallel source of `count` records made from their index by `generate`.
    pub fn from_generator<T, F>(&self, count: u64, generate: F) -> DataStream<T>
    where
        T: Data,
        F: Fn(u64) -> T + Clone + Send + 'static,
    {
        self.from_source(GeneratorSource::new(count, generate))
    }

    /// A stream read from a [`Source`].
    pub fn from_source<S: Source>(&self, source: S) -> Stream<S::Batch> {
        self.add_source(source, None)
    }

    /// A typed stream read from a [`Source`] with event time: timestamps are assigned and
    /// watermarks generated per split, and a subtask's watermark is the minimum over its splits
    /// (idle splits excluded, when the strategy has an idleness timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet_runtime::StreamEnv;
    /// use rivulet_runtime::source::VecSource;
    /// use rivulet_runtime::time::WatermarkStrategy;
    ///
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
    ///     .with_timestamp_assigner(|r: &(i64, String), _| r.0);
    /// let events = env.from_source_with_watermarks(
    ///     VecSource::new(vec![(5, "a".to_owned()), (1, "b".to_owned())]),
    ///     strategy,
    /// );
    /// let out = events.collect();
    /// env.execute("event time").unwrap();
    /// assert_eq!(out.take().len(), 2);
    /// ```
    pub fn from_source_with_watermarks<T, S>(
        &self,
        source: S,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<T>
    where
        T: Data,
        S: Source<Batch = Records<T>>,
    {
        let factory: WatermarksFactory<Records<T>> =
            Arc::new(move |now| Box::new(strategy.instance(now)));
        self.add_source(source, Some(factory))
    }

    fn add_source<S: Source>(
        &self,
        source: S,
        watermarks: Option<WatermarksFactory<S::Batch>>,
    ) -> Stream<S::Batch> {
        let name = source.name();
        let id = self.inner.lock().graph.add_node(StreamNode {
            name,
            uid: None,
            parallelism: None,
            kind: NodeKind::Source(Box::new(SourceOperatorNode { source, watermarks })),
            output: OutputOpsOf::<S::Batch>::boxed(),
            chainable: true,
        });
        Stream::new(self.clone(), vec![id])
    }

    /// The job graph the current program would run as.
    ///
    /// # Errors
    /// When the graph is invalid, e.g. a parallelism above the maximum parallelism.
    pub fn job_graph(&self, name: &str) -> Result<JobGraph, GraphError> {
        let inner = self.inner.lock();
        if let Some(error) = &inner.deferred {
            return Err(error.clone());
        }
        JobGraph::build(
            name,
            &inner.graph,
            inner.config.parallelism,
            inner.config.max_parallelism,
            inner.config.chaining,
        )
    }

    fn take_graph(&self) -> Result<(StreamGraph, ExecConfig), GraphError> {
        let mut inner = self.inner.lock();
        if let Some(error) = inner.deferred.take() {
            return Err(error);
        }
        if inner.graph.nodes.is_empty() {
            return Err(GraphError::Empty);
        }
        Ok((std::mem::take(&mut inner.graph), inner.config.clone()))
    }

    /// Runs the job built so far and waits until it ends. The environment is then empty and can
    /// build the next job.
    ///
    /// # Errors
    /// When the graph is invalid or an operator fails; the error names the operator and subtask.
    pub fn execute(&self, name: &str) -> Result<JobResult, JobError> {
        let (graph, config) = self.take_graph()?;
        Supervisor::new(name, graph, config)?.run()
    }

    /// Starts the job built so far and returns a handle to cancel it, watch it and wait for it.
    ///
    /// # Errors
    /// When the graph is invalid or a thread cannot be started.
    pub fn execute_async(&self, name: &str) -> Result<JobHandle, JobError> {
        let (graph, config) = self.take_graph()?;
        JobHandle::spawn(Supervisor::new(name, graph, config)?)
    }

    fn defer(&self, error: GraphError) {
        let mut inner = self.inner.lock();
        if inner.deferred.is_none() {
            inner.deferred = Some(error);
        }
    }
}

/// How the next operator receives a stream's batches.
enum Pending<B> {
    Default,
    Strategy(ShipStrategy),
    Hash(Box<dyn BatchKeySelector<B>>),
}

impl<B: 'static> Clone for Pending<B> {
    fn clone(&self) -> Self {
        match self {
            Pending::Default => Pending::Default,
            Pending::Strategy(s) => Pending::Strategy(*s),
            Pending::Hash(selector) => Pending::Hash(selector.box_clone()),
        }
    }
}

/// A stream of batches of type `B`: the output of one operator, or the union of several.
///
/// Typed streams are [`DataStream<T>`]; see there for `map`, `filter`, `key_by` and sinks.
pub struct Stream<B> {
    env: StreamEnv,
    nodes: Vec<NodeId>,
    pending: Pending<B>,
}

impl<B: 'static> Clone for Stream<B> {
    fn clone(&self) -> Self {
        Stream {
            env: self.env.clone(),
            nodes: self.nodes.clone(),
            pending: self.pending.clone(),
        }
    }
}

/// A stream of typed records: `map`, `filter`, `flat_map`, `key_by`, `union`, `connect`, sinks.
pub type DataStream<T> = Stream<Records<T>>;

fn identity<B>(batch: B) -> B {
    batch
}

impl<B: Batch> Stream<B> {
    fn new(env: StreamEnv, nodes: Vec<NodeId>) -> Self {
        Stream {
            env,
            nodes,
            pending: Pending::Default,
        }
    }

    /// The environment the stream belongs to.
    pub fn env(&self) -> &StreamEnv {
        &self.env
    }

    fn edges_into<C: Send + 'static>(&self, to: NodeId, wrap: fn(B) -> C, graph: &mut StreamGraph) {
        for &from in &self.nodes {
            let (strategy, selector) = match &self.pending {
                Pending::Default => (None, None),
                Pending::Strategy(s) => (Some(*s), None),
                Pending::Hash(selector) => (Some(ShipStrategy::Hash), Some(selector.box_clone())),
            };
            graph.add_edge(StreamEdge {
                from,
                to,
                strategy,
                factory: Box::new(TypedEdge { wrap, selector }),
            });
        }
    }

    /// Applies an operator built by `make` (called once per subtask and again on restart).
    ///
    /// This is how custom and vectorised operators join a job.
    #[track_caller]
    pub fn transform<O, M>(&self, name: &str, make: M) -> Stream<O::Out>
    where
        O: Operator<In = B>,
        M: Fn() -> O + Send + 'static,
    {
        let mut inner = self.env.inner.lock();
        let id = inner.graph.add_node(StreamNode {
            name: name.to_owned(),
            uid: None,
            parallelism: None,
            kind: NodeKind::OneInput(Box::new(OperatorNode::<O> {
                make: Box::new(make),
            })),
            output: OutputOpsOf::<O::Out>::boxed(),
            chainable: true,
        });
        self.edges_into(id, identity::<B>, &mut inner.graph);
        drop(inner);
        Stream::new(self.env.clone(), vec![id])
    }

    /// Applies a two-input operator to this stream (first input) and `other` (second input).
    pub fn transform_two_input<O, M>(
        &self,
        other: &Stream<O::In2>,
        name: &str,
        make: M,
    ) -> Stream<O::Out>
    where
        O: TwoInputOperator<In1 = B>,
        M: Fn() -> O + Send + 'static,
    {
        if self.env.id != other.env.id {
            self.env.defer(GraphError::ForeignStream {
                operator: name.to_owned(),
            });
        }
        let mut inner = self.env.inner.lock();
        let id = inner.graph.add_node(StreamNode {
            name: name.to_owned(),
            uid: None,
            parallelism: None,
            kind: NodeKind::TwoInput(Box::new(TwoInputOperatorNode::<O> {
                make: Box::new(make),
            })),
            output: OutputOpsOf::<O::Out>::boxed(),
            chainable: true,
        });
        self.edges_into(id, TwoInputs::<B, O::In2>::First, &mut inner.graph);
        if self.env.id == other.env.id {
            other.edges_into(id, TwoInputs::<B, O::In2>::Second, &mut inner.graph);
        }
        drop(inner);
        Stream::new(self.env.clone(), vec![id])
    }

    /// Routes rows to the next operator's subtasks by the key groups `selector` computes.
    pub fn partition_by_key(mut self, selector: impl BatchKeySelector<B>) -> Self {
        self.pending = Pending::Hash(Box::new(selector));
        self
    }

    /// Sends batches round-robin to every subtask of the next operator.
    pub fn rebalance(mut self) -> Self {
        self.pending = Pending::Strategy(ShipStrategy::Rebalance);
        self
    }

    /// Sends every batch to every subtask of the next operator.
    pub fn broadcast(mut self) -> Self {
        self.pending = Pending::Strategy(ShipStrategy::Broadcast);
        self
    }

    /// Sends everything to the first subtask of the next operator.
    pub fn global(mut self) -> Self {
        self.pending = Pending::Strategy(ShipStrategy::Global);
        self
    }

    /// Merges streams of the same type into one, without an operator in between.
    pub fn union(&self, others: impl IntoIterator<Item = Stream<B>>) -> Stream<B> {
        let mut nodes = self.nodes.clone();
        for other in others {
            if other.env.id != self.env.id {
                self.env.defer(GraphError::ForeignStream {
                    operator: "union".to_owned(),
                });
                continue;
            }
            nodes.extend(other.nodes);
        }
        Stream::new(self.env.clone(), nodes)
    }

    fn update_nodes(self, f: impl Fn(&mut StreamNode)) -> Self {
        {
            let mut inner = self.env.inner.lock();
            for &node in &self.nodes {
                f(&mut inner.graph.nodes[node]);
            }
        }
        self
    }

    /// Sets the parallelism of the operator producing this stream (of each, for a union).
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.update_nodes(|n| n.parallelism = Some(parallelism))
    }

    /// The parallelism set on the operator producing this stream (the largest, for a union), or
    /// `None` when it runs at the job's default.
    pub fn explicit_parallelism(&self) -> Option<usize> {
        let inner = self.env.inner.lock();
        self.nodes
            .iter()
            .filter_map(|&node| inner.graph.nodes[node].parallelism)
            .max()
    }

    /// `next` (a stream derived from this one) given this stream's explicit parallelism, if it
    /// has one, so a step right behind a source of parallelism 1 runs chained to it.
    pub fn same_parallelism<C: Batch>(&self, next: Stream<C>) -> Stream<C> {
        match self.explicit_parallelism() {
            Some(p) => next.set_parallelism(p),
            None => next,
        }
    }

    /// Names the operator producing this stream, as shown in job graphs, metrics and errors.
    pub fn name(self, name: &str) -> Self {
        self.update_nodes(|n| n.name = name.to_owned())
    }

    /// Gives the operator producing this stream a stable id: savepoints map state to operators
    /// by it, so set it on every stateful operator of a long-running job.
    pub fn uid(self, uid: &str) -> Self {
        self.update_nodes(|n| n.uid = Some(uid.to_owned()))
    }

    /// Starts a new chain at the operator producing this stream.
    pub fn start_new_chain(self) -> Self {
        self.update_nodes(|n| n.chainable = false)
    }
}

impl<T: Data> Stream<Records<T>> {
    /// Applies `f` to every record.
    #[track_caller]
    pub fn map<U, F>(&self, f: F) -> DataStream<U>
    where
        U: Data,
        F: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.transform("Map", move || MapOperator::new(f.clone()))
    }

    /// Keeps the records for which `predicate` returns true.
    #[track_caller]
    pub fn filter<F>(&self, predicate: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + 'static,
    {
        self.transform("Filter", move || FilterOperator::new(predicate.clone()))
    }

    /// Replaces every record with the records `f` returns for it.
    #[track_caller]
    pub fn flat_map<U, I, F>(&self, f: F) -> DataStream<U>
    where
        U: Data,
        I: IntoIterator<Item = U>,
        F: FnMut(T) -> I + Clone + Send + 'static,
    {
        self.transform("Flat Map", move || FlatMapOperator::new(f.clone()))
    }

    /// Assigns event-time timestamps and generates watermarks in every subtask, by `strategy`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet_runtime::StreamEnv;
    /// use rivulet_runtime::time::WatermarkStrategy;
    ///
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let stamped = env
    ///     .from_vec(vec![(1_000i64, 1u32), (2_000, 2)])
    ///     .assign_timestamps_and_watermarks(
    ///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(i64, u32), _| r.0),
    ///     );
    /// # let _ = stamped;
    /// ```
    #[track_caller]
    pub fn assign_timestamps_and_watermarks(
        &self,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<T> {
        self.transform("Timestamps/Watermarks", move || {
            TimestampsAndWatermarksOperator::new(strategy.clone())
        })
    }

    /// Partitions the stream by the key `key_of` extracts: every record of a key goes to the same
    /// subtask, and keyed operators see state per key.
    ///
    /// The key is hashed through its canonical serde encoding, so any `Serialize` type works.
    pub fn key_by<K, F>(&self, key_of: F) -> KeyedStream<T, K, F>
    where
        K: Data,
        F: Fn(&T) -> K + Clone + Send + 'static,
    {
        let stream = self
            .clone()
            .partition_by_key(TypedKeySelector::new(key_of.clone()));
        KeyedStream::new(stream, key_of)
    }

    /// Connects this stream with another for a two-input operator.
    pub fn connect<U: Data>(&self, other: &DataStream<U>) -> ConnectedStreams<T, U> {
        ConnectedStreams::new(self.clone(), other.clone())
    }

    /// Sends every record to `sink`, cloned per subtask.
    pub fn sink<S>(&self, sink: S) -> DataStreamSink
    where
        S: SinkFunction<T> + Clone,
    {
        self.sink_named("Sink", sink)
    }

    fn sink_named<S>(&self, name: &str, sink: S) -> DataStreamSink
    where
        S: SinkFunction<T> + Clone,
    {
        let stream = self.transform(name, move || SinkOperator {
            sink: sink.clone(),
            _types: PhantomData,
        });
        DataStreamSink { stream }
    }

    /// Collects every record for the caller; read them from the handle after `execute`.
    pub fn collect(&self) -> CollectHandle<T> {
        let handle = CollectHandle::new();
        self.sink_named("Sink: collect", CollectSink::new(handle.clone()));
        handle
    }

    /// Prints every record to standard output.
    pub fn print(&self) -> DataStreamSink
    where
        T: std::fmt::Debug,
    {
        self.sink_named(
            "Sink: print",
            PrintSink {
                prefix: String::new(),
                _types: PhantomData,
            },
        )
    }

    /// Calls `f` for every record (cloned per subtask).
    pub fn for_each<F>(&self, f: F) -> DataStreamSink
    where
        F: FnMut(T) + Clone + Send + 'static,
    {
        self.sink_named("Sink: for_each", ForEachSink { f })
    }
}

/// The end of a stream: a sink operator, which can be named and given a parallelism.
pub struct DataStreamSink {
    stream: Stream<Records<()>>,
}

impl DataStreamSink {
    /// Sets the sink's parallelism.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        DataStreamSink {
            stream: self.stream.set_parallelism(parallelism),
        }
    }

    /// Names the sink.
    pub fn name(self, name: &str) -> Self {
        DataStreamSink {
            stream: self.stream.name(name),
        }
    }

    /// Gives the sink a stable id.
    pub fn uid(self, uid: &str) -> Self {
        DataStreamSink {
            stream: self.stream.uid(uid),
        }
    }

    /// Runs the sink in a task of its own instead of chaining it to its input.
    pub fn start_new_chain(self) -> Self {
        DataStreamSink {
            stream: self.stream.start_new_chain(),
        }
    }
}

/// Files: text files in, exactly-once part files out.
impl StreamEnv {
    /// A bounded source of the lines of text files, one split per file: `paths` are files, or
    /// directories standing for their visible files. Records carry no timestamps. See
    /// [`TextFileSource`](crate::source::TextFileSource).
    ///
    /// ```
    /// use rivulet_runtime::StreamEnv;
    ///
    /// let file = std::env::temp_dir().join(format!("rivulet-doc-read-{}.txt", std::process::id()));
    /// std::fs::write(&file, "a\nb\n").unwrap();
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let lines = env.read_text_files([&file]).collect();
    /// env.execute("read").unwrap();
    /// assert_eq!(lines.take(), vec!["a", "b"]);
    /// std::fs::remove_file(&file).unwrap();
    /// ```
    pub fn read_text_files(
        &self,
        paths: impl IntoIterator<Item = impl Into<std::path::PathBuf>>,
    ) -> DataStream<String> {
        self.from_source(crate::source::TextFileSource::new(paths))
    }
}

impl<T: Data> Stream<Records<T>> {
    /// Writes every record's `Display` as a line into part files in `directory`, exactly once
    /// when the job checkpoints. See [`FileSink`](crate::sink::FileSink), also for a custom
    /// line format.
    ///
    /// ```
    /// use rivulet_runtime::StreamEnv;
    ///
    /// let dir = std::env::temp_dir().join(format!("rivulet-doc-sink-{}", std::process::id()));
    /// let env = StreamEnv::new().with_parallelism(1);
    /// env.from_vec(vec![1, 2]).sink_to_files(&dir);
    /// env.execute("write").unwrap();
    /// assert_eq!(std::fs::read_to_string(dir.join("part-0-0")).unwrap(), "1\n2\n");
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn sink_to_files(&self, directory: impl Into<std::path::PathBuf>) -> DataStreamSink
    where
        T: std::fmt::Display,
    {
        self.sink_named("Sink: files", crate::sink::FileSink::new(directory))
    }
}
