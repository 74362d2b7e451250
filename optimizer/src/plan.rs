//! [`LogicalPlan`]: the relational operators of a table pipeline, each with its output schema.
//!
//! Plans are immutable trees of shared nodes. Every node's expressions were resolved and typed
//! against its input when it was built (see `builder`), so a plan that exists is well typed.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::expr::{Expr, SortExpr};
use crate::schema::PlanSchemaRef;
use crate::source::{TableSourceRef, TableUdfRef};

/// How a join pairs rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JoinKind {
    /// Matching pairs only.
    Inner,
    /// Every left row; unmatched ones padded with nulls.
    Left,
    /// Every right row; unmatched ones padded with nulls.
    Right,
    /// Every row of both sides.
    Full,
    /// Left rows with at least one match (output: left columns only).
    Semi,
    /// Left rows without a match (output: left columns only).
    Anti,
}

impl JoinKind {
    /// The kind as printed in plans.
    pub fn name(self) -> &'static str {
        match self {
            JoinKind::Inner => "inner",
            JoinKind::Left => "left",
            JoinKind::Right => "right",
            JoinKind::Full => "full",
            JoinKind::Semi => "semi",
            JoinKind::Anti => "anti",
        }
    }

    /// Whether the output has only the left side's columns.
    pub fn left_only(self) -> bool {
        matches!(self, JoinKind::Semi | JoinKind::Anti)
    }
}

/// `INTERSECT` or `EXCEPT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOpKind {
    /// Rows in both inputs.
    Intersect,
    /// Rows of the left input not in the right.
    Except,
}

/// Reading a registered table.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The name it was registered under.
    pub table: String,
    /// Where the rows come from.
    pub source: TableSourceRef,
    /// The columns read, as positions in the source's schema (all when `None`).
    pub projection: Option<Vec<usize>>,
    /// The output schema.
    pub schema: PlanSchemaRef,
}

/// Rows given in the plan itself.
#[derive(Debug, Clone)]
pub struct Values {
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The output schema.
    pub schema: PlanSchemaRef,
}

/// Computes new columns from each row.
#[derive(Debug, Clone)]
pub struct Projection {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// One expression per output column.
    pub exprs: Vec<Expr>,
    /// The output schema.
    pub schema: PlanSchemaRef,
}

/// Keeps the rows where a predicate holds.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// A boolean expression; null counts as false.
    pub predicate: Expr,
}

/// Groups rows and aggregates each group.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The group keys (no keys: one global group).
    pub group: Vec<Expr>,
    /// The aggregates, each an [`Expr::Aggregate`] (possibly aliased).
    pub aggregates: Vec<Expr>,
    /// The output schema: the keys, then the aggregates.
    pub schema: PlanSchemaRef,
}

/// Pairs rows of two inputs.
#[derive(Debug, Clone)]
pub struct Join {
    /// The left input.
    pub left: Arc<LogicalPlan>,
    /// The right input.
    pub right: Arc<LogicalPlan>,
    /// How rows pair.
    pub kind: JoinKind,
    /// Equality keys: `(left expr, right expr)` pairs over each side's schema.
    pub on: Vec<(Expr, Expr)>,
    /// Extra condition over the joined row (left columns, then right columns).
    pub filter: Option<Expr>,
    /// When set, `on` equalities also match two nulls (`IS NOT DISTINCT FROM`).
    pub null_equals_null: bool,
    /// For an interval join: the time bounds between the two sides' event-time columns.
    pub interval: Option<JoinInterval>,
    /// The output schema.
    pub schema: PlanSchemaRef,
}

/// The time bounds of an interval join: `right_time + lower_ms <= left_time <= right_time +
/// upper_ms`, both columns event-time attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInterval {
    /// The left side's event-time column, by position in the left schema.
    pub left_time: usize,
    /// The right side's event-time column, by position in the right schema.
    pub right_time: usize,
    /// The lower bound in milliseconds.
    pub lower_ms: i64,
    /// The upper bound in milliseconds.
    pub upper_ms: i64,
}

