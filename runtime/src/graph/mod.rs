//! Job graphs: the StreamGraph a program builds, and the JobGraph of operator chains it runs as.
//!
//! The [`StreamGraph`](self) has one node per operator and one edge per connection with its ship
//! strategy. At execution it becomes a [`JobGraph`]: forward edges between operators of equal
//! parallelism are chained, so each chain runs as one task on one thread per subtask. Node
//! factories are type-erased here and typed again when a subtask is built, which is how one
//! executor runs typed and Arrow operators alike.

mod job;

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

pub use job::{JobGraph, JobVertex};

use crate::batch::Batch;
use crate::channel::{CancelFlag, Inbox, Wake};
use crate::error::BoxError;
use crate::error::JobError;
use crate::exchange::{BatchKeySelector, ExchangeWriter, Routing, ShipStrategy};
use crate::executor::task::{OneInputTask, PayloadCodec, TaskBody};
use crate::operator::chain::{Chained, Discard, FanOut, OneInput, Runtime, TwoInput};
use crate::operator::{Operator, OperatorContext, Output, TwoInputOperator};

/// A type-erased `Arc<Inbox<C>>`.
pub(crate) type AnyInbox = Arc<dyn Any + Send + Sync>;
/// A type-erased `Box<dyn Output<B>>`.
pub(crate) type AnyOutput = Box<dyn Any + Send>;

/// The identifier of an operator in its job.
pub type NodeId = usize;

/// What a node needs from the executor to build one subtask.
pub(crate) struct BuildContext {
    pub(crate) operator: OperatorContext,
    pub(crate) runtime: Runtime,
    /// Records per batch a source should produce.
    pub(crate) batch_size: usize,
    /// On restore, for a source: the split blobs every subtask of the source checkpointed.
    pub(crate) restored_splits: Option<Vec<Vec<u8>>>,
}

/// Operations on a node's output type, for the executor to combine outputs without knowing it.
pub(crate) trait OutputOps: Send {
    fn discard(&self) -> AnyOutput;
    fn fan_out(&self, outputs: Vec<AnyOutput>) -> AnyOutput;
}

pub(crate) struct OutputOpsOf<B>(PhantomData<fn() -> B>);

impl<B> OutputOpsOf<B> {
    pub(crate) fn boxed() -> Box<dyn OutputOps>
    where
        B: Batch,
    {
        Box::new(OutputOpsOf::<B>(PhantomData))
    }
}

pub(crate) fn downcast_output<B: 'static>(out: AnyOutput) -> Box<dyn Output<B>> {
    *out.downcast::<Box<dyn Output<B>>>()
        .unwrap_or_else(|_| unreachable!("the stream graph connects outputs of matching types"))
}

pub(crate) fn downcast_inbox<C: Send + 'static>(inbox: &AnyInbox) -> Arc<Inbox<C>> {
    Arc::clone(inbox)
        .downcast::<Inbox<C>>()
        .unwrap_or_else(|_| unreachable!("the stream graph connects inboxes of matching types"))
}

impl<B: Batch> OutputOps for OutputOpsOf<B> {
    fn discard(&self) -> AnyOutput {
        Box::new(Box::new(Discard) as Box<dyn Output<B>>)
    }

    fn fan_out(&self, outputs: Vec<AnyOutput>) -> AnyOutput {
        let outputs = outputs.into_iter().map(downcast_output::<B>).collect();
        Box::new(Box::new(FanOut { outputs }) as Box<dyn Output<B>>)
    }
}

/// A source operator: builds one subtask's source task around its chain.
pub(crate) trait SourceNode: Send {
    fn build(&self, ctx: BuildContext, out: AnyOutput) -> Result<Box<dyn TaskBody>, JobError>;
    /// The largest parallelism the source supports (e.g. 1 for a non-parallel source).
    fn max_parallelism(&self) -> Option<usize>;
}

