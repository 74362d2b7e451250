//! [`Table`]: an immutable relational pipeline, and its operations.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, SchemaRef};
use rivulet_optimizer::changelog::{changelog_mode, updating_producer};
use rivulet_optimizer::physical::{PhysicalPlanner, PlannerConfig, bounded};
use rivulet_optimizer::plan::{JoinKind, KeepRow, LogicalPlan, OverWindow, Scan, SetOpKind};
use rivulet_optimizer::source::TableUdfRef;
use rivulet_optimizer::{ChangelogMode, Column, Expr, PlanError, PlanSchema, SortExpr, builder};
use rivulet_runtime::relational::WindowTvf;
use rivulet_runtime::relational::changelog::consolidate;
use rivulet_runtime::{
    ChangelogBatch, Data, DataStream, Operator, Output, Records, RowKind, Stream, TaskError,
};
use serde::de::DeserializeOwned;

use crate::convert;
use crate::env::TableEnv;
use crate::error::TableError;
use crate::sources::Declared;

/// A relational pipeline: an immutable logical plan in a [`TableEnv`]. Cheap to clone.
///
/// Every operation checks its expressions against the input's columns and returns a
/// [`PlanError`] that names the operation (`select`, `filter`, `join`, ...).
#[derive(Clone)]
pub struct Table {
    env: TableEnv,
    plan: Arc<LogicalPlan>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("schema", &self.plan.schema().to_string())
            .finish()
    }
}

fn exprs(items: impl IntoIterator<Item = impl Into<Expr>>) -> Vec<Expr> {
    items.into_iter().map(Into::into).collect()
}

fn not_a_source(operation: &str) -> PlanError {
    PlanError::invalid(
        operation,
        "declare it on a table read straight from a source (from_records, from_data_stream, from_changelog_stream, read_csv, read_parquet, a registered source), before any other operation",
    )
}

fn column_of(schema: &PlanSchema, index: usize) -> Expr {
    let f = schema.field(index);
    Expr::Column(Column {
        relation: f.qualifier.as_deref().map(str::to_owned),
        name: f.name.clone(),
    })
}

impl Table {
    pub(crate) fn new(env: TableEnv, plan: Arc<LogicalPlan>) -> Self {
        Table { env, plan }
    }

    fn derive(&self, plan: LogicalPlan) -> Table {
        Table::new(self.env.clone(), Arc::new(plan))
    }

    /// The logical plan.
    pub fn plan(&self) -> &Arc<LogicalPlan> {
        &self.plan
    }

    /// The environment.
    pub fn env(&self) -> &TableEnv {
        &self.env
    }

    /// The output columns.
    pub fn schema(&self) -> &PlanSchema {
        self.plan.schema()
    }

    /// The row kinds the table's changelog may contain.
    pub fn changelog_mode(&self) -> ChangelogMode {
        changelog_mode(&self.plan, self.env.is_batch())
    }

    /// Declares the primary key of a table read straight from a source: the columns whose
    /// values identify a row (not enforced, as in Flink). Keys let an updating query write into
    /// an upsert sink keyed on them, and a changelog source in upsert form is keyed by them.
    ///
    /// # Errors
    /// An unknown column (with the closest name), or a table that is not a source's.
    pub fn with_primary_key<'a>(
        &self,
        columns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Table, PlanError> {
        let names: Vec<&str> = columns.into_iter().collect();
        self.redeclare("with_primary_key", |declared, schema| {
            let key = names
                .iter()
                .map(|n| schema.index_of(&Column::new(*n), "with_primary_key"))
                .collect::<Result<Vec<_>, _>>()?;
            if key.is_empty() {
                return Err(PlanError::invalid(
                    "with_primary_key",
                    "a primary key needs at least one column",
                ));
            }
            declared.primary_key = Some(key);
            Ok(())
        })
    }