/// `ROW_NUMBER() OVER (PARTITION BY .. ORDER BY ..) <= n`: the first `n` rows of each partition.
#[derive(Debug, Clone)]
pub struct TopN {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The partition columns, by position in the input.
    pub partition_by: Vec<usize>,
    /// The order within a partition: (column position, ascending, nulls first).
    pub order: Vec<(usize, bool, bool)>,
    /// How many rows per partition.
    pub n: u64,
    /// The name of the row-number column, when the output has one.
    pub rank_column: Option<String>,
    /// The output schema.
    pub schema: PlanSchemaRef,
}

/// Which row of each key a [`Deduplicate`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepRow {
    /// The first.
    First,
    /// The last.
    Last,
}

/// One row per key: the first or the last by arrival or by an event-time column.
#[derive(Debug, Clone)]
pub struct Deduplicate {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The key columns, by position.
    pub keys: Vec<usize>,
    /// First or last.
    pub keep: KeepRow,
    /// The event-time column ordering the rows, or `None` for arrival order.
    pub time: Option<usize>,
}

/// A window table function: each row with the `window_start`, `window_end` and `window_time`
/// of its windows (one row per window for HOP and CUMULATE). A SESSION window exists only under
/// a window aggregation, which the planner recognises as `GROUP BY window_start, window_end,
/// ..` directly over this node.
#[derive(Debug, Clone)]
pub struct WindowTable {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The event-time column, by position.
    pub time: usize,
    /// The windows.
    pub window: rivulet_runtime::relational::WindowTvf,
    /// The output schema: the input's columns, then the three window columns.
    pub schema: PlanSchemaRef,
}

impl WindowTable {
    /// Positions of `window_start`, `window_end` and `window_time` in the output.
    pub fn window_columns(&self) -> [usize; 3] {
        let n = self.input.schema().len();
        [n, n + 1, n + 2]
    }
}

/// The frame of an [`OverAggregate`], up to the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverWindow {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW` (`None`: unbounded).
    Rows(Option<u64>),
    /// `RANGE BETWEEN INTERVAL ms PRECEDING AND CURRENT ROW` (`None`: unbounded).
    Range(Option<i64>),
}

/// `agg(..) OVER (PARTITION BY .. ORDER BY time <frame>)` for each row.
#[derive(Debug, Clone)]
pub struct OverAggregate {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The partition columns, by position.
    pub partition_by: Vec<usize>,
    /// The event-time column, by position.
    pub time: usize,
    /// The frame.
    pub frame: OverWindow,
    /// The aggregates, each aliased to its output name.
    pub aggregates: Vec<Expr>,
    /// The output schema: the input's columns, then one per aggregate.
    pub schema: PlanSchemaRef,
}

/// Concatenates inputs of the same columns (`UNION ALL`).
#[derive(Debug, Clone)]
pub struct Union {
    /// The inputs.
    pub inputs: Vec<Arc<LogicalPlan>>,
    /// The output schema (the first input's names).
    pub schema: PlanSchemaRef,
}

/// `INTERSECT [ALL]` or `EXCEPT [ALL]`.
#[derive(Debug, Clone)]
pub struct SetOperation {
    /// The left input.
    pub left: Arc<LogicalPlan>,
    /// The right input.
    pub right: Arc<LogicalPlan>,
    /// Which operation.
    pub kind: SetOpKind,
    /// With `ALL`, multiplicities count (`min(l, r)` or `max(l - r, 0)` copies); without,
    /// each distinct row at most once.
    pub all: bool,
    /// The output schema (the left input's).
    pub schema: PlanSchemaRef,
}

/// Removes duplicate rows.
#[derive(Debug, Clone)]
pub struct Distinct {
    /// The input.
    pub input: Arc<LogicalPlan>,
}

/// Orders rows (bounded input only), optionally keeping only the first `fetch`.
#[derive(Debug, Clone)]
pub struct Sort {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The sort keys, most significant first.
    pub order: Vec<SortExpr>,
    /// Keep only this many rows (after `skip`), when set.
    pub fetch: Option<usize>,
}

