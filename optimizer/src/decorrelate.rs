//! Subqueries in filters, rewritten into joins: `IN` and `EXISTS` become semi joins, their
//! negations anti joins, and scalar subqueries (correlated through equalities under an
//! aggregate, or uncorrelated) left joins with the subquery's one value per key.

use std::sync::Arc;

use crate::builder::{self, conjunction, split_conjunction};
use crate::error::PlanError;
use crate::expr::{BinaryOp, Column, Expr};
use crate::plan::{Aggregate, Filter, JoinKind, LogicalPlan, Projection, SubqueryAlias};

type PlanRef = Arc<LogicalPlan>;

/// Names the subqueries of one filter `$sq0`, `$sq1`, ...: their columns are gone again when the
/// filter is rewritten (semi and anti joins keep the left side; scalar subqueries are projected
/// away), so the names only need to differ within one filter, and plans stay deterministic.
#[derive(Default)]
struct Aliases(usize);

impl Aliases {
    fn fresh(&mut self) -> String {
        self.0 += 1;
        format!("$sq{}", self.0 - 1)
    }
}

fn has_outer(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x, Expr::OuterColumn(_)))
}

/// The outer references of a pulled-up predicate, made ordinary column references.
fn outer_to_column(e: Expr) -> Expr {
    e.transform(&mut |x| match x {
        Expr::OuterColumn(c) => Expr::Column(c),
        other => other,
    })
}

/// Removes the correlated conjuncts from the filters of `plan` (through projections that keep
/// the columns they use, aliases and other filters), returning the uncorrelated plan and the
/// pulled conjuncts.
fn pull_correlated(plan: &PlanRef, operation: &str) -> Result<(PlanRef, Vec<Expr>), PlanError> {
    match plan.as_ref() {
        LogicalPlan::Filter(Filter { input, predicate }) => {
            let (input, mut pulled) = pull_correlated(input, operation)?;
            let (outer, inner): (Vec<Expr>, Vec<Expr>) = split_conjunction(predicate.clone())
                .into_iter()
                .partition(has_outer);
            pulled.extend(outer);
            let plan = match conjunction(inner) {
                Some(p) => Arc::new(builder::filter(input, p, operation)?),
                None => input,
            };
            Ok((plan, pulled))
        }
        LogicalPlan::SubqueryAlias(SubqueryAlias { input, alias, .. }) => {
            let (input, pulled) = pull_correlated(input, operation)?;
            Ok((Arc::new(builder::alias(input, alias)), pulled))
        }
        LogicalPlan::Projection(Projection { input, exprs, .. }) => {
            let (input, pulled) = pull_correlated(input, operation)?;
            if pulled.is_empty() {
                return Ok((plan.clone(), pulled));
            }
            // Keep the inner columns the pulled predicates need.
            let mut exprs = exprs.clone();
            for p in &pulled {
                for c in p.columns() {
                    if !exprs
                        .iter()
                        .any(|e| matches!(e.unalias(), Expr::Column(x) if *x == c))
                    {
                        exprs.push(Expr::Column(c));
                    }
                }
            }
            Ok((Arc::new(builder::project(input, exprs, operation)?), pulled))
        }
        _ => Ok((plan.clone(), Vec::new())),
    }
}

