//! Lowering the stateful relational nodes: aggregates, distinct, joins (regular and interval),
//! set operations, Top-N, deduplication and OVER aggregates.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use rivulet_runtime::exchange::ArrowKeySelector;
use rivulet_runtime::relational::dedup::{DedupOrder, DeduplicateOperator, DeduplicateSpec, Keep};
use rivulet_runtime::relational::join::{JoinMode, JoinOperator, JoinSpec, JoinType};
use rivulet_runtime::relational::over::{OverAggregateOperator, OverAggregateSpec, OverFrame};
use rivulet_runtime::relational::rank::{RankOperator, RankSpec, SortKey as RankKey};
use rivulet_runtime::relational::set_op::{SetOpOperator, SetOpType};
use rivulet_runtime::relational::window::{
    RankSortKey, WindowColumns, WindowJoinOperator, WindowJoinSpec, WindowRankOperator,
    WindowRankSpec,
};
use rivulet_runtime::relational::{
    AggregateCall, AggregateKind, EmitMode, GroupAggregateOperator, GroupAggregateSpec,
    IntervalJoinOperator, IntervalJoinSpec, PhysicalExprRef, WindowAggregateOperator,
    WindowAggregateSpec, WindowAssignOperator,
};
use rivulet_runtime::{ChangelogBatch, Stream};

use super::{PhysicalPlanner, create_physical_expr};
use crate::error::PlanError;
use crate::expr::typing::{common_type, infer};
use crate::expr::{AggregateFunction, Column, Expr};
use crate::plan::{
    Aggregate, Deduplicate, Join, JoinKind, KeepRow, LogicalPlan, OverAggregate, OverWindow,
    SetOpKind, SetOperation, TopN, WindowTable,
};
use crate::schema::{PlanField, PlanSchema};

type PlanRef = Arc<LogicalPlan>;