/// Skips `skip` rows and keeps the next `fetch`.
#[derive(Debug, Clone)]
pub struct Limit {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// Rows to skip.
    pub skip: usize,
    /// Rows to keep after them (all when `None`).
    pub fetch: Option<usize>,
}

/// Joins each row with the rows a table function produces for it (lateral join, `flat_map`,
/// `unnest`).
#[derive(Debug, Clone)]
pub struct Correlate {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The function.
    pub function: TableUdfRef,
    /// Its arguments over the input's columns.
    pub args: Vec<Expr>,
    /// Inner (rows producing nothing vanish) or left (they are kept, padded with nulls).
    pub kind: JoinKind,
    /// The output schema: the input's columns, then the function's.
    pub schema: PlanSchemaRef,
}

/// Gives a node's columns a new qualifier (a table alias).
#[derive(Debug, Clone)]
pub struct SubqueryAlias {
    /// The input.
    pub input: Arc<LogicalPlan>,
    /// The alias.
    pub alias: String,
    /// The requalified schema.
    pub schema: PlanSchemaRef,
}

/// A relational operator of a table pipeline.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LogicalPlan {
    /// A registered table.
    Scan(Scan),
    /// Literal rows.
    Values(Values),
    /// Computed columns.
    Projection(Projection),
    /// A predicate.
    Filter(Filter),
    /// Group and aggregate.
    Aggregate(Aggregate),
    /// A join.
    Join(Join),
    /// `UNION ALL`.
    Union(Union),
    /// `INTERSECT` / `EXCEPT`.
    SetOperation(SetOperation),
    /// Duplicate removal.
    Distinct(Distinct),
    /// Ordering (bounded input).
    Sort(Sort),
    /// Offset and fetch.
    Limit(Limit),
    /// A table function per row.
    Correlate(Correlate),
    /// Top-N per partition.
    TopN(TopN),
    /// One row per key.
    Deduplicate(Deduplicate),
    /// Aggregates over a frame of preceding rows, per row.
    OverAggregate(OverAggregate),
    /// A window table function.
    WindowTable(WindowTable),
    /// A table alias.
    SubqueryAlias(SubqueryAlias),
}

impl LogicalPlan {
    /// The node's output schema.
    pub fn schema(&self) -> &PlanSchemaRef {
        match self {
            LogicalPlan::Scan(s) => &s.schema,
            LogicalPlan::Values(v) => &v.schema,
            LogicalPlan::Projection(p) => &p.schema,
            LogicalPlan::Filter(f) => f.input.schema(),
            LogicalPlan::Aggregate(a) => &a.schema,
            LogicalPlan::Join(j) => &j.schema,
            LogicalPlan::Union(u) => &u.schema,
            LogicalPlan::SetOperation(s) => &s.schema,
            LogicalPlan::Distinct(d) => d.input.schema(),
            LogicalPlan::Sort(s) => s.input.schema(),
            LogicalPlan::Limit(l) => l.input.schema(),
            LogicalPlan::Correlate(c) => &c.schema,
            LogicalPlan::SubqueryAlias(a) => &a.schema,
            LogicalPlan::TopN(t) => &t.schema,
            LogicalPlan::Deduplicate(d) => d.input.schema(),
            LogicalPlan::OverAggregate(o) => &o.schema,
            LogicalPlan::WindowTable(w) => &w.schema,
        }
    }

