//! Building plan nodes: every operation resolves and type-checks its expressions against its
//! input, so errors point at the call that caused them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::DataType;

use crate::error::PlanError;
use crate::expr::typing::{common_type, infer};
use crate::expr::{Column, Expr, SortExpr};
use crate::plan::{
    Aggregate, Correlate, Distinct, Filter, Join, JoinKind, Limit, LogicalPlan, Projection, Scan,
    SetOpKind, SetOperation, Sort, SubqueryAlias, Union, Values,
};
use crate::schema::{PlanField, PlanSchema};
use crate::source::{TableSourceRef, TableUdfRef};

type PlanRef = Arc<LogicalPlan>;

/// The output field `expr` gives over `input`.
pub fn field_of(expr: &Expr, input: &PlanSchema, operation: &str) -> Result<PlanField, PlanError> {
    let (data_type, nullable) = infer(expr, input, operation)?;
    let base = match expr.unalias() {
        Expr::Column(c) => Some(input.field(input.index_of(c, operation)?).clone()),
        _ => None,
    };
    Ok(match (base, expr) {
        // A plain column keeps its qualifier and time attribute unless renamed.
        (Some(field), Expr::Column(_)) => field,
        (Some(field), _) => {
            PlanField::new(expr.output_name(), data_type, nullable).with_time(field.time)
        }
        (None, _) => PlanField::new(expr.output_name(), data_type, nullable),
    })
}

fn no_aggregates(exprs: &[&Expr], operation: &str) -> Result<(), PlanError> {
    for e in exprs {
        let mut found = None;
        e.any(&mut |x| {
            if matches!(x, Expr::Aggregate { .. }) {
                found = Some(x.to_string());
                true
            } else {
                false
            }
        });
        if let Some(expr) = found {
            return Err(PlanError::AggregateNotAllowed {
                operation: operation.to_owned(),
                expr,
            });
        }
    }
    Ok(())
}

fn expect_boolean(expr: &Expr, input: &PlanSchema, operation: &str) -> Result<(), PlanError> {
    let (t, _) = infer(expr, input, operation)?;
    if matches!(t, DataType::Boolean | DataType::Null) {
        Ok(())
    } else {
        Err(PlanError::WrongType {
            operation: operation.to_owned(),
            expr: expr.to_string(),
            expected: "BOOLEAN".into(),
            found: t,
        })
    }
}

/// Reading the registered table `name`, qualified by its name.
pub fn scan(name: &str, source: TableSourceRef) -> LogicalPlan {
    let arrow = source.schema();
    let mut schema = PlanSchema::from_arrow(&arrow, Some(name));
    if let Some(spec) = source.event_time() {
        let mut fields = schema.fields().to_vec();
        fields[spec.column].time = Some(crate::schema::TimeAttribute::EventTime);
        schema = PlanSchema::new(fields);
    }
    let schema = schema.with_primary_key(source.primary_key());
    LogicalPlan::Scan(Scan {
        table: name.to_owned(),
        source,
        projection: None,
        schema: Arc::new(schema),
    })
}

/// Literal rows.
pub fn values(batches: Vec<arrow::array::RecordBatch>, schema: PlanSchema) -> LogicalPlan {
    LogicalPlan::Values(Values {
        batches,
        schema: Arc::new(schema),
    })
}

/// `SELECT exprs FROM input`; aggregates make it a global aggregation.
pub fn project(
    input: PlanRef,
    exprs: Vec<Expr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    if exprs.iter().any(Expr::contains_aggregate) {
        return aggregate_select(input, Vec::new(), exprs, operation);
    }
    let exprs = expand_subqueries_in_projection(&input, exprs, operation)?;
    let fields = exprs
        .iter()
        .map(|e| field_of(e, input.schema(), operation))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = PlanSchema::new(fields);
    check_unique_names(&schema, operation)?;
    Ok(LogicalPlan::Projection(Projection {
        input,
        exprs,
        schema: Arc::new(schema),
    }))
}