/// A correlated scalar subquery: `[Projection] Aggregate(global) <correlated filters>`, turned
/// into an aggregate grouped by the inner sides of the correlated equalities. Returns the plan
/// and the `(outer expr, inner key column)` pairs to join on.
fn decorrelate_scalar(
    sub: &PlanRef,
    operation: &str,
) -> Result<(PlanRef, Vec<(Expr, Expr)>), PlanError> {
    let (projection, aggregate) = match sub.as_ref() {
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Aggregate(a) => (Some(p), a),
            _ => return uncorrelated(sub, operation),
        },
        LogicalPlan::Aggregate(a) => (None, a),
        _ => return uncorrelated(sub, operation),
    };
    let Aggregate {
        input,
        group,
        aggregates,
        ..
    } = aggregate;
    let (input, pulled) = pull_correlated(input, operation)?;
    if pulled.is_empty() {
        return uncorrelated(sub, operation);
    }
    if !group.is_empty() {
        return Err(PlanError::unsupported(
            operation,
            "a correlated scalar subquery with its own group_by",
        ));
    }
    let mut keys = Vec::new();
    let mut inner_keys = Vec::new();
    for p in pulled {
        let pair = match &p {
            Expr::Binary {
                left,
                op: BinaryOp::Eq,
                right,
            } => match (has_outer(left), has_outer(right)) {
                (true, false) => Some(((**left).clone(), (**right).clone())),
                (false, true) => Some(((**right).clone(), (**left).clone())),
                _ => None,
            },
            _ => None,
        };
        let Some((outer, inner)) = pair else {
            return Err(PlanError::unsupported(
                operation,
                format!("the correlated condition `{p}` in a scalar subquery (only equalities)"),
            ));
        };
        let name = format!("$corr{}", inner_keys.len());
        inner_keys.push(inner.alias(name.clone()));
        keys.push((outer_to_column(outer), Expr::Column(Column::new(name))));
    }
    let grouped = Arc::new(builder::aggregate(
        input,
        inner_keys.clone(),
        aggregates.clone(),
        operation,
    )?);
    let plan = match projection {
        Some(p) => {
            let mut exprs: Vec<Expr> = keys.iter().map(|(_, k)| k.clone()).collect();
            exprs.extend(p.exprs.iter().cloned());
            Arc::new(builder::project(grouped, exprs, operation)?)
        }
        None => grouped,
    };
    Ok((plan, keys))
}

fn uncorrelated(sub: &PlanRef, operation: &str) -> Result<(PlanRef, Vec<(Expr, Expr)>), PlanError> {
    let (_, pulled) = pull_correlated(sub, operation)?;
    if !pulled.is_empty() {
        return Err(PlanError::unsupported(
            operation,
            "a correlated scalar subquery that is not an aggregate",
        ));
    }
    Ok((sub.clone(), Vec::new()))
}

