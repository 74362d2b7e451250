//! Physical planning: lowering a logical plan into runtime operators on a [`StreamEnv`].
//!
//! Lowering is a separate step after building (and, later, optimizing) a plan. Each node becomes
//! one or more relational operators of `rivulet_runtime::relational`, connected by forward or
//! hash exchanges; a node shared by several parents is lowered once and fanned out. Operator ids
//! are derived from the node's kind and its position in a post-order walk, so the same query gets
//! the same ids every time.

pub mod expr;
mod relational;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use rivulet_runtime::exchange::ArrowKeySelector;
use rivulet_runtime::relational::calc::ExprCalcOperator;
use rivulet_runtime::relational::correlate::CorrelateOperator;
use rivulet_runtime::relational::expr::ColumnExpr;
use rivulet_runtime::relational::sort::{SortKey, SortLimitOperator, StreamingLimitOperator};
use rivulet_runtime::relational::{
    BadDataPolicy, BadRows, ChangelogNormalizeOperator, EvalContext, PhysicalExprRef,
    RowtimeWatermarkOperator,
};
use rivulet_runtime::source::RecordBatchSource;
use rivulet_runtime::{ChangelogBatch, Stream, StreamEnv};

pub use expr::create_physical_expr;

use crate::changelog::{ChangelogMode, changelog_mode};
use crate::error::PlanError;
use crate::expr::{Expr, SortExpr};
use crate::plan::{JoinKind, LogicalPlan, Scan};
use crate::schema::PlanSchema;

/// How plans are lowered.
#[derive(Debug, Clone, Default)]
pub struct PlannerConfig {
    /// Batch mode: every source is bounded and results are final and insert-only.
    pub batch: bool,
    /// What to do with rows whose expressions fail.
    pub bad_data: BadDataPolicy,
    /// Where skipped rows are counted.
    pub bad_rows: BadRows,
}

/// Lowers plans into a [`StreamEnv`]; one planner per job, so shared subplans are lowered once.
pub struct PhysicalPlanner<'a> {
    env: &'a StreamEnv,
    config: PlannerConfig,
    lowered: HashMap<*const LogicalPlan, (Arc<LogicalPlan>, Stream<ChangelogBatch>)>,
    next_id: usize,
}

type PlanRef = Arc<LogicalPlan>;