/// A one-input operator: chainable behind its predecessor or the head of a task.
pub(crate) trait OneInputNode: Send {
    fn new_inbox(
        &self,
        channels: usize,
        capacity: usize,
        cancel: Arc<CancelFlag>,
    ) -> (AnyInbox, Arc<dyn Wake>);
    /// Wraps a new instance of the operator around `out` (a `Box<dyn Output<Out>>`); returns a
    /// `Box<dyn Output<In>>`.
    fn chain(&self, ctx: BuildContext, out: AnyOutput) -> AnyOutput;
    /// The task that feeds `inbox` into `chain` (a `Box<dyn Output<In>>`); `head` is the
    /// operator subtask heading it.
    fn head(&self, inbox: &AnyInbox, chain: AnyOutput, head: (NodeId, usize)) -> Box<dyn TaskBody>;
    /// Queues restored in-flight data (see [`preload_in_flight`]) into `inbox`.
    fn preload(&self, inbox: &AnyInbox, in_flight: &[(usize, Vec<u8>)]) -> Result<(), BoxError>;
}

/// A two-input operator, always the head of its task.
pub(crate) trait TwoInputNode: Send {
    fn new_inbox(
        &self,
        channels: usize,
        capacity: usize,
        cancel: Arc<CancelFlag>,
    ) -> (AnyInbox, Arc<dyn Wake>);
    fn head(&self, ctx: BuildContext, inbox: &AnyInbox, out: AnyOutput) -> Box<dyn TaskBody>;
    /// Queues restored in-flight data (see [`preload_in_flight`]) into `inbox`.
    fn preload(&self, inbox: &AnyInbox, in_flight: &[(usize, Vec<u8>)]) -> Result<(), BoxError>;
}

/// Decodes the in-flight data of an unaligned checkpoint and queues each batch on the input
/// channel it was read from, ahead of any new input.
fn preload_in_flight<C: Send + 'static>(
    inbox: &AnyInbox,
    codec: PayloadCodec<C>,
    in_flight: &[(usize, Vec<u8>)],
) -> Result<(), BoxError> {
    let inbox = downcast_inbox::<C>(inbox);
    let channels = inbox.channels();
    for (channel, bytes) in in_flight {
        if *channel >= channels {
            return Err(format!(
                "the checkpoint holds in-flight data of input channel {channel}, but the task has {channels}; restore it at the parallelism that took it"
            )
            .into());
        }
        inbox.preload(*channel, (codec.decode)(bytes)?);
    }
    Ok(())
}

/// The payload of a two-input operator's channels: a batch tagged with its input.
#[derive(Debug)]
pub(crate) enum TwoInputs<A, B> {
    First(A),
    Second(B),
}

/// Builds the writer side of one edge for one upstream subtask.
pub(crate) trait EdgeFactory: Send {
    /// A `Box<dyn Output<B>>` writing into `targets` (each an `Inbox<C>`) as channel `channel`.
    fn writer(
        &self,
        targets: Vec<AnyInbox>,
        channel: usize,
        strategy: ShipStrategy,
        max_parallelism: u16,
        batch_size: usize,
    ) -> AnyOutput;
}

/// The edge factory for batches `B` arriving as channel payload `C`.
pub(crate) struct TypedEdge<B: Batch, C> {
    pub(crate) wrap: fn(B) -> C,
    pub(crate) selector: Option<Box<dyn BatchKeySelector<B>>>,
}

impl<B: Batch, C: Send + 'static> EdgeFactory for TypedEdge<B, C> {
    fn writer(
        &self,
        targets: Vec<AnyInbox>,
        channel: usize,
        strategy: ShipStrategy,
        max_parallelism: u16,
        batch_size: usize,
    ) -> AnyOutput {
        let targets: Vec<Arc<Inbox<C>>> = targets.iter().map(downcast_inbox::<C>).collect();
        let routing = match strategy {
            ShipStrategy::Forward | ShipStrategy::Global => Routing::Single,
            ShipStrategy::Rebalance => Routing::Rebalance {
                next: channel % targets.len(),
            },
            ShipStrategy::Broadcast => Routing::Broadcast,
            // With one consumer every key lands on it: no need to compute key groups.
            ShipStrategy::Hash if targets.len() == 1 => Routing::Single,
            ShipStrategy::Hash => {
                let selector = self
                    .selector
                    .as_ref()
                    .map(|s| s.box_clone())
                    .unwrap_or_else(|| unreachable!("a hash edge always has a key selector"));
                Routing::hash(selector, max_parallelism, targets.len())
            }
        };
        let writer = ExchangeWriter::new(targets, channel, self.wrap, routing, batch_size);
        Box::new(Box::new(writer) as Box<dyn Output<B>>)
    }
}

/// A one-input operator built per subtask by a factory.
pub(crate) struct OperatorNode<O: Operator> {
    pub(crate) make: Box<dyn Fn() -> O + Send>,
}