impl PhysicalPlanner<'_> {
    /// `GROUP BY`: a Calc computing keys, arguments and filters, a hash exchange on the keys
    /// (everything to one subtask for a global aggregate), and the group aggregate.
    pub(super) fn lower_aggregate(
        &mut self,
        agg: &Aggregate,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        if let Some((w, roles)) = crate::plan::window_aggregation(agg) {
            return self.lower_window_aggregate(agg, w, &roles);
        }
        let input = self.lower(&agg.input)?;
        let schema = agg.input.schema();
        let mut pre: Vec<PhysicalExprRef> = Vec::new();
        let mut pre_fields: Vec<Field> = Vec::new();
        let mut push = |e: &Expr, name: String| -> Result<usize, PlanError> {
            let (t, n) = infer(e, schema, "aggregate")?;
            pre.push(create_physical_expr(e, schema)?);
            pre_fields.push(Field::new(name, t, n));
            Ok(pre.len() - 1)
        };
        for (i, g) in agg.group.iter().enumerate() {
            push(g, format!("$g{i}"))?;
        }
        let mut calls = Vec::new();
        for (i, a) in agg.aggregates.iter().enumerate() {
            let out = agg.schema.field(agg.group.len() + i).to_arrow();
            calls.push(aggregate_call(a, out, "aggregate", &mut push, i)?);
        }
        let pre_schema = Arc::new(Schema::new(pre_fields));
        let keys = agg.group.len();
        let stream = self.calc(
            &input,
            None,
            Some(pre),
            Arc::clone(&pre_schema),
            "AggregateInput",
        );
        let spec = GroupAggregateSpec {
            group_columns: (0..keys).collect(),
            aggregates: calls,
            input_schema: pre_schema,
            output_schema: agg.schema.to_arrow(),
            emit: if self.config.batch {
                EmitMode::Final
            } else {
                EmitMode::Changelog
            },
        };
        self.group_aggregate(stream, keys, spec, "GroupAggregate")
    }

    fn group_aggregate(
        &mut self,
        stream: Stream<ChangelogBatch>,
        keys: usize,
        spec: GroupAggregateSpec,
        name: &str,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        GroupAggregateOperator::new(spec.clone())
            .map_err(|e| PlanError::invalid("aggregate", e.to_string()))?;
        let uid = self.uid("aggregate");
        let routed = if keys == 0 {
            stream.global()
        } else {
            stream.partition_by_key(ArrowKeySelector::new(0..keys))
        };
        let out = routed.transform(name, move || {
            GroupAggregateOperator::new(spec.clone()).expect("the spec was validated when planned")
        });
        Ok(if keys == 0 {
            out.set_parallelism(1)
        } else {
            out
        }
        .uid(&uid))
    }

    /// `DISTINCT`: a group aggregate keyed by every column, without aggregates.
    pub(super) fn lower_distinct(
        &mut self,
        input: &PlanRef,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let stream = self.lower(input)?;
        let schema = input.schema().to_arrow();
        let spec = GroupAggregateSpec {
            group_columns: (0..schema.fields().len()).collect(),
            aggregates: Vec::new(),
            input_schema: Arc::clone(&schema),
            output_schema: schema,
            emit: if self.config.batch {
                EmitMode::Final
            } else {
                EmitMode::Changelog
            },
        };
        let keys = input.schema().len();
        self.group_aggregate(stream, keys, spec, "Distinct")
    }

    /// A join: each side extended by its key expressions (cast to their common type) when they
    /// are not plain columns of that type, both sides hashed on the keys, the join operator, and
    /// a projection dropping the added key columns.
    pub(super) fn lower_join(&mut self, join: &Join) -> Result<Stream<ChangelogBatch>, PlanError> {
        let (ls, rs) = (join.left.schema(), join.right.schema());
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut left_extra: Vec<(Expr, PlanField)> = Vec::new();
        let mut right_extra: Vec<(Expr, PlanField)> = Vec::new();
        for (i, (l, r)) in join.on.iter().enumerate() {
            let (lt, ln) = infer(l, ls, "join")?;
            let (rt, rn) = infer(r, rs, "join")?;
            let common = common_type(&lt, &rt).ok_or_else(|| PlanError::TypeMismatch {
                operation: "join".into(),
                expr: format!("{l} = {r}"),
                message: format!("cannot compare {lt} with {rt}"),
            })?;
            let key = |e: &Expr,
                       t: &arrow::datatypes::DataType,
                       n: bool,
                       schema: &PlanSchema,
                       extra: &mut Vec<(Expr, PlanField)>,
                       side: &str|
             -> Result<usize, PlanError> {
                if let Expr::Column(c) = e.unalias()
                    && *t == common
                {
                    return schema.index_of(c, "join");
                }
                let e = if *t == common {
                    e.clone()
                } else {
                    e.clone().cast(common.clone())
                };
                extra.push((
                    e,
                    PlanField::new(format!("${side}key{i}"), common.clone(), n),
                ));
                Ok(schema.len() + extra.len() - 1)
            };
            left_keys.push(key(l, &lt, ln, ls, &mut left_extra, "l")?);
            right_keys.push(key(r, &rt, rn, rs, &mut right_extra, "r")?);
        }
        let left = self.lower(&join.left)?;
        let right = self.lower(&join.right)?;
        let (left, ls_ext) = self.extend(left, ls, &left_extra)?;
        let (right, rs_ext) = self.extend(right, rs, &right_extra)?;
        let joined_ext = ls_ext.join(&rs_ext);
        let filter = join
            .filter
            .as_ref()
            .map(|f| create_physical_expr(f, &joined_ext))
            .transpose()?;
        let join_type = match join.kind {
            JoinKind::Inner => JoinType::Inner,
            JoinKind::Left => JoinType::Left,
            JoinKind::Right => JoinType::Right,
            JoinKind::Full => JoinType::Full,
            JoinKind::Semi => JoinType::Semi,
            JoinKind::Anti => JoinType::Anti,
        };
        // The operator's output: the extended sides (padded side nullable), or the left side.
        let pad = |s: &PlanSchema, pad: bool| -> Vec<Field> {
            s.fields()
                .iter()
                .map(|f| Field::new(&f.name, f.data_type.clone(), f.nullable || pad))
                .collect()
        };
        let output_fields: Vec<Field> = match join.kind {
            JoinKind::Semi | JoinKind::Anti => pad(&ls_ext, false),
            kind => {
                let mut fields = pad(&ls_ext, matches!(kind, JoinKind::Right | JoinKind::Full));
                fields.extend(pad(
                    &rs_ext,
                    matches!(kind, JoinKind::Left | JoinKind::Full),
                ));
                fields
            }
        };
        let output_schema: SchemaRef = Arc::new(Schema::new(output_fields));
        let out = match &join.interval {
            Some(interval) => {
                let mut spec = IntervalJoinSpec::new(
                    join_type,
                    ls_ext.to_arrow(),
                    rs_ext.to_arrow(),
                    Arc::clone(&output_schema),
                )
                .with_keys(left_keys.clone(), right_keys.clone())
                .with_interval(
                    interval.left_time,
                    interval.right_time,
                    interval.lower_ms,
                    interval.upper_ms,
                );
                spec.filter = filter;
                spec.eval = self.ctx();
                IntervalJoinOperator::new(spec.clone())
                    .map_err(|e| PlanError::invalid("interval_join", e.to_string()))?;
                let uid = self.uid("interval-join");
                let name = format!("IntervalJoin({})", join.kind.name());
                left.partition_by_key(ArrowKeySelector::new(left_keys))
                    .transform_two_input(
                        &right.partition_by_key(ArrowKeySelector::new(right_keys)),
                        &name,
                        move || {
                            IntervalJoinOperator::new(spec.clone())
                                .expect("the spec was validated when planned")
                        },
                    )
                    .uid(&uid)
            }
            None => match crate::plan::window_join(join) {
                Some((start, end)) => {
                    let window = |keys: &[usize]| WindowColumns::new(keys[start], keys[end]);
                    let (lw, rw) = (window(&left_keys), window(&right_keys));
                    let others = |keys: &[usize]| -> Vec<usize> {
                        keys.iter()
                            .enumerate()
                            .filter(|(i, _)| *i != start && *i != end)
                            .map(|(_, &k)| k)
                            .collect()
                    };
                    let (lk, rk) = (others(&left_keys), others(&right_keys));
                    let mut spec = WindowJoinSpec::new(
                        join_type,
                        ls_ext.to_arrow(),
                        lw,
                        rs_ext.to_arrow(),
                        rw,
                        Arc::clone(&output_schema),
                    )
                    .with_keys(lk.clone(), rk.clone());
                    spec.filter = filter;
                    spec.eval = self.ctx();
                    WindowJoinOperator::new(spec.clone())
                        .map_err(|e| PlanError::invalid("window join", e.to_string()))?;
                    let uid = self.uid("window-join");
                    let name = format!("WindowJoin({})", join.kind.name());
                    let out = Self::keyed(left, &lk).transform_two_input(
                        &Self::keyed(right, &rk),
                        &name,
                        move || {
                            WindowJoinOperator::new(spec.clone())
                                .expect("the spec was validated when planned")
                        },
                    );
                    if lk.is_empty() {
                        out.set_parallelism(1)
                    } else {
                        out
                    }
                    .uid(&uid)
                }
                None => self.regular_join(
                    join,
                    join_type,
                    left,
                    right,
                    left_keys,
                    right_keys,
                    filter,
                    &ls_ext,
                    &rs_ext,
                    &output_schema,
                )?,
            },
        };
        if left_extra.is_empty() && right_extra.is_empty() {
            return Ok(out);
        }
        self.drop_join_keys(join, out, ls, rs, &ls_ext, &output_schema)
    }

    #[allow(clippy::too_many_arguments)]
    fn regular_join(
        &mut self,
        join: &Join,
        join_type: JoinType,
        left: Stream<ChangelogBatch>,
        right: Stream<ChangelogBatch>,
        left_keys: Vec<usize>,
        right_keys: Vec<usize>,
        filter: Option<PhysicalExprRef>,
        ls_ext: &PlanSchema,
        rs_ext: &PlanSchema,
        output_schema: &SchemaRef,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let spec = JoinSpec {
            join_type,
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            null_equals_null: join.null_equals_null,
            filter,
            left_schema: ls_ext.to_arrow(),
            right_schema: rs_ext.to_arrow(),
            output_schema: Arc::clone(output_schema),
            mode: if self.config.batch {
                JoinMode::Batch
            } else {
                JoinMode::Streaming
            },
            eval: self.ctx(),
        };
        JoinOperator::new(spec.clone()).map_err(|e| PlanError::invalid("join", e.to_string()))?;
        let uid = self.uid("join");
        let keyed = !left_keys.is_empty();
        let (left, right) = if keyed {
            (
                left.partition_by_key(ArrowKeySelector::new(left_keys)),
                right.partition_by_key(ArrowKeySelector::new(right_keys)),
            )
        } else {
            (left.global(), right.global())
        };
        let name = format!("Join({})", join.kind.name());
        let out = left.transform_two_input(&right, &name, move || {
            JoinOperator::new(spec.clone()).expect("the spec was validated when planned")
        });
        Ok(if keyed { out } else { out.set_parallelism(1) }.uid(&uid))
    }

    /// Drops the key columns a join's sides were extended by.
    fn drop_join_keys(
        &mut self,
        join: &Join,
        out: Stream<ChangelogBatch>,
        ls: &PlanSchema,
        rs: &PlanSchema,
        ls_ext: &PlanSchema,
        output_schema: &SchemaRef,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let mut keep: Vec<usize> = (0..ls.len()).collect();
        if !join.kind.left_only() {
            keep.extend((0..rs.len()).map(|i| ls_ext.len() + i));
        }
        let out_plan_schema = PlanSchema::new(
            output_schema
                .fields()
                .iter()
                .map(|f| PlanField::new(f.name().clone(), f.data_type().clone(), f.is_nullable()))
                .collect(),
        );
        let exprs = keep
            .into_iter()
            .map(|i| {
                Arc::new(rivulet_runtime::relational::expr::ColumnExpr::new(
                    out_plan_schema.field(i).name.clone(),
                    i,
                    out_plan_schema.field(i).data_type.clone(),
                    out_plan_schema.field(i).nullable,
                )) as PhysicalExprRef
            })
            .collect();
        Ok(self.calc(
            &out,
            None,
            Some(exprs),
            join.schema.to_arrow(),
            "DropJoinKeys",
        ))
    }

    /// `stream` of `schema` with `extra` computed columns appended.
    fn extend(
        &mut self,
        stream: Stream<ChangelogBatch>,
        schema: &PlanSchema,
        extra: &[(Expr, PlanField)],
    ) -> Result<(Stream<ChangelogBatch>, PlanSchema), PlanError> {
        if extra.is_empty() {
            return Ok((stream, schema.clone()));
        }
        let mut exprs: Vec<PhysicalExprRef> = (0..schema.len())
            .map(|i| {
                let f = schema.field(i);
                create_physical_expr(
                    &Expr::Column(Column {
                        relation: f.qualifier.as_deref().map(str::to_owned),
                        name: f.name.clone(),
                    }),
                    schema,
                )
            })
            .collect::<Result<_, _>>()?;
        let mut fields = schema.fields().to_vec();
        for (e, field) in extra {
            exprs.push(create_physical_expr(e, schema)?);
            fields.push(field.clone());
        }
        let extended = PlanSchema::new(fields);
        let stream = self.calc(&stream, None, Some(exprs), extended.to_arrow(), "JoinKeys");
        Ok((stream, extended))
    }

    /// `INTERSECT` / `EXCEPT`: both sides conformed to the output's types and hashed on every
    /// column.
    pub(super) fn lower_set_operation(
        &mut self,
        op: &SetOperation,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let left = self.lower(&op.left)?;
        let left = self.conform(left, op.left.schema(), &op.schema)?;
        let right = self.lower(&op.right)?;
        let right = self.conform(right, op.right.schema(), &op.schema)?;
        let schema = op.schema.to_arrow();
        let kind = match op.kind {
            SetOpKind::Intersect => SetOpType::Intersect,
            SetOpKind::Except => SetOpType::Except,
        };
        let mode = if self.config.batch {
            JoinMode::Batch
        } else {
            JoinMode::Streaming
        };
        let all = op.all;
        SetOpOperator::new(kind, all, Arc::clone(&schema), mode)
            .map_err(|e| PlanError::invalid("set operation", e.to_string()))?;
        let width = schema.fields().len();
        let uid = self.uid("setop");
        let name = match (op.kind, op.all) {
            (SetOpKind::Intersect, false) => "Intersect",
            (SetOpKind::Intersect, true) => "IntersectAll",
            (SetOpKind::Except, false) => "Except",
            (SetOpKind::Except, true) => "ExceptAll",
        };
        Ok(left
            .partition_by_key(ArrowKeySelector::new(0..width))
            .transform_two_input(
                &right.partition_by_key(ArrowKeySelector::new(0..width)),
                name,
                move || {
                    SetOpOperator::new(kind, all, Arc::clone(&schema), mode)
                        .expect("the operator was validated when planned")
                },
            )
            .uid(&uid))
    }
}