fn check_unique_names(schema: &PlanSchema, operation: &str) -> Result<(), PlanError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for f in schema.fields() {
        *seen.entry(f.name.as_str()).or_default() += 1;
    }
    match schema.fields().iter().find(|f| seen[f.name.as_str()] > 1) {
        Some(f) => Err(PlanError::DuplicateOutputName {
            operation: operation.to_owned(),
            name: f.name.clone(),
        }),
        None => Ok(()),
    }
}

/// Scalar subqueries in a projection are not decorrelated yet.
fn expand_subqueries_in_projection(
    _input: &PlanRef,
    exprs: Vec<Expr>,
    operation: &str,
) -> Result<Vec<Expr>, PlanError> {
    if exprs.iter().any(Expr::contains_subquery) {
        return Err(PlanError::unsupported(
            operation,
            "a subquery in a projection (filter with it, or join the subquery's table)",
        ));
    }
    Ok(exprs)
}

/// `WHERE predicate`.
pub fn filter(input: PlanRef, predicate: Expr, operation: &str) -> Result<LogicalPlan, PlanError> {
    no_aggregates(&[&predicate], operation)?;
    if predicate.contains_subquery() {
        return crate::decorrelate::filter_with_subqueries(input, predicate, operation);
    }
    expect_boolean(&predicate, input.schema(), operation)?;
    Ok(LogicalPlan::Filter(Filter { input, predicate }))
}

/// `GROUP BY group` with `aggregates` as the output's further columns.
pub fn aggregate(
    input: PlanRef,
    group: Vec<Expr>,
    aggregates: Vec<Expr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    no_aggregates(&group.iter().collect::<Vec<_>>(), operation)?;
    for a in &aggregates {
        if !matches!(a.unalias(), Expr::Aggregate { .. }) {
            // Arbitrary expressions over aggregates go through a projection.
            let mut select = group.clone();
            select.extend(aggregates.iter().cloned());
            return aggregate_select(input, group, select, operation);
        }
    }
    let schema = input.schema();
    let mut fields = Vec::new();
    for g in &group {
        if g.contains_subquery() {
            return Err(PlanError::unsupported(
                operation,
                "a subquery as a group key",
            ));
        }
        fields.push(field_of(g, schema, operation)?);
    }
    for a in &aggregates {
        let (t, n) = infer(a, schema, operation)?;
        fields.push(PlanField::new(a.output_name(), t, n));
    }
    let schema = PlanSchema::new(fields).with_primary_key(if group.is_empty() {
        None
    } else {
        Some((0..group.len()).collect())
    });
    check_unique_names(&schema, operation)?;
    Ok(LogicalPlan::Aggregate(Aggregate {
        input,
        group,
        aggregates,
        schema: Arc::new(schema),
    }))
}

/// `SELECT select FROM input GROUP BY group`, where `select` mixes group keys and expressions
/// over aggregates: an aggregate node, then a projection.
pub fn aggregate_select(
    input: PlanRef,
    group: Vec<Expr>,
    select: Vec<Expr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    // Collect the distinct aggregate calls, named by their text.
    let mut calls: Vec<Expr> = Vec::new();
    for e in &select {
        e.any(&mut |x| {
            if let Expr::Aggregate { .. } = x
                && !calls.iter().any(|c| c.to_string() == x.to_string())
            {
                calls.push(x.clone());
            }
            false
        });
    }
    for c in &calls {
        if let Expr::Aggregate { args, .. } = c
            && args.iter().any(Expr::contains_aggregate)
        {
            return Err(PlanError::AggregateNotAllowed {
                operation: operation.to_owned(),
                expr: c.to_string(),
            });
        }
    }
    let group_names: Vec<String> = group.iter().map(ToString::to_string).collect();
    let named_calls: Vec<Expr> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| c.clone().alias(format!("$agg{i}")))
        .collect();
    let named_group: Vec<Expr> = group
        .iter()
        .enumerate()
        .map(|(i, g)| match g.unalias() {
            Expr::Column(_) => g.clone(),
            _ => g.clone().alias(format!("$key{i}")),
        })
        .collect();
    let agg = Arc::new(aggregate(
        input.clone(),
        named_group.clone(),
        named_calls,
        operation,
    )?);
    let agg_schema = agg.schema().clone();
    // Rewrite each selected expression over the aggregate's output.
    let mut projected = Vec::new();
    for e in select {
        let name = e.output_name();
        let mut missing: Option<Column> = None;
        let rewritten =
            rewrite_over_aggregate(&e, &group, &group_names, &calls, &agg_schema, &mut missing);
        if let Some(column) = missing {
            return Err(PlanError::NotGroupedOrAggregated {
                operation: operation.to_owned(),
                column: column.to_string(),
            });
        }
        let rewritten = match rewritten.unalias() {
            Expr::Column(c) if c.name == name => rewritten.unalias().clone(),
            _ => rewritten.alias(name),
        };
        projected.push(rewritten);
    }
    project(agg, projected, operation)
}

