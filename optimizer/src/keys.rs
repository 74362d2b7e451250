//! Unique-key inference: which sets of columns identify a row of a plan node's output.
//!
//! In streaming mode these are also the node's *upsert keys*: every update of the node's
//! changelog (`-U old`, `+U new`) keeps the values of each of them, so a sink keyed on one can
//! apply `+I`/`+U` as upserts and `-D` as deletes. The inference is conservative: a key it
//! reports always holds; a key it misses only costs a sink the chance to accept the result.

use std::collections::BTreeSet;

use crate::expr::Expr;
use crate::plan::{JoinKind, LogicalPlan};

/// A set of column positions (sorted) whose values are unique among the rows of an output.
pub type Key = Vec<usize>;

/// The minimal unique keys known for `plan`'s output, each sorted, the list sorted. An empty
/// key means the output has at most one row.
pub fn unique_keys(plan: &LogicalPlan) -> Vec<Key> {
    let keys = match plan {
        LogicalPlan::Scan(scan) => scan
            .source
            .primary_key()
            .and_then(|pk| match &scan.projection {
                None => Some(pk),
                Some(projection) => pk
                    .iter()
                    .map(|c| projection.iter().position(|p| p == c))
                    .collect(),
            })
            .into_iter()
            .collect(),
        LogicalPlan::Values(_) | LogicalPlan::Union(_) | LogicalPlan::Correlate(_) => Vec::new(),
        LogicalPlan::Projection(p) => {
            // Where each input column went (its first bare reference).
            let input = p.input.schema();
            let mut moved = vec![None; input.len()];
            for (out, expr) in p.exprs.iter().enumerate() {
                if let Some(column) = bare_column(expr)
                    && let Ok(i) = input.index_of(column, "key inference")
                    && moved[i].is_none()
                {
                    moved[i] = Some(out);
                }
            }
            unique_keys(&p.input)
                .into_iter()
                .filter_map(|key| key.iter().map(|&c| moved[c]).collect::<Option<Key>>())
                .collect()
        }
        LogicalPlan::Filter(f) => unique_keys(&f.input),
        LogicalPlan::Sort(s) => unique_keys(&s.input),
        LogicalPlan::SubqueryAlias(a) => unique_keys(&a.input),
        LogicalPlan::Limit(l) => {
            if l.fetch.is_some_and(|n| n <= 1) {
                vec![Vec::new()]
            } else {
                unique_keys(&l.input)
            }
        }
        LogicalPlan::Aggregate(a) => vec![(0..a.group.len()).collect()],
        LogicalPlan::Distinct(d) => vec![(0..d.input.schema().len()).collect()],
        LogicalPlan::SetOperation(s) => {
            if s.all {
                Vec::new()
            } else {
                vec![(0..s.schema.len()).collect()]
            }
        }
        LogicalPlan::Join(j) => join_keys(j),
        LogicalPlan::TopN(t) => {
            let mut keys = unique_keys(&t.input);
            if t.rank_column.is_some() {
                let mut key = t.partition_by.clone();
                key.push(t.schema.len() - 1);
                keys.push(key);
            }
            if t.n <= 1 {
                keys.push(t.partition_by.clone());
            }
            keys
        }
        LogicalPlan::Deduplicate(d) => {
            let mut keys = unique_keys(&d.input);
            keys.push(d.keys.clone());
            keys
        }
        LogicalPlan::OverAggregate(o) => unique_keys(&o.input),
        LogicalPlan::WindowTable(_) => Vec::new(),
    };
    minimal(keys)
}

/// Whether some unique key of `plan`'s output lies within `columns`.
pub fn has_key_within(plan: &LogicalPlan, columns: &[usize]) -> bool {
    unique_keys(plan)
        .iter()
        .any(|key| key.iter().all(|c| columns.contains(c)))
}

fn join_keys(j: &crate::plan::Join) -> Vec<Key> {
    let left = unique_keys(&j.left);
    if matches!(j.kind, JoinKind::Semi | JoinKind::Anti) {
        return left;
    }
    let offset = j.left.schema().len();
    let right: Vec<Key> = unique_keys(&j.right)
        .into_iter()
        .map(|k| k.into_iter().map(|c| c + offset).collect())
        .collect();
    // A side whose equi-join columns hold a unique key of the other side matches at most one
    // row of it, so the side's own keys stay unique (padded rows included).
    let covers = |keys: &[Key], plan: &LogicalPlan, exprs: Vec<&Expr>| {
        let schema = plan.schema();
        let columns: Vec<usize> = exprs
            .into_iter()
            .filter_map(|e| bare_column(e).and_then(|c| schema.index_of(c, "key inference").ok()))
            .collect();
        keys.iter().any(|k| k.iter().all(|c| columns.contains(c)))
    };
    let right_unique_on_keys = covers(
        &unique_keys(&j.right),
        &j.right,
        j.on.iter().map(|(_, r)| r).collect(),
    );
    let left_unique_on_keys = covers(&left, &j.left, j.on.iter().map(|(l, _)| l).collect());
    let mut keys = Vec::new();
    for l in &left {
        for r in &right {
            keys.push(l.iter().chain(r).copied().collect());
        }
    }
    // With a full or right join, left rows may be null-padded, so left keys stay unique only
    // for the rows that matched; the same holds mirrored.
    if right_unique_on_keys && matches!(j.kind, JoinKind::Inner | JoinKind::Left) {
        keys.extend(left.iter().cloned());
    }
    if left_unique_on_keys && matches!(j.kind, JoinKind::Inner | JoinKind::Right) {
        keys.extend(right.iter().cloned());
    }
    keys
}

/// The column an expression is, when it is one (possibly renamed).
fn bare_column(expr: &Expr) -> Option<&crate::expr::Column> {
    match expr {
        Expr::Column(c) => Some(c),
        Expr::Alias(inner, _) => bare_column(inner),
        _ => None,
    }
}

/// Sorted keys, without duplicates or keys that contain another key.
fn minimal(keys: Vec<Key>) -> Vec<Key> {
    let mut sorted: BTreeSet<Key> = keys
        .into_iter()
        .map(|mut k| {
            k.sort_unstable();
            k.dedup();
            k
        })
        .collect();
    let all: Vec<Key> = sorted.iter().cloned().collect();
    sorted.retain(|k| {
        !all.iter()
            .any(|other| other != k && other.iter().all(|c| k.contains(c)))
    });
    let mut keys: Vec<Key> = sorted.into_iter().collect();
    keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    keys
}