/// The runtime call of the aggregate `a`, producing `output`; `push` adds an argument or filter
/// expression to the input Calc and returns its position there.
fn aggregate_call(
    a: &Expr,
    output: Field,
    operation: &str,
    push: &mut dyn FnMut(&Expr, String) -> Result<usize, PlanError>,
    i: usize,
) -> Result<AggregateCall, PlanError> {
    let Expr::Aggregate {
        func,
        args,
        distinct,
        filter,
    } = a.unalias()
    else {
        return Err(PlanError::invalid(
            operation,
            format!("`{a}` is not an aggregate"),
        ));
    };
    let positions = args
        .iter()
        .enumerate()
        .map(|(j, arg)| push(arg, format!("$a{i}_{j}")))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = filter
        .as_ref()
        .map(|f| push(f, format!("$f{i}")))
        .transpose()?;
    let kind = match (func, args.is_empty()) {
        (AggregateFunction::Count, true) => AggregateKind::CountStar,
        (AggregateFunction::Count, false) => AggregateKind::Count,
        (AggregateFunction::Sum, _) => AggregateKind::Sum,
        (AggregateFunction::Avg, _) => AggregateKind::Avg,
        (AggregateFunction::Min, _) => AggregateKind::Min,
        (AggregateFunction::Max, _) => AggregateKind::Max,
        (AggregateFunction::User(udf), _) => AggregateKind::User(Arc::clone(udf)),
    };
    Ok(AggregateCall {
        kind,
        args: positions,
        distinct: *distinct,
        filter,
        output,
    })
}