fn rewrite_over_aggregate(
    e: &Expr,
    group: &[Expr],
    group_names: &[String],
    calls: &[Expr],
    agg_schema: &PlanSchema,
    missing: &mut Option<Column>,
) -> Expr {
    let text = e.unalias().to_string();
    if let Some(i) = group_names
        .iter()
        .position(|g| *g == text || *g == e.to_string())
    {
        let field = agg_schema.field(i);
        return Expr::Column(Column {
            relation: field.qualifier.as_deref().map(str::to_owned),
            name: field.name.clone(),
        });
    }
    if let Expr::Aggregate { .. } = e
        && let Some(i) = calls.iter().position(|c| c.to_string() == text)
    {
        return Expr::Column(Column::new(format!("$agg{i}")));
    }
    if let Expr::Column(c) = e {
        // A column equal to a group key written another way (qualified or not).
        for (i, g) in group.iter().enumerate() {
            if let Expr::Column(gc) = g.unalias()
                && gc.name == c.name
                && (c.relation.is_none() || gc.relation.is_none() || gc.relation == c.relation)
            {
                let field = agg_schema.field(i);
                return Expr::Column(Column {
                    relation: field.qualifier.as_deref().map(str::to_owned),
                    name: field.name.clone(),
                });
            }
        }
        if missing.is_none() {
            *missing = Some(c.clone());
        }
        return e.clone();
    }
    e.clone().transform_children(&mut |child| {
        rewrite_over_aggregate(&child, group, group_names, calls, agg_schema, missing)
    })
}

/// A join of `left` and `right` on `condition` (over both sides' columns). Equalities between a
/// left-only and a right-only expression become the hash keys; the rest stays a filter.
pub fn join(
    left: PlanRef,
    right: PlanRef,
    kind: JoinKind,
    condition: Option<Expr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let (ls, rs) = (left.schema().clone(), right.schema().clone());
    let joined = ls.join(&rs);
    // Unqualified duplicates cannot be told apart afterwards.
    for f in rs.fields() {
        if ls.fields().iter().any(|l| {
            l.name == f.name
                && (l.qualifier == f.qualifier || l.qualifier.is_none() || f.qualifier.is_none())
        }) && !kind.left_only()
        {
            return Err(PlanError::DuplicateOutputName {
                operation: operation.to_owned(),
                name: f.name.clone(),
            });
        }
    }
    let mut on = Vec::new();
    let mut rest = Vec::new();
    if let Some(condition) = &condition {
        no_aggregates(&[condition], operation)?;
        if condition.contains_subquery() {
            return Err(PlanError::unsupported(
                operation,
                "a subquery in a join condition",
            ));
        }
        expect_boolean(condition, &joined, operation)?;
        for conjunct in split_conjunction(condition.clone()) {
            match equi_pair(&conjunct, &ls, &rs) {
                Some(pair) => on.push(pair),
                None => rest.push(conjunct),
            }
        }
    }
    for (l, r) in &on {
        let (lt, _) = infer(l, &ls, operation)?;
        let (rt, _) = infer(r, &rs, operation)?;
        if common_type(&lt, &rt).is_none() {
            return Err(PlanError::TypeMismatch {
                operation: operation.to_owned(),
                expr: format!("{l} = {r}"),
                message: format!("cannot compare {lt} with {rt}"),
            });
        }
    }
    let filter = conjunction(rest);
    let pad = |fields: &[PlanField], pad: bool| -> Vec<PlanField> {
        fields
            .iter()
            .map(|f| PlanField {
                nullable: f.nullable || pad,
                ..f.clone()
            })
            .collect()
    };
    let schema = match kind {
        JoinKind::Semi | JoinKind::Anti => (*ls).clone(),
        _ => {
            let mut fields = pad(
                ls.fields(),
                matches!(kind, JoinKind::Right | JoinKind::Full),
            );
            fields.extend(pad(
                rs.fields(),
                matches!(kind, JoinKind::Left | JoinKind::Full),
            ));
            PlanSchema::new(fields)
        }
    };
    Ok(LogicalPlan::Join(Join {
        left,
        right,
        kind,
        on,
        filter,
        null_equals_null: false,
        interval: None,
        schema: Arc::new(schema),
    }))
}