impl<O: Operator> OneInputNode for OperatorNode<O> {
    fn new_inbox(
        &self,
        channels: usize,
        capacity: usize,
        cancel: Arc<CancelFlag>,
    ) -> (AnyInbox, Arc<dyn Wake>) {
        let inbox = Arc::new(Inbox::<O::In>::new(channels, capacity, cancel));
        (inbox.clone(), inbox)
    }

    fn chain(&self, ctx: BuildContext, out: AnyOutput) -> AnyOutput {
        let out = downcast_output::<O::Out>(out);
        let chained = Chained::new(OneInput((self.make)()), ctx.operator, out, ctx.runtime);
        Box::new(Box::new(chained) as Box<dyn Output<O::In>>)
    }

    fn head(&self, inbox: &AnyInbox, chain: AnyOutput, head: (NodeId, usize)) -> Box<dyn TaskBody> {
        Box::new(OneInputTask {
            inbox: downcast_inbox::<O::In>(inbox),
            chain: downcast_output::<O::In>(chain),
            codec: PayloadCodec::of_batch(),
            head,
        })
    }

    fn preload(&self, inbox: &AnyInbox, in_flight: &[(usize, Vec<u8>)]) -> Result<(), BoxError> {
        preload_in_flight(inbox, PayloadCodec::<O::In>::of_batch(), in_flight)
    }
}

/// A two-input operator built per subtask by a factory.
pub(crate) struct TwoInputOperatorNode<O: TwoInputOperator> {
    pub(crate) make: Box<dyn Fn() -> O + Send>,
}

impl<O: TwoInputOperator> TwoInputNode for TwoInputOperatorNode<O> {
    fn new_inbox(
        &self,
        channels: usize,
        capacity: usize,
        cancel: Arc<CancelFlag>,
    ) -> (AnyInbox, Arc<dyn Wake>) {
        let inbox = Arc::new(Inbox::<TwoInputs<O::In1, O::In2>>::new(
            channels, capacity, cancel,
        ));
        (inbox.clone(), inbox)
    }

    fn head(&self, ctx: BuildContext, inbox: &AnyInbox, out: AnyOutput) -> Box<dyn TaskBody> {
        let out = downcast_output::<O::Out>(out);
        let head = (ctx.runtime.node, ctx.operator.subtask);
        Box::new(OneInputTask {
            inbox: downcast_inbox::<TwoInputs<O::In1, O::In2>>(inbox),
            chain: Box::new(Chained::new(
                TwoInput((self.make)()),
                ctx.operator,
                out,
                ctx.runtime,
            )),
            codec: PayloadCodec::of_two_inputs(),
            head,
        })
    }

    fn preload(&self, inbox: &AnyInbox, in_flight: &[(usize, Vec<u8>)]) -> Result<(), BoxError> {
        preload_in_flight(
            inbox,
            PayloadCodec::<TwoInputs<O::In1, O::In2>>::of_two_inputs(),
            in_flight,
        )
    }
}

/// How a node processes its input.
pub(crate) enum NodeKind {
    Source(Box<dyn SourceNode>),
    OneInput(Box<dyn OneInputNode>),
    TwoInput(Box<dyn TwoInputNode>),
}

/// One operator of a stream graph.
pub(crate) struct StreamNode {
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
    /// `None`: the environment's default parallelism.
    pub(crate) parallelism: Option<usize>,
    pub(crate) kind: NodeKind,
    pub(crate) output: Box<dyn OutputOps>,
    /// Whether this operator may be chained to its predecessor.
    pub(crate) chainable: bool,
}

/// One connection between two operators.
pub(crate) struct StreamEdge {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    /// `None`: forward when both sides have equal parallelism, rebalance otherwise.
    pub(crate) strategy: Option<ShipStrategy>,
    pub(crate) factory: Box<dyn EdgeFactory>,
}

/// The operators and connections a program declared, in creation order (a topological order).
#[derive(Default)]
pub(crate) struct StreamGraph {
    pub(crate) nodes: Vec<StreamNode>,
    pub(crate) edges: Vec<StreamEdge>,
}

impl StreamGraph {
    pub(crate) fn add_node(&mut self, node: StreamNode) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub(crate) fn add_edge(&mut self, edge: StreamEdge) {
        self.edges.push(edge);
    }
}