    /// Declares `column` the event-time attribute of a table read straight from a source, with
    /// watermarks trailing the largest time seen by `out_of_orderness` (as
    /// `WATERMARK FOR column AS column - INTERVAL ..`). Rows up to that far behind are on time
    /// for the event-time operators downstream; the end of a bounded input closes every window.
    /// A `BIGINT` column of epoch milliseconds (an `i64` field of typed records) is read as
    /// `TIMESTAMP(3)` from then on.
    ///
    /// # Errors
    /// An unknown column (with the closest name), a column of another type, or a table that is
    /// not a source's.
    pub fn with_watermark(
        &self,
        column: &str,
        out_of_orderness: std::time::Duration,
    ) -> Result<Table, PlanError> {
        self.redeclare("with_watermark", |declared, schema| {
            let index = schema.index_of(&Column::new(column), "with_watermark")?;
            let field = schema.field(index);
            match field.data_type {
                arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Millisecond,
                    _,
                ) => {}
                arrow::datatypes::DataType::Int64 => declared.retimed = Some(index),
                _ => {
                    return Err(PlanError::WrongType {
                        operation: "with_watermark".into(),
                        expr: column.to_owned(),
                        expected: "TIMESTAMP(3), or BIGINT epoch milliseconds".into(),
                        found: field.data_type.clone(),
                    });
                }
            }
            declared.event_time = Some(rivulet_optimizer::EventTimeSpec {
                column: index,
                out_of_orderness_ms: i64::try_from(out_of_orderness.as_millis())
                    .unwrap_or(i64::MAX),
            });
            Ok(())
        })
    }

    /// The same source table with a declaration changed by `declare`.
    fn redeclare(
        &self,
        operation: &str,
        declare: impl FnOnce(&mut Declared, &PlanSchema) -> Result<(), PlanError>,
    ) -> Result<Table, PlanError> {
        let rebuild = |scan: &Scan| -> Result<LogicalPlan, PlanError> {
            let mut declared = Declared::of(&scan.source);
            declare(&mut declared, &scan.schema)?;
            Ok(builder::scan(&scan.table, Arc::new(declared)))
        };
        match self.plan.as_ref() {
            LogicalPlan::Scan(scan) if scan.projection.is_none() => Ok(self.derive(rebuild(scan)?)),
            LogicalPlan::SubqueryAlias(alias) => match alias.input.as_ref() {
                LogicalPlan::Scan(scan) if scan.projection.is_none() => {
                    Ok(self.derive(builder::alias(Arc::new(rebuild(scan)?), &alias.alias)))
                }
                _ => Err(not_a_source(operation)),
            },
            _ => Err(not_a_source(operation)),
        }
    }

    fn check_env(&self, other: &Table, operation: &str) -> Result<(), PlanError> {
        if self.env.same(&other.env) {
            Ok(())
        } else {
            Err(PlanError::invalid(
                operation,
                "the tables belong to different table environments; build both in one",
            ))
        }
    }

    /// `SELECT exprs`: computed columns; aggregates make it a global aggregation.
    pub fn select(
        &self,
        exprs_: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::project(
            Arc::clone(&self.plan),
            exprs(exprs_),
            "select",
        )?))
    }

    /// `WHERE predicate`: the rows where it holds (null counts as false). Subqueries
    /// (`exists`, `in_table`, scalar subqueries) become joins.
    pub fn filter(&self, predicate: impl Into<Expr>) -> Result<Table, PlanError> {
        Ok(self.derive(builder::filter(
            Arc::clone(&self.plan),
            predicate.into(),
            "filter",
        )?))
    }

    /// Adds computed columns after the existing ones.
    pub fn add_columns(
        &self,
        new: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        let schema = self.schema();
        let mut all: Vec<Expr> = (0..schema.len()).map(|i| column_of(schema, i)).collect();
        all.extend(exprs(new));
        Ok(self.derive(builder::project(
            Arc::clone(&self.plan),
            all,
            "add_columns",
        )?))
    }

    /// Adds computed columns, replacing existing columns of the same name in place.
    pub fn add_or_replace_columns(
        &self,
        new: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        let schema = self.schema();
        let mut all: Vec<Expr> = (0..schema.len()).map(|i| column_of(schema, i)).collect();
        for e in exprs(new) {
            let name = e.output_name();
            match schema.fields().iter().position(|f| f.name == name) {
                Some(i) => all[i] = e.alias(name),
                None => all.push(e),
            }
        }
        Ok(self.derive(builder::project(
            Arc::clone(&self.plan),
            all,
            "add_or_replace_columns",
        )?))
    }

    /// Removes the named columns.
    pub fn drop_columns<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Table, PlanError> {
        let schema = self.schema();
        let mut drop = Vec::new();
        for name in names {
            drop.push(schema.index_of(&Column::new(name), "drop_columns")?);
        }
        let keep: Vec<Expr> = (0..schema.len())
            .filter(|i| !drop.contains(i))
            .map(|i| column_of(schema, i))
            .collect();
        Ok(self.derive(builder::project(
            Arc::clone(&self.plan),
            keep,
            "drop_columns",
        )?))
    }

    /// Renames columns: `(old, new)` pairs.
    pub fn rename_columns<'a>(
        &self,
        renames: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Table, PlanError> {
        let schema = self.schema();
        let mut all: Vec<Expr> = (0..schema.len()).map(|i| column_of(schema, i)).collect();
        for (old, new) in renames {
            let i = schema.index_of(&Column::new(old), "rename_columns")?;
            all[i] = column_of(schema, i).alias(new);
        }
        Ok(self.derive(builder::project(
            Arc::clone(&self.plan),
            all,
            "rename_columns",
        )?))
    }

    /// Qualifies every column by `alias`, so `col("alias.name")` refers to it (for self-joins).
    pub fn alias(&self, alias: &str) -> Table {
        self.derive(builder::alias(Arc::clone(&self.plan), alias))
    }

    /// `SELECT DISTINCT *`.
    pub fn distinct(&self) -> Table {
        self.derive(builder::distinct(Arc::clone(&self.plan)))
    }

    /// Groups rows by `keys`; aggregate the groups with [`GroupedTable::aggregate`] or
    /// [`GroupedTable::select`].
    pub fn group_by(&self, keys: impl IntoIterator<Item = impl Into<Expr>>) -> GroupedTable {
        GroupedTable {
            table: self.clone(),
            keys: exprs(keys),
        }
    }

    /// One global group: `aggregates` over all rows.
    pub fn aggregate(
        &self,
        aggregates: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        self.group_by(Vec::<Expr>::new()).aggregate(aggregates)
    }

    fn join_kind(
        &self,
        other: &Table,
        kind: JoinKind,
        on: Option<Expr>,
        operation: &str,
    ) -> Result<Table, PlanError> {
        self.check_env(other, operation)?;
        Ok(self.derive(builder::join(
            Arc::clone(&self.plan),
            Arc::clone(&other.plan),
            kind,
            on,
            operation,
        )?))
    }

    /// Inner join on `condition` (equalities become hash keys, the rest a filter).
    pub fn join(&self, other: &Table, condition: impl Into<Expr>) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Inner, Some(condition.into()), "join")
    }

    /// Left outer join: unmatched left rows padded with nulls.
    pub fn left_join(&self, other: &Table, condition: impl Into<Expr>) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Left, Some(condition.into()), "left_join")
    }

    /// Right outer join: unmatched right rows padded with nulls.
    pub fn right_join(
        &self,
        other: &Table,
        condition: impl Into<Expr>,
    ) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Right, Some(condition.into()), "right_join")
    }

    /// Full outer join.
    pub fn full_join(&self, other: &Table, condition: impl Into<Expr>) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Full, Some(condition.into()), "full_join")
    }

    /// Left rows with at least one match (`WHERE EXISTS`).
    pub fn semi_join(&self, other: &Table, condition: impl Into<Expr>) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Semi, Some(condition.into()), "semi_join")
    }

    /// Left rows without a match (`WHERE NOT EXISTS`).
    pub fn anti_join(&self, other: &Table, condition: impl Into<Expr>) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Anti, Some(condition.into()), "anti_join")
    }

    /// Every pair of rows.
    pub fn cross_join(&self, other: &Table) -> Result<Table, PlanError> {
        self.join_kind(other, JoinKind::Inner, None, "cross_join")
    }

    /// `UNION ALL`: the rows of both.
    pub fn union_all(&self, other: &Table) -> Result<Table, PlanError> {
        self.check_env(other, "union_all")?;
        Ok(self.derive(builder::union(
            vec![Arc::clone(&self.plan), Arc::clone(&other.plan)],
            "union_all",
        )?))
    }

    /// `UNION`: the distinct rows of both.
    pub fn union(&self, other: &Table) -> Result<Table, PlanError> {
        Ok(self.union_all(other)?.distinct())
    }

    fn set_op(
        &self,
        other: &Table,
        kind: SetOpKind,
        all: bool,
        operation: &str,
    ) -> Result<Table, PlanError> {
        self.check_env(other, operation)?;
        Ok(self.derive(builder::set_operation(
            Arc::clone(&self.plan),
            Arc::clone(&other.plan),
            kind,
            all,
            operation,
        )?))
    }

    /// `INTERSECT`: distinct rows in both.
    pub fn intersect(&self, other: &Table) -> Result<Table, PlanError> {
        self.set_op(other, SetOpKind::Intersect, false, "intersect")
    }

    /// `INTERSECT ALL`: rows in both, as often as in the one with fewer copies.
    pub fn intersect_all(&self, other: &Table) -> Result<Table, PlanError> {
        self.set_op(other, SetOpKind::Intersect, true, "intersect_all")
    }

    /// `EXCEPT`: distinct rows of this table not in `other`.
    pub fn except(&self, other: &Table) -> Result<Table, PlanError> {
        self.set_op(other, SetOpKind::Except, false, "except")
    }

    /// `EXCEPT ALL`: rows of this table, minus as many copies as `other` has.
    pub fn except_all(&self, other: &Table) -> Result<Table, PlanError> {
        self.set_op(other, SetOpKind::Except, true, "except_all")
    }

    /// `ORDER BY keys` (bounded input only).
    pub fn order_by(&self, keys: impl IntoIterator<Item = SortExpr>) -> Result<Table, PlanError> {
        Ok(self.derive(builder::sort(
            Arc::clone(&self.plan),
            keys.into_iter().collect(),
            "order_by",
        )?))
    }

    /// `FETCH FIRST n ROWS`.
    pub fn limit(&self, n: usize) -> Table {
        self.derive(builder::limit(Arc::clone(&self.plan), 0, Some(n)))
    }

    /// `OFFSET n ROWS`; combine with [`Table::limit`] for a page.
    pub fn offset(&self, n: usize) -> Table {
        self.derive(builder::limit(Arc::clone(&self.plan), n, None))
    }

    /// Joins each row with the rows `function(args)` produces for it; rows producing nothing
    /// vanish. `names` renames the function's columns.
    pub fn lateral_join(
        &self,
        function: TableUdfRef,
        args: impl IntoIterator<Item = impl Into<Expr>>,
        names: Option<Vec<String>>,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::correlate(
            Arc::clone(&self.plan),
            function,
            exprs(args),
            JoinKind::Inner,
            names,
            "lateral_join",
        )?))
    }

    /// A window table function over the event-time column `time` (see [`tumble`](crate::tumble),
    /// [`hop`](crate::hop), [`cumulate`](crate::cumulate), [`session`](crate::session)): each
    /// row with the `window_start`, `window_end` and `window_time` of its windows (one row per
    /// window for HOP and CUMULATE). Grouping the result by `window_start`, `window_end` (and
    /// other keys) is a window aggregation: one final, insert-only row per key and window once
    /// the watermark passes the window's end, its state freed then. `window_time` is a time
    /// attribute, so windows cascade. A SESSION window is only valid under such a grouping.
    ///
    /// # Errors
    /// A `time` that is not an event-time attribute, an updating input, or invalid durations.
    pub fn window(&self, time: impl Into<Expr>, window: WindowTvf) -> Result<Table, PlanError> {
        Ok(self.derive(builder::window_table(
            Arc::clone(&self.plan),
            time.into(),
            window,
            "window",
        )?))
    }

    /// Top-N: the first `n` rows of each partition in `order` (`ROW_NUMBER() OVER (PARTITION BY
    /// .. ORDER BY ..) <= n`), ties kept in arrival order. In streaming mode the result is
    /// updating: rows leave the top as better ones arrive. Without a row-number column only
    /// rows entering or leaving the top are emitted (Flink's cheaper variant); see
    /// [`Table::top_n_with_row_number`].
    ///
    /// # Errors
    /// A key that is not a column of the table, an empty order, or `n` of 0.
    pub fn top_n(
        &self,
        partition_by: impl IntoIterator<Item = impl Into<Expr>>,
        order: impl IntoIterator<Item = SortExpr>,
        n: u64,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::top_n(
            Arc::clone(&self.plan),
            exprs(partition_by),
            order.into_iter().collect(),
            n,
            None,
            "top_n",
        )?))
    }

    /// As [`Table::top_n`], with each row's number in its partition (1 to `n`) as the last
    /// column, named `row_number`; a row whose number changes is retracted and emitted again.
    pub fn top_n_with_row_number(
        &self,
        partition_by: impl IntoIterator<Item = impl Into<Expr>>,
        order: impl IntoIterator<Item = SortExpr>,
        n: u64,
        row_number: &str,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::top_n(
            Arc::clone(&self.plan),
            exprs(partition_by),
            order.into_iter().collect(),
            n,
            Some(row_number),
            "top_n_with_row_number",
        )?))
    }

    /// Deduplication: one row per `keys`, the first or the last, by arrival (`time` `None`,
    /// processing time) or by the event-time column `time`. Keep-first is insert-only (by event
    /// time each key's row is emitted once the watermark passes it); keep-last updates the
    /// key's row as later rows arrive.
    ///
    /// # Errors
    /// An updating input, a key that is not a column, or a `time` that is not an event-time
    /// attribute.
    pub fn deduplicate(
        &self,
        keys: impl IntoIterator<Item = impl Into<Expr>>,
        keep: KeepRow,
        time: Option<Expr>,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::deduplicate(
            Arc::clone(&self.plan),
            exprs(keys),
            keep,
            time,
            "deduplicate",
        )?))
    }

    /// OVER aggregation: each row with `aggregates` over the rows of its partition up to it in
    /// event-time order, within `frame` (`ROWS`/`RANGE .. PRECEDING AND CURRENT ROW`). Rows are
    /// emitted, insert-only, once the watermark passes them; late rows are dropped and counted.
    ///
    /// # Errors
    /// An updating input, a `time` that is not an event-time attribute, or an argument that is
    /// not an aggregate.
    pub fn over(
        &self,
        partition_by: impl IntoIterator<Item = impl Into<Expr>>,
        time: impl Into<Expr>,
        frame: OverWindow,
        aggregates: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::over_aggregate(
            Arc::clone(&self.plan),
            exprs(partition_by),
            time.into(),
            frame,
            exprs(aggregates),
            "over",
        )?))
    }

    /// An interval join: rows of both tables equal on the `condition`'s equalities whose
    /// event times satisfy `bounds` (`right_time + lower <= left_time <= right_time + upper`).
    /// Both tables must be insert-only, and so is the result; state is freed as the watermark
    /// passes the interval. `kind` is inner, left, right or full (an outer row is emitted
    /// padded once the watermark shows it can no longer match).
    ///
    /// # Errors
    /// An updating input, a time column that is not an event-time attribute, a condition with
    /// no equality between the tables, or an empty interval.
    pub fn interval_join(
        &self,
        other: &Table,
        kind: JoinKind,
        condition: impl Into<Expr>,
        bounds: TimeBounds,
    ) -> Result<Table, PlanError> {
        self.check_env(other, "interval_join")?;
        Ok(self.derive(builder::interval_join(
            Arc::clone(&self.plan),
            Arc::clone(&other.plan),
            kind,
            condition.into(),
            bounds.left_time,
            bounds.right_time,
            bounds.lower_ms,
            bounds.upper_ms,
            "interval_join",
        )?))
    }

    /// `CROSS JOIN UNNEST(array) AS t(names)`: each row joined with each element of its array
    /// (`LIST`) column, named `names[0]`, or each entry of a map column, named `names[0]` and
    /// `names[1]`; without names they are `value` (and `key`, `value`). A null or empty array
    /// drops the row.
    ///
    /// # Errors
    /// An argument that is not an array or a map, or a name that repeats a column's.
    pub fn unnest<'a>(
        &self,
        array: impl Into<Expr>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Table, PlanError> {
        self.unnest_with(array.into(), names, JoinKind::Inner, "unnest")
    }

    /// As [`Table::unnest`], but a row whose array is null or empty is kept once, with nulls
    /// (`LEFT JOIN UNNEST(..) ON TRUE`).
    pub fn left_unnest<'a>(
        &self,
        array: impl Into<Expr>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Table, PlanError> {
        self.unnest_with(array.into(), names, JoinKind::Left, "left_unnest")
    }

    fn unnest_with<'a>(
        &self,
        array: Expr,
        names: impl IntoIterator<Item = &'a str>,
        kind: JoinKind,
        operation: &str,
    ) -> Result<Table, PlanError> {
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        Ok(self.derive(builder::correlate(
            Arc::clone(&self.plan),
            rivulet_runtime::relational::unnest::unnest(),
            vec![array],
            kind,
            (!names.is_empty()).then_some(names),
            operation,
        )?))
    }

    /// As [`Table::lateral_join`], but rows producing nothing are kept once with nulls.
    pub fn left_lateral_join(
        &self,
        function: TableUdfRef,
        args: impl IntoIterator<Item = impl Into<Expr>>,
        names: Option<Vec<String>>,
    ) -> Result<Table, PlanError> {
        Ok(self.derive(builder::correlate(
            Arc::clone(&self.plan),
            function,
            exprs(args),
            JoinKind::Left,
            names,
            "left_lateral_join",
        )?))
    }

    /// Replaces each row by the rows `function(args)` produces for it (only the function's
    /// columns).
    pub fn flat_map(
        &self,
        function: TableUdfRef,
        args: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        let joined = self.lateral_join(function, args, None)?;
        let width = self.schema().len();
        let schema = joined.schema();
        let produced: Vec<Expr> = (width..schema.len())
            .map(|i| column_of(schema, i))
            .collect();
        joined.select(produced)
    }

    /// The plan as text, in deterministic sections: the logical plan with each node's schema
    /// and changelog mode, then the stream graph it runs as (tasks of chained operators, their
    /// parallelism, and the exchanges between them).
    pub fn explain(&self) -> String {
        let batch = self.env.is_batch();
        let mut out = String::from("== Logical Plan ==\n");
        write_explain(&self.plan, 0, batch, &mut out);
        out.push_str("\n== Stream Graph ==\n");
        // Planned into an empty environment of the same configuration, so explaining adds
        // nothing to the job this environment will run.
        let scratch = self.env.stream_env().scratch();
        let graph = PhysicalPlanner::new(&scratch, self.planner_config())
            .lower(&self.plan)
            .map_err(|e| e.to_string())
            .and_then(|_| scratch.job_graph("explain").map_err(|e| e.to_string()));
        match graph {
            Ok(graph) => out.push_str(&graph.to_string()),
            Err(e) => out.push_str(&format!("<the plan cannot be lowered: {e}>\n")),
        }
        out
    }

    // ---- running ----

    fn planner_config(&self) -> PlannerConfig {
        self.env.planner_config()
    }

    /// Writes the table into `target` and runs the job (see [`TableEnv::statement_set`] for
    /// several inserts in one job).
    pub fn execute_insert(
        &self,
        target: crate::TableSinkTarget,
    ) -> Result<rivulet_runtime::JobResult, TableError> {
        let mut set = self.env.statement_set();
        set.add_insert(self, target)?;
        set.execute("insert")
    }

    /// The table's rows as a stream of Arrow batches with row kinds, in this environment.
    pub fn to_changelog_stream(&self) -> Result<Stream<ChangelogBatch>, PlanError> {
        let mut planner = PhysicalPlanner::new(self.env.stream_env(), self.planner_config());
        planner.lower(&self.plan)
    }

    /// The table's changelog as typed rows with their row kinds (any table, updating or not);
    /// the columns must match `T`'s fields by name and type.
    pub fn to_changelog_stream_as<T: Data + DeserializeOwned>(
        &self,
    ) -> Result<DataStream<(RowKind, T)>, TableError> {
        check_fields::<T>(self.schema(), "to_changelog_stream_as")?;
        let stream = self.to_changelog_stream()?;
        Ok(stream.transform("ToChangelogStream", ArrowToChanges::<T>::new))
    }

    /// The table's rows as typed records. The table must be insert-only, and its columns must
    /// match `T`'s fields by name and type.
    pub fn to_data_stream<T: Data + DeserializeOwned>(&self) -> Result<DataStream<T>, TableError> {
        if let Some(producer) = updating_producer(&self.plan, self.env.is_batch()) {
            return Err(PlanError::UpdatingInput {
                consumer: "to_data_stream".into(),
                producer,
                hint: "use to_changelog_stream(), or make the query insert-only".into(),
            }
            .into());
        }
        check_fields::<T>(self.schema(), "to_data_stream")?;
        let stream = self.to_changelog_stream()?;
        Ok(stream.transform("ToDataStream", ArrowToRecords::<T>::new))
    }

    /// Runs the (bounded) query and returns its changelog as it was emitted.
    pub fn collect_changelog(&self) -> Result<Vec<ChangelogBatch>, TableError> {
        if !bounded(&self.plan) {
            return Err(PlanError::invalid(
                "collect",
                "the table reads an unbounded source; use to_changelog_stream() or insert_into(..) instead",
            )
            .into());
        }
        let changes = self.to_changelog_stream()?.collect_table();
        self.env.stream_env().execute("collect")?;
        Ok(changes.take())
    }

    /// Runs the (bounded) query and returns its final rows: the changelog consolidated.
    pub fn collect(&self) -> Result<Vec<RecordBatch>, TableError> {
        let changelog = self.collect_changelog()?;
        let schema = self.schema().to_arrow();
        let rows =
            consolidate(&schema, &changelog).map_err(|e| TableError::Convert(e.to_string()))?;
        Ok(if rows.num_rows() == 0 {
            Vec::new()
        } else {
            vec![rows]
        })
    }

    /// Runs the (bounded) query and returns its final rows as `T`s.
    pub fn collect_as<T: DeserializeOwned>(&self) -> Result<Vec<T>, TableError> {
        check_fields::<T>(self.schema(), "collect_as")?;
        let mut out = Vec::new();
        for batch in self.collect()? {
            out.extend(
                convert::from_record_batch::<T>(&batch)
                    .map_err(|e| TableError::Convert(e.to_string()))?,
            );
        }
        Ok(out)
    }

    /// Runs the (bounded) query and formats its final rows as a table.
    pub fn to_pretty_string(&self) -> Result<String, TableError> {
        let batches = self.collect()?;
        if batches.is_empty() {
            let empty = RecordBatch::new_empty(self.schema().to_arrow());
            return Ok(arrow::util::pretty::pretty_format_batches(&[empty])?.to_string());
        }
        Ok(arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    /// Runs the (bounded) query and prints its final rows as a table.
    pub fn print(&self) -> Result<(), TableError> {
        println!("{}", self.to_pretty_string()?);
        Ok(())
    }
}

fn write_explain(plan: &LogicalPlan, depth: usize, batch: bool, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "{}{} {} changelog={}",
        "  ".repeat(depth),
        plan.describe(),
        plan.schema(),
        changelog_mode(plan, batch)
    );
    for input in plan.inputs() {
        write_explain(input, depth + 1, batch, out);
    }
}