    /// The node's inputs.
    pub fn inputs(&self) -> Vec<&Arc<LogicalPlan>> {
        match self {
            LogicalPlan::Scan(_) | LogicalPlan::Values(_) => vec![],
            LogicalPlan::Projection(Projection { input, .. })
            | LogicalPlan::Filter(Filter { input, .. })
            | LogicalPlan::Aggregate(Aggregate { input, .. })
            | LogicalPlan::Distinct(Distinct { input })
            | LogicalPlan::Sort(Sort { input, .. })
            | LogicalPlan::Limit(Limit { input, .. })
            | LogicalPlan::Correlate(Correlate { input, .. })
            | LogicalPlan::TopN(TopN { input, .. })
            | LogicalPlan::Deduplicate(Deduplicate { input, .. })
            | LogicalPlan::OverAggregate(OverAggregate { input, .. })
            | LogicalPlan::WindowTable(WindowTable { input, .. })
            | LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) => vec![input],
            LogicalPlan::Join(Join { left, right, .. })
            | LogicalPlan::SetOperation(SetOperation { left, right, .. }) => vec![left, right],
            LogicalPlan::Union(u) => u.inputs.iter().collect(),
        }
    }

    /// The node's name in plans (`Join(inner)`, `Aggregate`, ...).
    pub fn name(&self) -> String {
        match self {
            LogicalPlan::Scan(s) => format!("Scan({})", s.table),
            LogicalPlan::Values(_) => "Values".into(),
            LogicalPlan::Projection(_) => "Projection".into(),
            LogicalPlan::Filter(_) => "Filter".into(),
            LogicalPlan::Aggregate(_) => "Aggregate".into(),
            LogicalPlan::Join(j) => format!("Join({})", j.kind.name()),
            LogicalPlan::Union(_) => "Union".into(),
            LogicalPlan::SetOperation(s) => format!(
                "{}{}",
                match s.kind {
                    SetOpKind::Intersect => "Intersect",
                    SetOpKind::Except => "Except",
                },
                if s.all { "All" } else { "" }
            ),
            LogicalPlan::Distinct(_) => "Distinct".into(),
            LogicalPlan::Sort(_) => "Sort".into(),
            LogicalPlan::Limit(_) => "Limit".into(),
            LogicalPlan::Correlate(c) => format!("Correlate({})", c.kind.name()),
            LogicalPlan::SubqueryAlias(a) => format!("Alias({})", a.alias),
            LogicalPlan::TopN(_) => "TopN".into(),
            LogicalPlan::Deduplicate(_) => "Deduplicate".into(),
            LogicalPlan::OverAggregate(_) => "OverAggregate".into(),
            LogicalPlan::WindowTable(_) => "WindowTable".into(),
        }
    }

    /// The node alone, as one line of an explained plan.
    pub fn describe(&self) -> String {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            LogicalPlan::Scan(s) => match &s.projection {
                Some(_) => format!("Scan: {} projection=[{}]", s.table, list(&s.schema.names())),
                None => format!("Scan: {}", s.table),
            },
            LogicalPlan::Values(v) => format!(
                "Values: {} rows",
                v.batches.iter().map(RecordBatch::num_rows).sum::<usize>()
            ),
            LogicalPlan::Projection(p) => format!("Projection: {}", list(&p.exprs)),
            LogicalPlan::Filter(f) => format!("Filter: {}", f.predicate),
            LogicalPlan::Aggregate(a) => format!(
                "Aggregate: group=[{}] aggregates=[{}]",
                list(&a.group),
                list(&a.aggregates)
            ),
            LogicalPlan::Join(j) => {
                let on =
                    j.on.iter()
                        .map(|(l, r)| format!("{l} = {r}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                let mut text = match &j.filter {
                    Some(f) => format!("Join({}): on=[{on}] filter={f}", j.kind.name()),
                    None => format!("Join({}): on=[{on}]", j.kind.name()),
                };
                if let Some(i) = &j.interval {
                    text.push_str(&format!(
                        " interval=[{} + {} ms <= {} <= {} + {} ms]",
                        j.right.schema().field(i.right_time).name,
                        i.lower_ms,
                        j.left.schema().field(i.left_time).name,
                        j.right.schema().field(i.right_time).name,
                        i.upper_ms
                    ));
                }
                text
            }
            LogicalPlan::Union(_) => "Union".into(),
            LogicalPlan::SetOperation(_) => self.name(),
            LogicalPlan::Distinct(_) => "Distinct".into(),
            LogicalPlan::Sort(s) => {
                let keys = s
                    .order
                    .iter()
                    .map(|k| {
                        format!(
                            "{} {}{}",
                            k.expr,
                            if k.ascending { "ASC" } else { "DESC" },
                            if k.nulls_first {
                                " NULLS FIRST"
                            } else {
                                " NULLS LAST"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                match s.fetch {
                    Some(n) => format!("Sort: {keys} fetch={n}"),
                    None => format!("Sort: {keys}"),
                }
            }
            LogicalPlan::Limit(l) => match l.fetch {
                Some(n) => format!("Limit: skip={} fetch={n}", l.skip),
                None => format!("Limit: skip={}", l.skip),
            },
            LogicalPlan::Correlate(c) => format!(
                "Correlate({}): {}({})",
                c.kind.name(),
                c.function.name(),
                list(&c.args)
            ),
            LogicalPlan::SubqueryAlias(a) => format!("Alias: {}", a.alias),
            LogicalPlan::TopN(t) => {
                let input = t.input.schema();
                let order = t
                    .order
                    .iter()
                    .map(|&(c, asc, nulls_first)| {
                        format!(
                            "{} {}{}",
                            input.field(c).name,
                            if asc { "ASC" } else { "DESC" },
                            if nulls_first {
                                " NULLS FIRST"
                            } else {
                                " NULLS LAST"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "TopN: partition=[{}] order=[{order}] n={}{}",
                    names(input, &t.partition_by),
                    t.n,
                    t.rank_column
                        .as_ref()
                        .map(|r| format!(" rownum={r}"))
                        .unwrap_or_default()
                )
            }
            LogicalPlan::Deduplicate(d) => format!(
                "Deduplicate: keys=[{}] keep={} order={}",
                names(d.input.schema(), &d.keys),
                match d.keep {
                    KeepRow::First => "first",
                    KeepRow::Last => "last",
                },
                d.time
                    .map(|t| d.input.schema().field(t).name.clone())
                    .unwrap_or_else(|| "arrival".into())
            ),
            LogicalPlan::WindowTable(w) => {
                use rivulet_runtime::relational::WindowTvf as W;
                let time = &w.input.schema().field(w.time).name;
                let window = match w.window {
                    W::Tumble { size, offset } => {
                        format!("TUMBLE({time}, {size} ms{})", offset_text(offset))
                    }
                    W::Hop {
                        slide,
                        size,
                        offset,
                    } => {
                        format!("HOP({time}, {slide} ms, {size} ms{})", offset_text(offset))
                    }
                    W::Cumulate {
                        step,
                        max_size,
                        offset,
                    } => format!(
                        "CUMULATE({time}, {step} ms, {max_size} ms{})",
                        offset_text(offset)
                    ),
                    W::Session { gap } => format!("SESSION({time}, {gap} ms)"),
                };
                format!("WindowTable: {window}")
            }
            LogicalPlan::OverAggregate(o) => format!(
                "OverAggregate: partition=[{}] order=[{}] frame={} aggregates=[{}]",
                names(o.input.schema(), &o.partition_by),
                o.input.schema().field(o.time).name,
                match o.frame {
                    OverWindow::Rows(None) => "ROWS UNBOUNDED PRECEDING".to_owned(),
                    OverWindow::Rows(Some(n)) => format!("ROWS {n} PRECEDING"),
                    OverWindow::Range(None) => "RANGE UNBOUNDED PRECEDING".to_owned(),
                    OverWindow::Range(Some(ms)) => format!("RANGE {ms} ms PRECEDING"),
                },
                list(&o.aggregates)
            ),
        }
    }

    /// The plan as an indented tree, one node per line, each with its schema when `schemas`.
    pub fn display_tree(&self, schemas: bool) -> String {
        let mut out = String::new();
        self.write_tree(&mut out, 0, schemas);
        out
    }

    fn write_tree(&self, out: &mut String, depth: usize, schemas: bool) {
        use std::fmt::Write;
        let _ = write!(out, "{}{}", "  ".repeat(depth), self.describe());
        if schemas {
            let _ = write!(out, " {}", self.schema());
        }
        out.push('\n');
        for input in self.inputs() {
            input.write_tree(out, depth + 1, schemas);
        }
    }
}

fn offset_text(offset: i64) -> String {
    if offset == 0 {
        String::new()
    } else {
        format!(", offset {offset} ms")
    }
}

/// The window table function and the grouping of an aggregate that is a window aggregation:
/// `GROUP BY window_start, window_end, ..` directly over a [`WindowTable`]. For each group
/// expression, which window column it is (0 start, 1 end, 2 time), if any.
pub fn window_aggregation(agg: &Aggregate) -> Option<(&WindowTable, Vec<Option<usize>>)> {
    let LogicalPlan::WindowTable(w) = agg.input.as_ref() else {
        return None;
    };
    let schema = w.schema.as_ref();
    let columns = w.window_columns();
    let roles: Vec<Option<usize>> = agg
        .group
        .iter()
        .map(|g| match g.unalias() {
            Expr::Column(c) => schema
                .index_of(c, "window aggregation")
                .ok()
                .and_then(|i| columns.iter().position(|&w| w == i)),
            _ => None,
        })
        .collect();
    (roles.contains(&Some(0)) && roles.contains(&Some(1))).then_some((w, roles))
}

/// A Top-N that is a window Top-N: partitioned by the `window_start` and `window_end` columns
/// (timestamps, as a window table function or window aggregation makes them) of an insert-only
/// input, so each window's top rows are final once the watermark passes its end. Returns the
/// positions of the two window columns and of the other partition columns.
pub fn window_top_n(t: &TopN) -> Option<(usize, usize, Vec<usize>)> {
    let schema = t.input.schema();
    let find = |name: &str| {
        t.partition_by.iter().copied().find(|&c| {
            let f = schema.field(c);
            f.name == name && matches!(f.data_type, arrow::datatypes::DataType::Timestamp(_, _))
        })
    };
    let (start, end) = (find("window_start")?, find("window_end")?);
    if !crate::changelog::changelog_mode(&t.input, false).is_insert_only() {
        return None;
    }
    let others = t
        .partition_by
        .iter()
        .copied()
        .filter(|&c| c != start && c != end)
        .collect();
    Some((start, end, others))
}

/// Whether `plan`'s column `c` is a window bound column named `name` (a timestamp).
fn is_window_column(plan: &LogicalPlan, c: usize, name: &str) -> bool {
    let f = plan.schema().field(c);
    f.name == name && matches!(f.data_type, arrow::datatypes::DataType::Timestamp(_, _))
}

/// A deduplication that is a window deduplication: keyed by `window_start` and `window_end` of
/// an insert-only windowed table, ordered by event time. Returns the window columns' and the
/// other keys' positions.
pub fn window_deduplicate(d: &Deduplicate) -> Option<(usize, usize, Vec<usize>)> {
    d.time?;
    let find = |name: &str| {
        d.keys
            .iter()
            .copied()
            .find(|&c| is_window_column(&d.input, c, name))
    };
    let (start, end) = (find("window_start")?, find("window_end")?);
    if !crate::changelog::changelog_mode(&d.input, false).is_insert_only() {
        return None;
    }
    let others = d
        .keys
        .iter()
        .copied()
        .filter(|&c| c != start && c != end)
        .collect();
    Some((start, end, others))
}

/// A join that is a window join: both insert-only inputs windowed, joined on `window_start =
/// window_end` and `window_end = window_end` among other equalities. Returns the indices in
/// `on` of the two window pairs.
pub fn window_join(j: &Join) -> Option<(usize, usize)> {
    if j.interval.is_some() {
        return None;
    }
    let pair = |name: &str| {
        j.on.iter()
            .position(|(l, r)| match (l.unalias(), r.unalias()) {
                (Expr::Column(lc), Expr::Column(rc)) => {
                    let l = j.left.schema().index_of(lc, "window join").ok();
                    let r = j.right.schema().index_of(rc, "window join").ok();
                    matches!((l, r), (Some(l), Some(r))
                    if is_window_column(&j.left, l, name) && is_window_column(&j.right, r, name))
                }
                _ => false,
            })
    };
    let (start, end) = (pair("window_start")?, pair("window_end")?);
    let insert_only = |p: &LogicalPlan| crate::changelog::changelog_mode(p, false).is_insert_only();
    (insert_only(&j.left) && insert_only(&j.right)).then_some((start, end))
}

/// The names of the columns at `columns`, comma-separated.
fn names(schema: &crate::schema::PlanSchema, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&c| schema.field(c).name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for LogicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_tree(false))
    }
}
