//! The Table API of rivulet: typed, declarative table pipelines.
//!
//! A [`TableEnv`] over a [`StreamEnv`](rivulet_runtime::StreamEnv) holds a catalog of named
//! tables. A [`Table`] is an immutable, cheaply cloned logical plan; every operation validates
//! its expressions at once and returns a typed [`PlanError`] naming the operation, so a mistake
//! fails where it was written. Running a table lowers its plan into runtime operators.
//!
//! ```
//! use rivulet_table::prelude::*;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { customer: String, amount: i64 }
//!
//! let env = TableEnv::batch(StreamEnv::new().with_parallelism(2));
//! let orders = env.from_records(vec![
//!     Order { customer: "ada".into(), amount: 30 },
//!     Order { customer: "bob".into(), amount: 5 },
//!     Order { customer: "ada".into(), amount: 12 },
//! ])?;
//! let big = orders.filter(col("amount").gt(lit(10)))?.select([col("customer"), col("amount")])?;
//! let rows = big.order_by([col("amount").desc()])?.collect()?;
//! assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod convert;
mod dsl;
mod env;
mod error;
mod sources;
mod statement;
mod table;

pub use dsl::*;
pub use env::{ChangelogFormat, TableConfig, TableEnv};
pub use error::TableError;
pub use rivulet_optimizer::PlanError;
pub use rivulet_optimizer::plan::{JoinKind, KeepRow, OverWindow};
pub use rivulet_runtime::relational::WindowTvf;
pub use statement::{StatementSet, TableSinkTarget};
pub use table::{GroupedTable, Table, TimeBounds};

/// The names most table programs use.
pub mod prelude {
    pub use crate::dsl::*;
    pub use crate::{
        ChangelogFormat, GroupedTable, JoinKind, KeepRow, OverWindow, PlanError, StatementSet,
        Table, TableConfig, TableEnv, TableError, TableSinkTarget, TimeBounds, WindowTvf,
    };
    pub use rivulet_optimizer::{ChangelogMode, Expr};
    pub use rivulet_runtime::relational::BadDataPolicy;
    pub use rivulet_runtime::{ChangelogBatch, RowKind, StreamEnv};
}

pub use convert::{
    ConvertError, fields_of, fields_of_with_timestamps, from_record_batch, to_record_batch,
};