/// Fails unless the table's columns match `T`'s fields by name and type, in order.
fn check_fields<T: DeserializeOwned>(
    schema: &PlanSchema,
    operation: &str,
) -> Result<(), TableError> {
    let fields = convert::fields_of::<T>().map_err(|e| TableError::Convert(e.to_string()))?;
    let type_name = std::any::type_name::<T>();
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    if fields.len() != schema.len() {
        return Err(PlanError::SchemaMismatch {
            operation: operation.to_owned(),
            message: format!(
                "the table has columns {:?} but {type_name} has fields {names:?}",
                schema.names()
            ),
        }
        .into());
    }
    for (f, column) in fields.iter().zip(schema.fields()) {
        if f.name() != &column.name || !compatible(f, &column.data_type) {
            return Err(PlanError::SchemaMismatch {
                operation: operation.to_owned(),
                message: format!(
                    "column {:?} of type {} does not match field {:?} of {type_name} of type {}; select and cast the columns to match the struct",
                    column.name,
                    column.data_type,
                    f.name(),
                    f.data_type()
                ),
            }
            .into());
        }
    }
    Ok(())
}

fn compatible(field: &Field, column: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType as T;
    let string = |t: &T| matches!(t, T::Utf8 | T::LargeUtf8 | T::Utf8View);
    // An `i64` field reads a millisecond timestamp as epoch milliseconds, as an event-time
    // column declared on an `i64` field of typed records became one.
    let millis = matches!(field.data_type(), T::Int64)
        && matches!(
            column,
            T::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _)
        );
    field.data_type() == column || (string(field.data_type()) && string(column)) || millis
}

