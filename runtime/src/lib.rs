//! The runtime layer of rivulet: everything that runs.
//!
//! Jobs are built with the DataStream API on a [`StreamEnv`], turned into a graph of operator
//! chains, and run with one OS thread per parallel subtask. Typed records ([`Records<T>`]) and
//! Arrow batches ([`ChangelogBatch`]) travel the same bounded channels and exchanges, batch at a
//! time. Keyed state is partitioned into key groups by a stable hash of a canonical key encoding.
//!
//! Modules:
//! - [`batch`]: the [`Batch`] abstraction, typed [`Records`] and Arrow [`ChangelogBatch`]es.
//! - [`datastream`]: [`StreamEnv`], [`DataStream`], [`KeyedStream`], connected streams.
//! - [`operator`]: the [`Operator`] trait, the built-in operators, and a test harness.
//! - [`exchange`]: ship strategies and the key-group routing of batches.
//! - [`graph`]: stream graph, operator chaining, [`JobGraph`] description and DOT export.
//! - [`keys`]: canonical key encoding, key hashing and key groups.
//! - [`state`]: keyed state (value, list, map, reducing, aggregating), TTL, batch keyed tables.
//! - [`time`]: processing-time clocks, watermark strategies, timers.
//! - [`window`]: window assigners (tumbling, sliding, session, global), triggers, window
//!   functions, and the window operator that fires from the watermark.
//! - [`checkpoint`]: checkpoint configuration, storage, restart strategies and savepoints.
//! - [`source`]: the [`Source`](source::Source) trait, in-memory, Arrow and text-file sources.
//! - [`sink`]: collect and print sinks, and the two-phase-commit file sink.
//!
//! ```
//! use rivulet_runtime::StreamEnv;
//!
//! let env = StreamEnv::new().with_parallelism(2);
//! let counts = env
//!     .from_vec(vec!["to be or not to be".to_owned()])
//!     .flat_map(|line| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
//!     .map(|word| (word, 1u64))
//!     .key_by(|(word, _)| word.clone())
//!     .sum(|pair| &mut pair.1)
//!     .collect();
//! env.execute("word count").unwrap();
//! let mut finals = std::collections::BTreeMap::new();
//! for (word, n) in counts.take() {
//!     let entry = finals.entry(word).or_insert(0);
//!     *entry = n.max(*entry);
//! }
//! assert_eq!(finals["to"], 2);
//! assert_eq!(finals["or"], 1);
//! ```
#![warn(missing_docs)]

pub mod batch;
mod channel;
pub mod checkpoint;
pub mod datastream;
mod error;
pub mod exchange;
mod executor;
pub mod graph;
pub mod keys;
mod message;
pub mod operator;
pub mod relational;
pub mod sink;
pub mod source;
pub mod state;
pub mod time;
pub mod window;

pub use batch::arrow::{ChangelogBatch, ChangelogError, RowKind};
pub use batch::{Batch, BatchBuffer, Data, NO_TIMESTAMP, Records};
pub use datastream::{DataStream, DataStreamSink, KeyedStream, Stream, StreamEnv};
pub use error::{BoxError, GraphError, JobError, TaskError};
pub use executor::{JobHandle, JobResult, OperatorStats};
pub use graph::JobGraph;
pub use message::{Barrier, Message};
pub use operator::typed::SinkFunction;
pub use operator::{Operator, OperatorContext, Output, TwoInputOperator};