/// Splits `a AND b AND c` into its conjuncts.
pub fn split_conjunction(e: Expr) -> Vec<Expr> {
    match e {
        Expr::Binary {
            left,
            op: crate::expr::BinaryOp::And,
            right,
        } => {
            let mut out = split_conjunction(*left);
            out.extend(split_conjunction(*right));
            out
        }
        Expr::Alias(e, _) => split_conjunction(*e),
        other => vec![other],
    }
}

/// `a AND b AND ...`, or `None` for no conjuncts.
pub fn conjunction(conjuncts: Vec<Expr>) -> Option<Expr> {
    conjuncts.into_iter().reduce(Expr::and)
}

fn resolves_in(e: &Expr, schema: &PlanSchema) -> bool {
    let columns = e.columns();
    !columns.is_empty()
        && columns.iter().all(|c| schema.index_of(c, "").is_ok())
        && !e.any(&mut |x| matches!(x, Expr::OuterColumn(_)))
}

fn equi_pair(e: &Expr, left: &PlanSchema, right: &PlanSchema) -> Option<(Expr, Expr)> {
    let Expr::Binary {
        left: a,
        op: crate::expr::BinaryOp::Eq,
        right: b,
    } = e
    else {
        return None;
    };
    let joined = left.join(right);
    // Each side must resolve unambiguously in the joined schema, and in exactly one input.
    let unambiguous = |x: &Expr| x.columns().iter().all(|c| joined.index_of(c, "").is_ok());
    if !unambiguous(a) || !unambiguous(b) {
        return None;
    }
    let only = |x: &Expr, this: &PlanSchema, other: &PlanSchema| {
        resolves_in(x, this) && x.columns().iter().all(|c| other.index_of(c, "").is_err())
    };
    if only(a, left, right) && only(b, right, left) {
        Some(((**a).clone(), (**b).clone()))
    } else if only(b, left, right) && only(a, right, left) {
        Some(((**b).clone(), (**a).clone()))
    } else {
        None
    }
}

/// `UNION ALL` of inputs with the same number of columns and compatible types.
pub fn union(inputs: Vec<PlanRef>, operation: &str) -> Result<LogicalPlan, PlanError> {
    let first = inputs
        .first()
        .ok_or_else(|| PlanError::invalid(operation, "needs at least one input"))?
        .schema()
        .clone();
    let mut fields: Vec<PlanField> = first
        .fields()
        .iter()
        .map(|f| PlanField {
            qualifier: None,
            ..f.clone()
        })
        .collect();
    for input in &inputs[1..] {
        let s = input.schema();
        if s.len() != first.len() {
            return Err(PlanError::SchemaMismatch {
                operation: operation.to_owned(),
                message: format!(
                    "the inputs have {} and {} columns ({first} and {s}); select the same columns on both sides",
                    first.len(),
                    s.len()
                ),
            });
        }
        for (f, other) in fields.iter_mut().zip(s.fields()) {
            let t = common_type(&f.data_type, &other.data_type).ok_or_else(|| {
                PlanError::SchemaMismatch {
                    operation: operation.to_owned(),
                    message: format!(
                        "column {:?} is {} on one side and {} on the other; cast one of them",
                        f.name, f.data_type, other.data_type
                    ),
                }
            })?;
            f.data_type = t;
            f.nullable |= other.nullable;
            if f.time != other.time {
                f.time = None;
            }
        }
    }
    Ok(LogicalPlan::Union(Union {
        inputs,
        schema: Arc::new(PlanSchema::new(fields)),
    }))
}