/// Turns typed record batches into Arrow batches.
pub(crate) struct RecordsToArrow<T> {
    fields: Vec<Field>,
    schema: SchemaRef,
    _marker: PhantomData<fn(T)>,
}

impl<T> RecordsToArrow<T> {
    pub(crate) fn new(fields: Vec<Field>, schema: SchemaRef) -> Self {
        RecordsToArrow {
            fields,
            schema,
            _marker: PhantomData,
        }
    }
}

impl<T: Data> Operator for RecordsToArrow<T> {
    type In = Records<T>;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: Records<T>,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows = convert::to_record_batch(batch.values(), &self.fields)?;
        out.collect(ChangelogBatch::insert_only(
            rows.with_schema(Arc::clone(&self.schema))?,
        ))
    }
}

/// Turns Arrow batches into typed records.
pub(crate) struct ArrowToRecords<T> {
    _marker: PhantomData<fn() -> T>,
}

impl<T> ArrowToRecords<T> {
    pub(crate) fn new() -> Self {
        ArrowToRecords {
            _marker: PhantomData,
        }
    }
}

impl<T: Data + DeserializeOwned> Operator for ArrowToRecords<T> {
    type In = ChangelogBatch;
    type Out = Records<T>;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<Records<T>>,
    ) -> Result<(), TaskError> {
        let rows = convert::from_record_batch::<T>(batch.data())?;
        out.collect(Records::from(rows))
    }
}

