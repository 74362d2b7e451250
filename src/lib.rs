//! rivulet: typed, declarative table pipelines over a stateful, exactly-once streaming runtime.
//!
//! This facade re-exports the three layers:
//! - [`runtime`]: the DataStream API, operators, state, time and the parallel executor.
//! - [`optimizer`]: logical plans, types and the egg-based optimizer.
//! - [`table`]: the Table API.
//!
//! Most programs need only the [`prelude`]:
//!
//! ```
//! use rivulet::prelude::*;
//!
//! let env = StreamEnv::new().with_parallelism(2);
//! let doubled = env.from_vec(vec![1i64, 2, 3]).map(|x| x * 2).collect();
//! env.execute("double").unwrap();
//! assert_eq!(doubled.take_sorted(), vec![2, 4, 6]);
//! ```
//!
//! Table programs use [`table::prelude`] (a `TableEnv`, `Table`s and the expression DSL).
//!
//! The numbered examples in `examples/` are the tutorial: `01_quickstart` (the Table API),
//! `02_word_count` (DataStream API),
//! `03_windows` (event time and windows), `05_checkpoint_restore` (recovery after a process
//! kill).
#![warn(missing_docs)]

pub use rivulet_optimizer as optimizer;
pub use rivulet_runtime as runtime;
pub use rivulet_table as table;

/// The names most programs use.
pub mod prelude {
    pub use rivulet_runtime::checkpoint::{CheckpointConfig, RestartStrategy, SavepointRestore};
    pub use rivulet_runtime::operator::co::{CoProcessFunction, KeyedCoProcessFunction};
    pub use rivulet_runtime::operator::keyed::{Collector, KeyedContext, KeyedProcessFunction};
    pub use rivulet_runtime::source::{Source, SourcePoll, SourceReader};
    pub use rivulet_runtime::state::{
        AggregateFunction, AggregatingState, ListState, MapState, ReducingState, StateTtlConfig,
        ValueState,
    };
    pub use rivulet_runtime::time::{ManualClock, TimeDomain, WatermarkStrategy};
    pub use rivulet_runtime::window::{
        EventTimeSessionWindows, ProcessWindowFunction, SlidingEventTimeWindows, TimeWindow,
        TumblingEventTimeWindows,
    };
    pub use rivulet_runtime::{
        Batch, BoxError, ChangelogBatch, Data, DataStream, JobError, JobGraph, JobResult,
        KeyedStream, Records, RowKind, SinkFunction, Stream, StreamEnv,
    };
}