impl<'a> PhysicalPlanner<'a> {
    /// A planner adding operators to `env`.
    pub fn new(env: &'a StreamEnv, config: PlannerConfig) -> Self {
        PhysicalPlanner {
            env,
            config,
            lowered: HashMap::new(),
            next_id: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    fn ctx(&self) -> EvalContext {
        EvalContext::new(self.config.bad_data, self.config.bad_rows.clone())
    }

    fn uid(&mut self, kind: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        format!("{kind}-{id}")
    }

    /// The stream of `plan`'s rows.
    pub fn lower(&mut self, plan: &PlanRef) -> Result<Stream<ChangelogBatch>, PlanError> {
        let key = Arc::as_ptr(plan);
        if let Some((_, stream)) = self.lowered.get(&key) {
            return Ok(stream.clone());
        }
        let stream = self.lower_node(plan)?;
        self.lowered.insert(key, (Arc::clone(plan), stream.clone()));
        Ok(stream)
    }

    fn lower_node(&mut self, plan: &PlanRef) -> Result<Stream<ChangelogBatch>, PlanError> {
        match plan.as_ref() {
            LogicalPlan::Scan(scan) => self.lower_scan(scan),
            LogicalPlan::Values(values) => {
                let schema = values.schema.to_arrow();
                let batches = values
                    .batches
                    .iter()
                    .map(|b| b.clone().with_schema(Arc::clone(&schema)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| PlanError::invalid("values", e.to_string()))?;
                let uid = self.uid("values");
                Ok(self
                    .env
                    .from_source(RecordBatchSource::new(batches))
                    .set_parallelism(1)
                    .name("Values")
                    .uid(&uid))
            }
            LogicalPlan::Projection(p) => {
                // A projection over a filter is one Calc.
                let (input, predicate) = match p.input.as_ref() {
                    LogicalPlan::Filter(f) => (&f.input, Some(&f.predicate)),
                    _ => (&p.input, None),
                };
                let stream = self.lower(input)?;
                let schema = input.schema();
                let predicate = predicate
                    .map(|e| create_physical_expr(e, schema))
                    .transpose()?;
                let exprs = p
                    .exprs
                    .iter()
                    .map(|e| create_physical_expr(e, schema))
                    .collect::<Result<Vec<_>, _>>()?;
                let name = if predicate.is_some() {
                    "Calc"
                } else {
                    "Project"
                };
                Ok(self.calc(&stream, predicate, Some(exprs), p.schema.to_arrow(), name))
            }
            LogicalPlan::Filter(f) => {
                let stream = self.lower(&f.input)?;
                let predicate = create_physical_expr(&f.predicate, f.input.schema())?;
                Ok(self.calc(
                    &stream,
                    Some(predicate),
                    None,
                    f.input.schema().to_arrow(),
                    "Filter",
                ))
            }
            LogicalPlan::SubqueryAlias(a) => self.lower(&a.input),
            LogicalPlan::Union(u) => {
                let mut streams = Vec::new();
                for input in &u.inputs {
                    let stream = self.lower(input)?;
                    streams.push(self.conform(stream, input.schema(), &u.schema)?);
                }
                let first = streams.remove(0);
                Ok(first.union(streams))
            }
            LogicalPlan::Sort(s) => self.sort(&s.input, &s.order, 0, s.fetch),
            LogicalPlan::Limit(l) => match l.input.as_ref() {
                LogicalPlan::Sort(s) => {
                    let fetch = match (s.fetch, l.fetch) {
                        (Some(a), Some(b)) => Some(a.saturating_sub(l.skip).min(b)),
                        (a, b) => a.map(|a| a.saturating_sub(l.skip)).or(b),
                    };
                    self.sort(&s.input, &s.order, l.skip, fetch)
                }
                _ if changelog_mode(&l.input, self.config.batch).is_insert_only() => {
                    let stream = self.lower(&l.input)?;
                    let (skip, fetch) = (l.skip, l.fetch);
                    let uid = self.uid("limit");
                    Ok(stream
                        .global()
                        .transform("Limit", move || StreamingLimitOperator::new(skip, fetch))
                        .set_parallelism(1)
                        .uid(&uid))
                }
                _ => self.sort(&l.input, &[], l.skip, l.fetch),
            },
            LogicalPlan::TopN(t) => self.lower_top_n(t),
            LogicalPlan::Deduplicate(d) => self.lower_deduplicate(d),
            LogicalPlan::OverAggregate(o) => self.lower_over(o),
            LogicalPlan::WindowTable(w) => self.lower_window_table(w),
            LogicalPlan::Correlate(c) => {
                let stream = self.lower(&c.input)?;
                let args = c
                    .args
                    .iter()
                    .map(|e| create_physical_expr(e, c.input.schema()))
                    .collect::<Result<Vec<_>, _>>()?;
                let function = Arc::clone(&c.function);
                let outer = c.kind == JoinKind::Left;
                let schema = c.schema.to_arrow();
                let ctx = self.ctx();
                Ok(stream.same_parallelism(stream.transform(
                    &format!("Correlate({})", function.name()),
                    move || {
                        CorrelateOperator::new(
                            Arc::clone(&function),
                            args.clone(),
                            outer,
                            Arc::clone(&schema),
                            ctx.clone(),
                        )
                    },
                )))
            }
            LogicalPlan::Aggregate(a) => self.lower_aggregate(a),
            LogicalPlan::Distinct(d) => self.lower_distinct(&d.input),
            LogicalPlan::Join(j) => self.lower_join(j),
            LogicalPlan::SetOperation(s) => self.lower_set_operation(s),
        }
    }

    /// A source, with its event-time watermarks, its upserts normalised into retractions and
    /// its projection applied.
    fn lower_scan(&mut self, scan: &Scan) -> Result<Stream<ChangelogBatch>, PlanError> {
        let source_schema = scan.source.schema();
        let projection = scan.projection.as_deref();
        let event_time = scan.source.event_time();
        let upsert_key = match scan.source.changelog_mode() {
            ChangelogMode::Upsert { key } => Some(key),
            _ => None,
        };
        if event_time.is_none()
            && upsert_key.is_none()
            && (scan.source.supports_projection() || projection.is_none())
        {
            let stream = scan.source.create(self.env, projection)?;
            let uid = self.uid("scan");
            return Ok(stream.uid(&uid));
        }
        let uid = self.uid("scan");
        let mut stream = scan.source.create(self.env, None)?.uid(&uid);
        if let Some(spec) = event_time {
            let schema = Arc::clone(&source_schema);
            RowtimeWatermarkOperator::new(&schema, spec.column, spec.out_of_orderness_ms)
                .map_err(|e| PlanError::invalid("event time", e.to_string()))?;
            let uid = self.uid("watermarks");
            stream = stream
                .same_parallelism(stream.transform("WatermarkAssigner", move || {
                    RowtimeWatermarkOperator::new(&schema, spec.column, spec.out_of_orderness_ms)
                        .expect("the event-time column was validated when planned")
                }))
                .uid(&uid);
        }
        if let Some(key) = upsert_key {
            let schema = Arc::clone(&source_schema);
            ChangelogNormalizeOperator::new(Arc::clone(&schema), key.clone())
                .map_err(|e| PlanError::invalid("upsert source", e.to_string()))?;
            let uid = self.uid("normalize");
            stream = stream
                .partition_by_key(ArrowKeySelector::new(key.clone()))
                .transform("ChangelogNormalize", move || {
                    ChangelogNormalizeOperator::new(Arc::clone(&schema), key.clone())
                        .expect("the upsert key was validated when planned")
                })
                .uid(&uid);
        }
        let Some(projection) = projection else {
            return Ok(stream);
        };
        let exprs: Vec<PhysicalExprRef> = projection
            .iter()
            .map(|&i| {
                let f = source_schema.field(i);
                Arc::new(ColumnExpr::new(
                    f.name().clone(),
                    i,
                    f.data_type().clone(),
                    f.is_nullable(),
                )) as PhysicalExprRef
            })
            .collect();
        Ok(self.calc(
            &stream,
            None,
            Some(exprs),
            scan.schema.to_arrow(),
            "Project",
        ))
    }

    fn calc(
        &mut self,
        input: &Stream<ChangelogBatch>,
        predicate: Option<PhysicalExprRef>,
        projection: Option<Vec<PhysicalExprRef>>,
        schema: SchemaRef,
        name: &str,
    ) -> Stream<ChangelogBatch> {
        let ctx = self.ctx();
        // At its input's parallelism, so it runs chained (forward): a rebalance would let a
        // retraction overtake the row it retracts.
        input.same_parallelism(input.transform(name, move || {
            ExprCalcOperator::new(
                predicate.clone(),
                projection.clone(),
                Arc::clone(&schema),
                ctx.clone(),
            )
        }))
    }

    /// `stream` (of `from`'s columns) cast and renamed to `to`'s columns when they differ.
    fn conform(
        &mut self,
        stream: Stream<ChangelogBatch>,
        from: &PlanSchema,
        to: &PlanSchema,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let same = from.fields().iter().zip(to.fields()).all(|(a, b)| {
            a.data_type == b.data_type && a.name == b.name && a.nullable == b.nullable
        });
        if same {
            return Ok(stream);
        }
        let exprs = from
            .fields()
            .iter()
            .zip(to.fields())
            .map(|(a, b)| {
                let column = Expr::Column(crate::expr::Column {
                    relation: a.qualifier.as_deref().map(str::to_owned),
                    name: a.name.clone(),
                });
                let expr = if a.data_type == b.data_type {
                    column
                } else {
                    column.cast(b.data_type.clone())
                };
                create_physical_expr(&expr, from)
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        Ok(self.calc(&stream, None, Some(exprs), to.to_arrow(), "Conform"))
    }

    fn sort(
        &mut self,
        input: &PlanRef,
        order: &[SortExpr],
        skip: usize,
        fetch: Option<usize>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        if !self.config.batch && !bounded(input) {
            return Err(PlanError::invalid(
                "order_by",
                "sorting and limits over updates need bounded input; read bounded sources or use the batch mode",
            ));
        }
        let stream = self.lower(input)?;
        let keys = order
            .iter()
            .map(|k| {
                Ok(SortKey {
                    expr: create_physical_expr(&k.expr, input.schema())?,
                    ascending: k.ascending,
                    nulls_first: k.nulls_first,
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let schema = input.schema().to_arrow();
        let ctx = self.ctx();
        let uid = self.uid("sort");
        Ok(stream
            .global()
            .transform("Sort", move || {
                SortLimitOperator::new(keys.clone(), skip, fetch, Arc::clone(&schema), ctx.clone())
            })
            .set_parallelism(1)
            .uid(&uid))
    }
}

/// Whether every source under `plan` ends.
pub fn bounded(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Scan(s) => s.source.bounded(),
        LogicalPlan::Values(_) => true,
        other => other.inputs().iter().all(|i| bounded(i)),
    }
}