/// Turns typed rows with row kinds into Arrow changelog batches.
pub(crate) struct ChangesToArrow<T> {
    fields: Vec<Field>,
    schema: SchemaRef,
    _marker: PhantomData<fn(T)>,
}

impl<T> ChangesToArrow<T> {
    pub(crate) fn new(fields: Vec<Field>, schema: SchemaRef) -> Self {
        ChangesToArrow {
            fields,
            schema,
            _marker: PhantomData,
        }
    }
}

impl<T: Data> Operator for ChangesToArrow<T> {
    type In = Records<(RowKind, T)>;
    type Out = ChangelogBatch;

    fn process_batch(
        &mut self,
        batch: Records<(RowKind, T)>,
        out: &mut dyn Output<ChangelogBatch>,
    ) -> Result<(), TaskError> {
        if batch.is_empty() {
            return Ok(());
        }
        let kinds: Vec<RowKind> = batch.values().iter().map(|(k, _)| *k).collect();
        let rows: Vec<&T> = batch.values().iter().map(|(_, row)| row).collect();
        let data = convert::to_record_batch(&rows, &self.fields)?;
        out.collect(ChangelogBatch::from_kinds(
            data.with_schema(Arc::clone(&self.schema))?,
            &kinds,
        )?)
    }
}

/// Turns Arrow changelog batches into typed rows with their row kinds.
pub(crate) struct ArrowToChanges<T> {
    _marker: PhantomData<fn() -> T>,
}