/// `INTERSECT [ALL]` / `EXCEPT [ALL]`.
pub fn set_operation(
    left: PlanRef,
    right: PlanRef,
    kind: SetOpKind,
    all: bool,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let LogicalPlan::Union(u) = union(vec![left.clone(), right.clone()], operation)? else {
        unreachable!("union builds a union")
    };
    Ok(LogicalPlan::SetOperation(SetOperation {
        left,
        right,
        kind,
        all,
        schema: u.schema,
    }))
}

/// `SELECT DISTINCT *`.
pub fn distinct(input: PlanRef) -> LogicalPlan {
    LogicalPlan::Distinct(Distinct { input })
}

/// `ORDER BY order`.
pub fn sort(
    input: PlanRef,
    order: Vec<SortExpr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    for key in &order {
        no_aggregates(&[&key.expr], operation)?;
        let (t, _) = infer(&key.expr, input.schema(), operation)?;
        if t.is_nested() {
            return Err(PlanError::WrongType {
                operation: operation.to_owned(),
                expr: key.expr.to_string(),
                expected: "an orderable type".into(),
                found: t,
            });
        }
    }
    Ok(LogicalPlan::Sort(Sort {
        input,
        order,
        fetch: None,
    }))
}

/// `OFFSET skip FETCH fetch`; folded into a sort directly below.
pub fn limit(input: PlanRef, skip: usize, fetch: Option<usize>) -> LogicalPlan {
    LogicalPlan::Limit(Limit { input, skip, fetch })
}

/// A lateral join with a table function.
pub fn correlate(
    input: PlanRef,
    function: TableUdfRef,
    args: Vec<Expr>,
    kind: JoinKind,
    names: Option<Vec<String>>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    no_aggregates(&args.iter().collect::<Vec<_>>(), operation)?;
    let types = args
        .iter()
        .map(|a| infer(a, input.schema(), operation).map(|(t, _)| t))
        .collect::<Result<Vec<_>, _>>()?;
    let produced = function
        .output_fields(&types)
        .map_err(|message| PlanError::TypeMismatch {
            operation: operation.to_owned(),
            expr: format!("{}(..)", function.name()),
            message,
        })?;
    if let Some(names) = &names
        && names.len() != produced.len()
    {
        return Err(PlanError::invalid(
            operation,
            format!(
                "{} names given for the {} columns of {}",
                names.len(),
                produced.len(),
                function.name()
            ),
        ));
    }
    let mut fields = input.schema().fields().to_vec();
    for (i, f) in produced.iter().enumerate() {
        let name = names
            .as_ref()
            .map_or_else(|| f.name().clone(), |n| n[i].clone());
        fields.push(PlanField::new(
            name,
            f.data_type().clone(),
            f.is_nullable() || kind == JoinKind::Left,
        ));
    }
    let schema = PlanSchema::new(fields);
    schema.check_unique(operation)?;
    Ok(LogicalPlan::Correlate(Correlate {
        input,
        function,
        args,
        kind,
        schema: Arc::new(schema),
    }))
}

/// The input under the alias `alias`.
pub fn alias(input: PlanRef, alias: &str) -> LogicalPlan {
    let schema = Arc::new(input.schema().requalified(alias));
    LogicalPlan::SubqueryAlias(SubqueryAlias {
        input,
        alias: alias.to_owned(),
        schema,
    })
}

/// The position of `expr` in `schema` when it is a bare column, or an error naming `what`.
fn column_position(
    expr: &Expr,
    schema: &PlanSchema,
    what: &str,
    operation: &str,
) -> Result<usize, PlanError> {
    match expr.unalias() {
        Expr::Column(c) => schema.index_of(c, operation),
        other => Err(PlanError::invalid(
            operation,
            format!("{what} must be a column, not `{other}`; add it as a column first"),
        )),
    }
}