/// `input WHERE predicate` where the predicate has subqueries.
pub fn filter_with_subqueries(
    input: PlanRef,
    predicate: Expr,
    operation: &str,
) -> Result<LogicalPlan, PlanError> {
    let original: Vec<Expr> = input
        .schema()
        .fields()
        .iter()
        .map(|f| {
            Expr::Column(Column {
                relation: f.qualifier.as_deref().map(str::to_owned),
                name: f.name.clone(),
            })
        })
        .collect();
    let mut plan = input;
    let mut residual = Vec::new();
    let mut widened = false;
    let mut aliases = Aliases::default();
    for conjunct in split_conjunction(predicate) {
        match conjunct {
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let alias = aliases.fresh();
                let (sub, pulled) = pull_correlated(&subquery, operation)?;
                let inner = Arc::clone(sub.schema());
                let sub = Arc::new(builder::alias(sub, &alias));
                let value = sub.schema().field(0);
                let value = Expr::Column(Column::qualified(alias.clone(), value.name.clone()));
                let (_, expr_nullable) =
                    crate::expr::typing::infer(&expr, plan.schema(), operation)?;
                let nullable = sub.schema().field(0).nullable || expr_nullable;
                let mut conditions: Vec<Expr> = pulled
                    .into_iter()
                    .map(|p| requalify(p, &alias, &inner))
                    .collect();
                let equal = (*expr).clone().eq(value.clone());
                if negated && nullable {
                    // NOT IN is false when the list holds a null, and null for a null value.
                    conditions.push(equal.or(value.is_null()).or((*expr).clone().is_null()));
                } else {
                    conditions.push(equal);
                }
                let kind = if negated {
                    JoinKind::Anti
                } else {
                    JoinKind::Semi
                };
                plan = Arc::new(builder::join(
                    plan,
                    sub,
                    kind,
                    conjunction(conditions),
                    operation,
                )?);
            }
            Expr::Exists { subquery, negated } => {
                let alias = aliases.fresh();
                let (sub, pulled) = pull_correlated(&subquery, operation)?;
                let inner = Arc::clone(sub.schema());
                let sub = Arc::new(builder::alias(sub, &alias));
                let conditions: Vec<Expr> = pulled
                    .into_iter()
                    .map(|p| requalify(p, &alias, &inner))
                    .collect();
                let kind = if negated {
                    JoinKind::Anti
                } else {
                    JoinKind::Semi
                };
                plan = Arc::new(builder::join(
                    plan,
                    sub,
                    kind,
                    conjunction(conditions),
                    operation,
                )?);
            }
            other if other.contains_subquery() => {
                let mut error = None;
                let mut joined = plan.clone();
                let rewritten = other.transform(&mut |x| match x {
                    Expr::ScalarSubquery(sub) if error.is_none() => {
                        match join_scalar(&joined, &sub, aliases.fresh(), operation) {
                            Ok((p, value)) => {
                                joined = p;
                                value
                            }
                            Err(e) => {
                                error = Some(e);
                                Expr::ScalarSubquery(sub)
                            }
                        }
                    }
                    other => other,
                });
                if let Some(e) = error {
                    return Err(e);
                }
                if rewritten.contains_subquery() {
                    return Err(PlanError::unsupported(
                        operation,
                        format!("the subquery in `{rewritten}` (use it alone in a conjunct)"),
                    ));
                }
                plan = joined;
                widened = true;
                residual.push(rewritten);
            }
            other => residual.push(other),
        }
    }
    if let Some(p) = conjunction(residual) {
        plan = Arc::new(builder::filter(plan, p, operation)?);
    }
    if widened {
        Ok(builder::project(plan, original, operation)?)
    } else {
        Ok(Arc::unwrap_or_clone(plan))
    }
}

/// A pulled-up predicate over the join: inner columns qualified by the `alias` the subquery is
/// joined under, outer references made ordinary columns of the outer input.
fn requalify(e: Expr, alias: &str, inner: &crate::schema::PlanSchema) -> Expr {
    e.transform(&mut |x| match x {
        // Resolved in the subquery's own columns first, so `l2.l_orderkey` (a name written
        // with its table) becomes `$sq0.l_orderkey`.
        Expr::Column(c) => {
            let name = match inner.index_of(&c, "subquery") {
                Ok(i) => inner.field(i).name.clone(),
                Err(_) => c.name,
            };
            Expr::Column(Column::qualified(alias, name))
        }
        Expr::OuterColumn(c) => Expr::Column(c),
        other => other,
    })
}

/// Left-joins `plan` with the scalar subquery `sub`; returns the joined plan and the column
/// holding the subquery's value.
fn join_scalar(
    plan: &PlanRef,
    sub: &PlanRef,
    alias: String,
    operation: &str,
) -> Result<(PlanRef, Expr), PlanError> {
    let (decorrelated, keys) = decorrelate_scalar(sub, operation)?;
    let aliased = Arc::new(builder::alias(decorrelated, &alias));
    let value_field = aliased
        .schema()
        .field(aliased.schema().len() - 1)
        .name
        .clone();
    let value = Expr::Column(Column::qualified(alias.clone(), value_field));
    let condition = conjunction(
        keys.into_iter()
            .map(|(outer, inner)| {
                let Expr::Column(c) = inner else {
                    unreachable!("keys are columns")
                };
                outer.eq(Expr::Column(Column::qualified(alias.clone(), c.name)))
            })
            .collect(),
    );
    let joined = builder::join(plan.clone(), aliased, JoinKind::Left, condition, operation)?;
    Ok((Arc::new(joined), value))
}