impl<T> ArrowToChanges<T> {
    pub(crate) fn new() -> Self {
        ArrowToChanges {
            _marker: PhantomData,
        }
    }
}

impl<T: Data + DeserializeOwned> Operator for ArrowToChanges<T> {
    type In = ChangelogBatch;
    type Out = Records<(RowKind, T)>;

    fn process_batch(
        &mut self,
        batch: ChangelogBatch,
        out: &mut dyn Output<Records<(RowKind, T)>>,
    ) -> Result<(), TaskError> {
        let rows = convert::from_record_batch::<T>(batch.data())?;
        let changes: Vec<(RowKind, T)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| (batch.row_kind(i), row))
            .collect();
        out.collect(Records::from(changes))
    }
}

/// A table grouped by keys, waiting for its aggregates.
#[derive(Clone, Debug)]
pub struct GroupedTable {
    table: Table,
    keys: Vec<Expr>,
}

impl GroupedTable {
    /// The group keys, then `aggregates` (each an aggregate call, possibly aliased).
    pub fn aggregate(
        &self,
        aggregates: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        let aggregates = exprs(aggregates);
        let mut select = self.keys.clone();
        select.extend(aggregates.clone());
        if aggregates
            .iter()
            .all(|a| matches!(a.unalias(), Expr::Aggregate { .. }))
        {
            Ok(self.table.derive(builder::aggregate(
                Arc::clone(&self.table.plan),
                self.keys.clone(),
                aggregates,
                "aggregate",
            )?))
        } else {
            self.select(select)
        }
    }