/// The position of the event-time column `expr`, which must be a time attribute.
fn time_position(expr: &Expr, schema: &PlanSchema, operation: &str) -> Result<usize, PlanError> {
    let position = column_position(expr, schema, "the time column", operation)?;
    if schema.field(position).time != Some(crate::schema::TimeAttribute::EventTime) {
        return Err(PlanError::invalid(
            operation,
            format!(
                "`{expr}` is not an event-time attribute; declare it with with_watermark on the source (arithmetic on a time attribute makes it a plain timestamp)"
            ),
        ));
    }
    Ok(position)
}

/// Fails unless `input` is insert-only (in streaming mode), naming the node producing updates.
fn insert_only(input: &LogicalPlan, operation: &str, hint: &str) -> Result<(), PlanError> {
    match crate::changelog::updating_producer(input, false) {
        Some(producer) => Err(PlanError::UpdatingInput {
            consumer: operation.to_owned(),
            producer,
            hint: hint.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Top-N: the first `n` rows of each partition of `partition_by` in `order`, with the row
/// number as the column `rank_column` when given.
pub fn top_n(
    input: PlanRef,
    partition_by: Vec<Expr>,
    order: Vec<SortExpr>,
    n: u64,
    rank_column: Option<&str>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let schema = input.schema();
    if n == 0 {
        return Err(PlanError::invalid(operation, "n must be at least 1"));
    }
    if order.is_empty() {
        return Err(PlanError::invalid(
            operation,
            "a Top-N needs an order; give at least one sort key",
        ));
    }
    let partition_by = partition_by
        .iter()
        .map(|e| column_position(e, schema, "a partition key", operation))
        .collect::<Result<Vec<_>, _>>()?;
    let order = order
        .iter()
        .map(|k| {
            Ok((
                column_position(&k.expr, schema, "a sort key", operation)?,
                k.ascending,
                k.nulls_first,
            ))
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let mut fields = schema.fields().to_vec();
    if let Some(name) = rank_column {
        fields.push(PlanField::new(name, DataType::Int64, false));
    }
    let out = PlanSchema::new(fields);
    check_unique_names(&out, operation)?;
    Ok(LogicalPlan::TopN(crate::plan::TopN {
        input,
        partition_by,
        order,
        n,
        rank_column: rank_column.map(str::to_owned),
        schema: Arc::new(out),
    }))
}

/// Deduplication: the first or last row per `keys`, by arrival or by the event-time column
/// `time`. The input must be insert-only.
pub fn deduplicate(
    input: PlanRef,
    keys: Vec<Expr>,
    keep: crate::plan::KeepRow,
    time: Option<Expr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let schema = input.schema();
    insert_only(
        &input,
        operation,
        "deduplicate an insert-only table, e.g. before the aggregate",
    )?;
    if keys.is_empty() {
        return Err(PlanError::invalid(
            operation,
            "deduplication needs at least one key column",
        ));
    }
    let keys = keys
        .iter()
        .map(|e| column_position(e, schema, "a key", operation))
        .collect::<Result<Vec<_>, _>>()?;
    let time = time
        .map(|t| time_position(&t, schema, operation))
        .transpose()?;
    Ok(LogicalPlan::Deduplicate(crate::plan::Deduplicate {
        input,
        keys,
        keep,
        time,
    }))
}

/// `aggregates OVER (PARTITION BY partition_by ORDER BY time frame)`: each input row with the
/// aggregates over its frame. The input must be insert-only; `time` an event-time attribute.
pub fn over_aggregate(
    input: PlanRef,
    partition_by: Vec<Expr>,
    time: Expr,
    frame: crate::plan::OverWindow,
    aggregates: Vec<Expr>,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let schema = input.schema();
    insert_only(&input, operation, "OVER aggregates read insert-only tables")?;
    let partition_by = partition_by
        .iter()
        .map(|e| column_position(e, schema, "a partition key", operation))
        .collect::<Result<Vec<_>, _>>()?;
    let time = time_position(&time, schema, operation)?;
    if aggregates.is_empty() {
        return Err(PlanError::invalid(operation, "give at least one aggregate"));
    }
    let mut fields = schema.fields().to_vec();
    for a in &aggregates {
        match a.unalias() {
            Expr::Aggregate {
                func: crate::expr::AggregateFunction::User(_),
                ..
            } => {
                return Err(PlanError::unsupported(
                    operation,
                    format!("the user aggregate `{a}` over a window frame"),
                ));
            }
            Expr::Aggregate { args, filter, .. } => {
                let nested: Vec<&Expr> = args.iter().chain(filter.as_deref()).collect();
                no_aggregates(&nested, operation)?;
            }
            _ => {
                return Err(PlanError::invalid(
                    operation,
                    format!("`{a}` is not an aggregate; OVER computes aggregates only"),
                ));
            }
        }
        let (t, n) = infer(a, schema, operation)?;
        fields.push(PlanField::new(a.output_name(), t, n));
    }
    let out = PlanSchema::new(fields);
    check_unique_names(&out, operation)?;
    Ok(LogicalPlan::OverAggregate(crate::plan::OverAggregate {
        input,
        partition_by,
        time,
        frame,
        aggregates,
        schema: Arc::new(out),
    }))
}

/// An interval join: `left JOIN right ON condition AND right_time + lower <= left_time <=
/// right_time + upper`, both inputs insert-only and both times event-time attributes. The
/// condition needs at least one equality between the sides.
#[allow(clippy::too_many_arguments)]
pub fn interval_join(
    left: PlanRef,
    right: PlanRef,
    kind: JoinKind,
    condition: Expr,
    left_time: Expr,
    right_time: Expr,
    lower_ms: i64,
    upper_ms: i64,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    if !matches!(
        kind,
        JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
    ) {
        return Err(PlanError::unsupported(
            operation,
            format!("a {} interval join", kind.name()),
        ));
    }
    if lower_ms > upper_ms {
        return Err(PlanError::invalid(
            operation,
            format!("the interval [{lower_ms} ms, {upper_ms} ms] is empty; give lower <= upper"),
        ));
    }
    let hint = "interval joins read insert-only tables; join updating tables with join()";
    insert_only(&left, operation, hint)?;
    insert_only(&right, operation, hint)?;
    let left_time = time_position(&left_time, left.schema(), operation)?;
    let right_time = time_position(&right_time, right.schema(), operation)?;
    let LogicalPlan::Join(mut join) = join(left, right, kind, Some(condition), operation)? else {
        unreachable!("join builds a join")
    };
    if join.on.is_empty() {
        return Err(PlanError::invalid(
            operation,
            "an interval join needs an equality between the two sides in its condition",
        ));
    }
    join.interval = Some(crate::plan::JoinInterval {
        left_time,
        right_time,
        lower_ms,
        upper_ms,
    });
    Ok(LogicalPlan::Join(join))
}

/// The window table function `window` over the event-time column `time`: the input's columns
/// and `window_start`, `window_end` and `window_time` (a time attribute, for cascading windows).
pub fn window_table(
    input: PlanRef,
    time: Expr,
    window: rivulet_runtime::relational::WindowTvf,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let schema = input.schema();
    let time = time_position(&time, schema, operation)?;
    window
        .validate()
        .map_err(|e| PlanError::invalid(operation, e.to_string()))?;
    insert_only(
        &input,
        operation,
        "window table functions read insert-only tables",
    )?;
    let timestamp = match &schema.field(time).data_type {
        DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.clone()),
        _ => DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
    };
    let mut fields = schema.fields().to_vec();
    for name in ["window_start", "window_end", "window_time"] {
        let time = (name == "window_time").then_some(crate::schema::TimeAttribute::EventTime);
        fields.push(PlanField::new(name, timestamp.clone(), false).with_time(time));
    }
    let out = PlanSchema::new(fields);
    check_unique_names(&out, operation)?;
    Ok(LogicalPlan::WindowTable(crate::plan::WindowTable {
        input,
        time,
        window,
        schema: Arc::new(out),
    }))
}