impl PhysicalPlanner<'_> {
    /// `stream` hashed on `keys`, or gathered on one subtask (which the operator after it then
    /// runs on) when there are none.
    fn keyed(stream: Stream<ChangelogBatch>, keys: &[usize]) -> Stream<ChangelogBatch> {
        if keys.is_empty() {
            stream.global()
        } else {
            stream.partition_by_key(ArrowKeySelector::new(keys.to_vec()))
        }
    }

    /// Top-N: a hash exchange on the partition columns and the rank operator.
    pub(super) fn lower_top_n(&mut self, t: &TopN) -> Result<Stream<ChangelogBatch>, PlanError> {
        if let Some((start, end, others)) = crate::plan::window_top_n(t) {
            return self.lower_window_top_n(t, start, end, others);
        }
        let input = self.lower(&t.input)?;
        let spec = RankSpec::new(
            t.input.schema().to_arrow(),
            t.partition_by.clone(),
            t.order
                .iter()
                .map(|&(column, ascending, nulls_first)| RankKey {
                    column,
                    descending: !ascending,
                    nulls_first,
                }),
            t.n,
        )
        .with_rank_column(t.rank_column.is_some())
        .with_insert_only_input(
            crate::changelog::changelog_mode(&t.input, self.config.batch).is_insert_only(),
        )
        .with_output_schema(t.schema.to_arrow());
        RankOperator::new(spec.clone()).map_err(|e| PlanError::invalid("top_n", e.to_string()))?;
        let uid = self.uid("rank");
        let out = Self::keyed(input, &t.partition_by).transform("Rank", move || {
            RankOperator::new(spec.clone()).expect("the spec was validated when planned")
        });
        Ok(if t.partition_by.is_empty() {
            out.set_parallelism(1)
        } else {
            out
        }
        .uid(&uid))
    }

    /// Deduplication: a hash exchange on the keys and the deduplicate operator. Keep-first by
    /// event time waits for the watermark, so its output is insert-only.
    pub(super) fn lower_deduplicate(
        &mut self,
        d: &Deduplicate,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        if let Some((start, end, others)) = crate::plan::window_deduplicate(d) {
            let input = self.lower(&d.input)?;
            let time = d.time.expect("a window deduplication orders by time");
            let spec = WindowRankSpec::deduplicate(
                d.input.schema().to_arrow(),
                WindowColumns::new(start, end),
                others.clone(),
                time,
                d.keep == KeepRow::Last,
            );
            WindowRankOperator::new(spec.clone())
                .map_err(|e| PlanError::invalid("deduplicate", e.to_string()))?;
            let uid = self.uid("window-deduplicate");
            let out = Self::keyed(input, &others).transform("WindowDeduplicate", move || {
                WindowRankOperator::new(spec.clone()).expect("the spec was validated when planned")
            });
            return Ok(if others.is_empty() {
                out.set_parallelism(1)
            } else {
                out
            }
            .uid(&uid));
        }
        let input = self.lower(&d.input)?;
        let order = match d.time {
            Some(t) => DedupOrder::EventTime(t),
            None => DedupOrder::Arrival,
        };
        let keep = match d.keep {
            KeepRow::First => Keep::First,
            KeepRow::Last => Keep::Last,
        };
        let schema = d.input.schema().to_arrow();
        let spec = DeduplicateSpec::new(Arc::clone(&schema), d.keys.clone(), keep, order)
            .with_insert_only_on_watermark(d.keep == KeepRow::First && d.time.is_some());
        DeduplicateOperator::new(spec.clone())
            .map_err(|e| PlanError::invalid("deduplicate", e.to_string()))?;
        let uid = self.uid("deduplicate");
        Ok(Self::keyed(input, &d.keys)
            .transform("Deduplicate", move || {
                DeduplicateOperator::new(spec.clone()).expect("the spec was validated when planned")
            })
            .uid(&uid))
    }

    /// OVER: a Calc appending the aggregates' arguments, a hash exchange on the partition
    /// columns, the OVER operator, and a Calc dropping the arguments again.
    pub(super) fn lower_over(
        &mut self,
        o: &OverAggregate,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let input = self.lower(&o.input)?;
        let schema = o.input.schema();
        let width = schema.len();
        let mut pre: Vec<PhysicalExprRef> = Vec::new();
        let mut pre_fields: Vec<Field> = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            pre.push(create_physical_expr(
                &Expr::Column(Column {
                    relation: f.qualifier.as_deref().map(str::to_owned),
                    name: f.name.clone(),
                }),
                schema,
            )?);
            pre_fields.push(Field::new(
                format!("$c{i}"),
                f.data_type.clone(),
                f.nullable,
            ));
        }
        let mut push = |e: &Expr, name: String| -> Result<usize, PlanError> {
            let (t, n) = infer(e, schema, "over")?;
            pre.push(create_physical_expr(e, schema)?);
            pre_fields.push(Field::new(name, t, n));
            Ok(pre.len() - 1)
        };
        let mut calls = Vec::new();
        for (i, a) in o.aggregates.iter().enumerate() {
            let out = o.schema.field(width + i).to_arrow();
            calls.push(aggregate_call(a, out, "over", &mut push, i)?);
        }
        let pre_schema = Arc::new(Schema::new(pre_fields));
        let stream = self.calc(
            &input,
            None,
            Some(pre),
            Arc::clone(&pre_schema),
            "OverInput",
        );
        let frame = match o.frame {
            OverWindow::Rows(preceding) => OverFrame::Rows { preceding },
            OverWindow::Range(preceding_ms) => OverFrame::Range { preceding_ms },
        };
        let spec = OverAggregateSpec::new(
            Arc::clone(&pre_schema),
            o.partition_by.clone(),
            o.time,
            frame,
            calls,
        );
        let over_schema = Arc::clone(&spec.output_schema);
        OverAggregateOperator::new(spec.clone())
            .map_err(|e| PlanError::invalid("over", e.to_string()))?;
        let uid = self.uid("over");
        let out = Self::keyed(stream, &o.partition_by).transform("OverAggregate", move || {
            OverAggregateOperator::new(spec.clone()).expect("the spec was validated when planned")
        });
        let out = if o.partition_by.is_empty() {
            out.set_parallelism(1)
        } else {
            out
        }
        .uid(&uid);
        // Keep the input's columns and the aggregates, dropping the arguments.
        let keep = (0..width).chain((0..o.aggregates.len()).map(|i| pre_schema.fields().len() + i));
        let exprs = keep
            .map(|i| {
                let f = over_schema.field(i);
                Arc::new(rivulet_runtime::relational::expr::ColumnExpr::new(
                    f.name().clone(),
                    i,
                    f.data_type().clone(),
                    f.is_nullable(),
                )) as PhysicalExprRef
            })
            .collect();
        Ok(self.calc(&out, None, Some(exprs), o.schema.to_arrow(), "OverOutput"))
    }
}