    /// Any mix of group keys and expressions over aggregates; a column that is neither grouped
    /// nor inside an aggregate is an error.
    pub fn select(
        &self,
        select: impl IntoIterator<Item = impl Into<Expr>>,
    ) -> Result<Table, PlanError> {
        Ok(self.table.derive(builder::aggregate_select(
            Arc::clone(&self.table.plan),
            self.keys.clone(),
            exprs(select),
            "select",
        )?))
    }
}

/// The time condition of an interval join: `right_time + lower_ms <= left_time <= right_time +
/// upper_ms`.
#[derive(Debug, Clone)]
pub struct TimeBounds {
    left_time: Expr,
    right_time: Expr,
    lower_ms: i64,
    upper_ms: i64,
}

impl TimeBounds {
    /// `left_time BETWEEN right_time + lower AND right_time + upper` (`lower` and `upper` may be
    /// negative, e.g. `-3_600_000` for an hour before).
    pub fn between(
        left_time: impl Into<Expr>,
        right_time: impl Into<Expr>,
        lower: std::time::Duration,
        upper: std::time::Duration,
    ) -> Self {
        Self::between_ms(
            left_time,
            right_time,
            i64::try_from(lower.as_millis()).unwrap_or(i64::MAX),
            i64::try_from(upper.as_millis()).unwrap_or(i64::MAX),
        )
    }

    /// As [`TimeBounds::between`], with signed bounds in milliseconds.
    pub fn between_ms(
        left_time: impl Into<Expr>,
        right_time: impl Into<Expr>,
        lower_ms: i64,
        upper_ms: i64,
    ) -> Self {
        TimeBounds {
            left_time: left_time.into(),
            right_time: right_time.into(),
            lower_ms,
            upper_ms,
        }
    }
}