impl PhysicalPlanner<'_> {
    /// A window table function on its own: the window columns appended to each row.
    pub(super) fn lower_window_table(
        &mut self,
        w: &WindowTable,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let input = self.lower(&w.input)?;
        let schema = w.input.schema().to_arrow();
        let (time, window) = (w.time, w.window);
        WindowAssignOperator::new(Arc::clone(&schema), time, window)
            .map_err(|e| PlanError::invalid("window", e.to_string()))?;
        Ok(
            input.same_parallelism(input.transform("WindowTable", move || {
                WindowAssignOperator::new(Arc::clone(&schema), time, window)
                    .expect("the window was validated when planned")
            })),
        )
    }

    /// A window aggregation (`GROUP BY window_start, window_end, keys` over a window table
    /// function): a Calc computing the keys, the time and the arguments, a hash exchange on the
    /// keys, the window aggregate (which assigns the windows itself), and a Calc putting the
    /// columns in the aggregate's order.
    pub(super) fn lower_window_aggregate(
        &mut self,
        agg: &Aggregate,
        w: &WindowTable,
        roles: &[Option<usize>],
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let input = self.lower(&w.input)?;
        // Expressions are resolved in the window table's schema, whose first columns are the
        // input's; they must not use the window columns, which the input does not have.
        let schema = w.schema.as_ref();
        let inputs = w.input.schema().len();
        let mut pre: Vec<PhysicalExprRef> = Vec::new();
        let mut pre_fields: Vec<Field> = Vec::new();
        let mut push = |e: &Expr, name: String| -> Result<usize, PlanError> {
            let mut window_column = None;
            e.any(&mut |x| {
                if let Expr::Column(c) = x
                    && schema
                        .index_of(c, "window aggregation")
                        .is_ok_and(|i| i >= inputs)
                {
                    window_column = Some(c.to_string());
                }
                false
            });
            if let Some(c) = window_column {
                return Err(PlanError::unsupported(
                    "window aggregation",
                    format!("`{c}` inside the expression `{e}`; group by the window column itself"),
                ));
            }
            let (t, n) = infer(e, schema, "window aggregation")?;
            pre.push(create_physical_expr(e, schema)?);
            pre_fields.push(Field::new(name, t, n));
            Ok(pre.len() - 1)
        };
        let mut key_of_group = Vec::new();
        for (i, (g, role)) in agg.group.iter().zip(roles).enumerate() {
            if role.is_none() {
                key_of_group.push(Some(push(g, format!("$g{i}"))?));
            } else {
                key_of_group.push(None);
            }
        }
        let keys = key_of_group.iter().flatten().count();
        let time_field = w.input.schema().field(w.time);
        let time = push(
            &Expr::Column(Column {
                relation: time_field.qualifier.as_deref().map(str::to_owned),
                name: time_field.name.clone(),
            }),
            "$time".into(),
        )?;
        let mut calls = Vec::new();
        for (i, a) in agg.aggregates.iter().enumerate() {
            let out = agg.schema.field(agg.group.len() + i).to_arrow();
            calls.push(aggregate_call(a, out, "window aggregation", &mut push, i)?);
        }
        let pre_schema = Arc::new(Schema::new(pre_fields));
        let stream = self.calc(
            &input,
            None,
            Some(pre),
            Arc::clone(&pre_schema),
            "WindowAggregateInput",
        );
        let mut out_fields: Vec<Field> = pre_schema.fields()[..keys]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (name, column) in ["window_start", "window_end", "window_time"]
            .into_iter()
            .zip(w.window_columns())
        {
            out_fields.push(Field::new(
                name,
                schema.field(column).data_type.clone(),
                false,
            ));
        }
        out_fields.extend(calls.iter().map(|c| c.output.clone()));
        let spec = WindowAggregateSpec {
            time_column: time,
            window: w.window,
            group_columns: (0..keys).collect(),
            aggregates: calls,
            input_schema: Arc::clone(&pre_schema),
            output_schema: Arc::new(Schema::new(out_fields)),
        };
        let op_schema = Arc::clone(&spec.output_schema);
        WindowAggregateOperator::new(spec.clone())
            .map_err(|e| PlanError::invalid("window aggregation", e.to_string()))?;
        let uid = self.uid("window-aggregate");
        let key_columns: Vec<usize> = (0..keys).collect();
        let out = Self::keyed(stream, &key_columns).transform("WindowAggregate", move || {
            WindowAggregateOperator::new(spec.clone()).expect("the spec was validated when planned")
        });
        let out = if keys == 0 {
            out.set_parallelism(1)
        } else {
            out
        }
        .uid(&uid);
        // The aggregate's order: its group expressions, then the aggregates.
        let order: Vec<usize> = key_of_group
            .iter()
            .zip(roles)
            .map(|(key, role)| match (key, role) {
                (Some(k), _) => *k,
                (None, Some(r)) => keys + r,
                (None, None) => unreachable!("a group expression is a key or a window column"),
            })
            .chain((0..agg.aggregates.len()).map(|i| keys + 3 + i))
            .collect();
        let exprs = order
            .into_iter()
            .map(|i| {
                let f = op_schema.field(i);
                Arc::new(rivulet_runtime::relational::expr::ColumnExpr::new(
                    f.name().clone(),
                    i,
                    f.data_type().clone(),
                    f.is_nullable(),
                )) as PhysicalExprRef
            })
            .collect();
        Ok(self.calc(
            &out,
            None,
            Some(exprs),
            agg.schema.to_arrow(),
            "WindowAggregateOutput",
        ))
    }
}

impl PhysicalPlanner<'_> {
    /// A window Top-N: a hash exchange on the partition columns besides the window, and the
    /// window rank operator, which emits each window's top rows once the watermark passes it.
    fn lower_window_top_n(
        &mut self,
        t: &TopN,
        start: usize,
        end: usize,
        others: Vec<usize>,
    ) -> Result<Stream<ChangelogBatch>, PlanError> {
        let input = self.lower(&t.input)?;
        let n = usize::try_from(t.n).unwrap_or(usize::MAX);
        let mut spec = WindowRankSpec::top_n(
            t.input.schema().to_arrow(),
            WindowColumns::new(start, end),
            others.clone(),
            t.order
                .iter()
                .map(|&(column, ascending, nulls_first)| RankSortKey {
                    column,
                    descending: !ascending,
                    nulls_first,
                }),
            n,
        );
        if let Some(name) = &t.rank_column {
            spec = spec.with_row_number(name.clone());
        }
        WindowRankOperator::new(spec.clone())
            .map_err(|e| PlanError::invalid("top_n", e.to_string()))?;
        let uid = self.uid("window-rank");
        let out = Self::keyed(input, &others).transform("WindowRank", move || {
            WindowRankOperator::new(spec.clone()).expect("the spec was validated when planned")
        });
        let out = if others.is_empty() {
            out.set_parallelism(1)
        } else {
            out
        }
        .uid(&uid);
        Ok(self.conform_names(out, t))
    }

    /// The window rank's output renamed to the plan's names (the row number's in particular).
    fn conform_names(&mut self, out: Stream<ChangelogBatch>, t: &TopN) -> Stream<ChangelogBatch> {
        let schema = t.schema.to_arrow();
        let exprs = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Arc::new(rivulet_runtime::relational::expr::ColumnExpr::new(
                    f.name().clone(),
                    i,
                    f.data_type().clone(),
                    f.is_nullable(),
                )) as PhysicalExprRef
            })
            .collect();
        self.calc(&out, None, Some(exprs), schema, "WindowRankOutput")
    }
}
