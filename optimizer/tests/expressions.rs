//! Physical expressions built by `create_physical_expr` against a row-by-row reference, the
//! bad-data policies end to end, and agreement of physical types with type inference.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use proptest::prelude::*;
use rivulet_optimizer::expr::functions::DatePart;
use rivulet_optimizer::expr::typing::infer;
use rivulet_optimizer::expr::when;
use rivulet_optimizer::physical::create_physical_expr;
use rivulet_optimizer::{BuiltinFunction, Column, Expr, PlanError, PlanSchema, ScalarValue};
use rivulet_runtime::relational::expr::evaluate_to_array;
use rivulet_runtime::relational::{BadDataPolicy, BadRows, EvalContext};

fn col(name: &str) -> Expr {
    Expr::Column(Column::new(name))
}

fn lit(v: impl Into<ScalarValue>) -> Expr {
    Expr::Literal(v.into())
}

fn null(t: DataType) -> Expr {
    Expr::Literal(ScalarValue::Null(t))
}

fn call(func: BuiltinFunction, args: Vec<Expr>) -> Expr {
    Expr::Function { func, args }
}

/// One input row: `a`, `b` BIGINT, `c` INT, `p`, `q` BOOLEAN, `s` STRING.
#[derive(Debug, Clone)]
struct Row {
    a: Option<i64>,
    b: Option<i64>,
    c: Option<i32>,
    p: Option<bool>,
    q: Option<bool>,
    s: Option<String>,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
        Field::new("c", DataType::Int32, true),
        Field::new("p", DataType::Boolean, true),
        Field::new("q", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn to_batch(rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.a).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.b).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.c).collect::<Int32Array>()),
        Arc::new(rows.iter().map(|r| r.p).collect::<BooleanArray>()),
        Arc::new(rows.iter().map(|r| r.q).collect::<BooleanArray>()),
        Arc::new(rows.iter().map(|r| r.s.clone()).collect::<StringArray>()),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn row() -> impl Strategy<Value = Row> {
    let int = || proptest::option::weighted(0.8, -20i64..20);
    (
        int(),
        int(),
        proptest::option::weighted(0.8, -20i32..20),
        proptest::option::weighted(0.8, any::<bool>()),
        proptest::option::weighted(0.8, any::<bool>()),
        proptest::option::weighted(0.8, "[0-9a ]{0,3}"),
    )
        .prop_map(|(a, b, c, p, q, s)| Row { a, b, c, p, q, s })
}

/// A value as the reference computes it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Str(Option<String>),
}

fn read(array: &ArrayRef, row: usize) -> Value {
    match array.data_type() {
        DataType::Int64 => Value::Int(
            array
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .iter()
                .nth(row)
                .unwrap(),
        ),
        DataType::Int32 => Value::Int(
            array
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .iter()
                .nth(row)
                .unwrap()
                .map(i64::from),
        ),
        DataType::Boolean => Value::Bool(
            array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .iter()
                .nth(row)
                .unwrap(),
        ),
        DataType::Utf8 => Value::Str(
            array
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .nth(row)
                .unwrap()
                .map(str::to_owned),
        ),
        other => panic!("unexpected result type {other}"),
    }
}

fn and3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn lift(x: Option<i64>, y: Option<i64>, f: impl Fn(i64, i64) -> Option<i64>) -> Option<i64> {
    f(x?, y?)
}

/// `x IN (items)` with SQL's three-valued logic.
fn in_list(x: Option<i64>, items: &[Option<i64>]) -> Option<bool> {
    let x = x?;
    if items.contains(&Some(x)) {
        Some(true)
    } else if items.contains(&None) {
        None
    } else {
        Some(false)
    }
}

type Reference = fn(&Row) -> Value;

/// The expressions checked, each with its row-by-row reference (under the null policy: rows
/// that fail are null).
fn cases() -> Vec<(Expr, Reference)> {
    vec![
        (col("a") + col("c"), |r| {
            Value::Int(lift(r.a, r.c.map(i64::from), |x, y| Some(x + y)))
        }),
        (col("a") - col("b") * lit(3i64), |r| {
            Value::Int(lift(r.a, r.b, |x, y| Some(x - y * 3)))
        }),
        (col("a") / col("b"), |r| {
            Value::Int(lift(r.a, r.b, |x, y| x.checked_div(y)))
        }),
        (col("a") % col("c"), |r| {
            Value::Int(lift(r.a, r.c.map(i64::from), |x, y| x.checked_rem(y)))
        }),
        (-col("c"), |r| Value::Int(r.c.map(|c| -i64::from(c)))),
        (col("a").gt(col("c")), |r| {
            Value::Bool(r.a.zip(r.c).map(|(a, c)| a > i64::from(c)))
        }),
        (col("a").lt_eq(lit(3i32)), |r| {
            Value::Bool(r.a.map(|a| a <= 3))
        }),
        (col("a").eq(col("b")), |r| {
            Value::Bool(r.a.zip(r.b).map(|(a, b)| a == b))
        }),
        (col("a").is_not_distinct_from(col("b")), |r| {
            Value::Bool(Some(r.a == r.b))
        }),
        (col("p").and(col("q")), |r| Value::Bool(and3(r.p, r.q))),
        (col("p").or(col("q").not()), |r| {
            Value::Bool(or3(r.p, r.q.map(|q| !q)))
        }),
        (col("p").and(col("a").gt(lit(0i64))).or(col("q")), |r| {
            Value::Bool(or3(and3(r.p, r.a.map(|a| a > 0)), r.q))
        }),
        (col("a").is_null(), |r| Value::Bool(Some(r.a.is_none()))),
        (
            col("a").in_list([lit(1i64), lit(2i32), null(DataType::Int64)]),
            |r| Value::Bool(in_list(r.a, &[Some(1), Some(2), None])),
        ),
        (col("a").not_in_list([col("b"), col("c")]), |r| {
            Value::Bool(in_list(r.a, &[r.b, r.c.map(i64::from)]).map(|v| !v))
        }),
        (
            when(col("b").not_eq(lit(0i64)))
                .then(col("a") / col("b"))
                .otherwise(lit(-1i32)),
            |r| {
                Value::Int(match r.b {
                    Some(b) if b != 0 => r.a.map(|a| a / b),
                    _ => Some(-1),
                })
            },
        ),
        (
            when(col("p"))
                .then(col("c"))
                .when(col("q"))
                .then(col("a"))
                .end(),
            |r| {
                Value::Int(if r.p == Some(true) {
                    r.c.map(i64::from)
                } else if r.q == Some(true) {
                    r.a
                } else {
                    None
                })
            },
        ),
        (
            call(
                BuiltinFunction::Coalesce,
                vec![col("a"), col("c"), lit(0i32)],
            ),
            |r| Value::Int(r.a.or(r.c.map(i64::from)).or(Some(0))),
        ),
        (
            call(BuiltinFunction::Greatest, vec![col("a"), col("c")]),
            |r| Value::Int(lift(r.a, r.c.map(i64::from), |x, y| Some(x.max(y)))),
        ),
        (
            call(BuiltinFunction::NullIf, vec![col("a"), col("b")]),
            |r| {
                Value::Int(if r.a.is_some() && r.a == r.b {
                    None
                } else {
                    r.a
                })
            },
        ),
        (call(BuiltinFunction::Abs, vec![col("c")]), |r| {
            Value::Int(r.c.map(|c| i64::from(c.abs())))
        }),
        (col("s").try_cast(DataType::Int64), |r| {
            Value::Int(r.s.as_deref().and_then(|s| s.trim().parse::<i64>().ok()))
        }),
        (col("s").like(lit("%a%")), |r| {
            Value::Bool(r.s.as_deref().map(|s| s.contains('a')))
        }),
        (call(BuiltinFunction::CharLength, vec![col("s")]), |r| {
            Value::Int(r.s.as_deref().map(|s| s.chars().count() as i64))
        }),
        (
            call(BuiltinFunction::Concat, vec![col("s"), lit("-"), col("c")]),
            |r| Value::Str(r.s.as_ref().zip(r.c).map(|(s, c)| format!("{s}-{c}"))),
        ),
        (call(BuiltinFunction::Trim, vec![col("s")]), |r| {
            Value::Str(r.s.as_deref().map(|s| s.trim_matches(' ').to_owned()))
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn physical_expressions_match_a_row_by_row_reference(rows in prop::collection::vec(row(), 0..24)) {
        let batch = to_batch(&rows);
        let plan_schema = PlanSchema::from_arrow(&schema(), None);
        for (expr, reference) in cases() {
            let physical = create_physical_expr(&expr, &plan_schema).unwrap();
            let (t, nullable) = infer(&expr, &plan_schema, "test").unwrap();
            prop_assert_eq!(physical.data_type(), t.clone(), "{}", expr);
            prop_assert_eq!(physical.nullable(), nullable, "{}", expr);
            let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
            let out = evaluate_to_array(physical.as_ref(), &batch, &mut ctx).unwrap();
            prop_assert_eq!(out.len(), rows.len());
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(read(&out, i), reference(r), "{} on row {:?}", expr, r);
            }
        }
    }
}

fn decimal_batch() -> (RecordBatch, PlanSchema) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("price", DataType::Decimal128(7, 2), true),
        Field::new("qty", DataType::Int32, true),
    ]));
    let price = Decimal128Array::from(vec![Some(1999), Some(-5), None, Some(1)])
        .with_precision_and_scale(7, 2)
        .unwrap();
    let qty = Int32Array::from(vec![Some(3), Some(7), Some(1), Some(0)]);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(price), Arc::new(qty)]).unwrap();
    (batch, PlanSchema::from_arrow(&schema, None))
}

#[test]
fn decimal_arithmetic_matches_hand_computed_results() {
    let (batch, schema) = decimal_batch();
    let check = |expr: Expr, expected: Vec<Option<&str>>| {
        let physical = create_physical_expr(&expr, &schema).unwrap();
        let (t, _) = infer(&expr, &schema, "test").unwrap();
        assert_eq!(physical.data_type(), t, "{expr}");
        let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
        let out = evaluate_to_array(physical.as_ref(), &batch, &mut ctx).unwrap();
        let out = out.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let shown: Vec<Option<String>> = (0..out.len())
            .map(|i| out.is_valid(i).then(|| out.value_as_string(i)))
            .collect();
        let expected: Vec<Option<String>> =
            expected.into_iter().map(|e| e.map(str::to_owned)).collect();
        assert_eq!(shown, expected, "{expr}");
    };
    // DECIMAL(7, 2) * INT -> DECIMAL(7 + 10 + 1, 2)
    check(
        col("price") * col("qty"),
        vec![Some("59.97"), Some("-0.35"), None, Some("0.00")],
    );
    check(
        col("price") + col("qty"),
        vec![Some("22.99"), Some("6.95"), None, Some("0.01")],
    );
    // Division rounds half away from zero at the result scale; by zero is null under Null.
    check(
        col("price") / col("qty"),
        vec![
            Some("6.6633333333333"),
            Some("-0.0071428571429"),
            None,
            None,
        ],
    );
    check(
        col("price") % col("qty"),
        vec![Some("1.99"), Some("-0.05"), None, None],
    );
}

#[test]
fn bad_data_policies_for_division_by_zero_and_failed_casts() {
    let rows = vec![
        Row {
            a: Some(4),
            b: Some(2),
            c: None,
            p: None,
            q: None,
            s: Some("12".into()),
        },
        Row {
            a: Some(1),
            b: Some(0),
            c: None,
            p: None,
            q: None,
            s: Some("x".into()),
        },
        Row {
            a: Some(9),
            b: Some(3),
            c: None,
            p: None,
            q: None,
            s: None,
        },
    ];
    let batch = to_batch(&rows);
    let schema = PlanSchema::from_arrow(&schema(), None);
    for (expr, shown, message) in [
        (col("a") / col("b"), "(a#0 / b#1)", "division by zero"),
        (
            col("s").cast(DataType::Int32),
            "CAST(s#5 AS Int32)",
            "cannot cast 'x' to Int32",
        ),
    ] {
        let physical = create_physical_expr(&expr, &schema).unwrap();
        assert_eq!(physical.to_string(), shown);
        let err = evaluate_to_array(physical.as_ref(), &batch, &mut EvalContext::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(shown) && err.contains("row 1") && err.contains(message),
            "{err}"
        );

        let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
        let out = evaluate_to_array(physical.as_ref(), &batch, &mut ctx).unwrap();
        assert!(out.is_null(1) && out.is_valid(0));
        assert!(ctx.take_failed_rows().is_empty());

        let bad = BadRows::new();
        let mut ctx = EvalContext::new(BadDataPolicy::Skip, bad.clone());
        let out = evaluate_to_array(physical.as_ref(), &batch, &mut ctx).unwrap();
        assert!(out.is_null(1));
        assert_eq!(ctx.take_failed_rows(), vec![1]);
        assert_eq!(bad.count(), 1);
        assert!(bad.samples()[0].contains(message));
    }
}

#[test]
fn aggregates_and_subqueries_are_left_to_their_operators() {
    let schema = PlanSchema::from_arrow(&schema(), None);
    let sum = Expr::aggregate(rivulet_optimizer::AggregateFunction::Sum, vec![col("a")]);
    assert!(matches!(
        create_physical_expr(&sum, &schema),
        Err(PlanError::Unsupported { .. })
    ));
    assert!(matches!(
        create_physical_expr(&col("nope"), &schema),
        Err(PlanError::UnknownColumn { .. })
    ));
}

/// Every built-in function, with arguments of the types it takes: the physical type and
/// nullability are the inferred ones.
#[test]
fn physical_types_agree_with_inference_for_every_builtin_function() {
    use BuiltinFunction as F;
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, false),
        Field::new("f", DataType::Float64, true),
        Field::new("d", DataType::Decimal128(9, 3), false),
        Field::new("s", DataType::Utf8, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("day", DataType::Date32, true),
    ]));
    let plan_schema = PlanSchema::from_arrow(&schema, None);
    let (i, l, f, d, s, t, day) = (
        col("i"),
        col("l"),
        col("f"),
        col("d"),
        col("s"),
        col("t"),
        col("day"),
    );
    let mut calls = vec![
        (F::Upper, vec![s.clone()]),
        (F::Lower, vec![s.clone()]),
        (F::Substring, vec![s.clone(), l.clone(), i.clone()]),
        (F::Substring, vec![s.clone(), lit(1i8)]),
        (F::Concat, vec![s.clone(), i.clone(), lit("x")]),
        (F::Trim, vec![s.clone()]),
        (F::LTrim, vec![s.clone()]),
        (F::RTrim, vec![s.clone()]),
        (F::CharLength, vec![s.clone()]),
        (F::RegexpExtract, vec![s.clone(), lit("a(b)"), lit(1i32)]),
        (F::SplitIndex, vec![s.clone(), lit(","), lit(0i64)]),
        (F::Replace, vec![s.clone(), lit("a"), lit("b")]),
        (F::Position, vec![lit("a"), s.clone()]),
        (F::Coalesce, vec![i.clone(), l.clone()]),
        (F::Coalesce, vec![d.clone(), i.clone()]),
        (F::NullIf, vec![i.clone(), l.clone()]),
        (F::Greatest, vec![f.clone(), l.clone()]),
        (F::Least, vec![d.clone(), lit(2i32)]),
        (F::DateFormat, vec![t.clone(), lit("yyyy-MM-dd")]),
        (F::ToTimestamp, vec![s.clone()]),
        (F::ToDate, vec![s.clone()]),
        (F::Power, vec![i.clone(), f.clone()]),
    ];
    for func in [
        F::Abs,
        F::Ceil,
        F::Floor,
        F::Round,
        F::Sqrt,
        F::Ln,
        F::Log10,
        F::Exp,
        F::Sign,
    ] {
        for arg in [&i, &l, &f, &d] {
            calls.push((func, vec![arg.clone()]));
        }
    }
    calls.push((F::Round, vec![d.clone(), lit(1i32)]));
    calls.push((F::Round, vec![f.clone(), i.clone()]));
    for part in [
        DatePart::Year,
        DatePart::Quarter,
        DatePart::Month,
        DatePart::Day,
        DatePart::DayOfWeek,
        DatePart::DayOfYear,
        DatePart::Hour,
        DatePart::Minute,
        DatePart::Second,
    ] {
        calls.push((F::Extract(part), vec![t.clone()]));
        calls.push((F::Extract(part), vec![day.clone()]));
    }
    let batch = RecordBatch::new_empty(schema.clone());
    for (func, args) in calls {
        let expr = call(func, args);
        let (t, nullable) = infer(&expr, &plan_schema, "test").unwrap();
        let physical = create_physical_expr(&expr, &plan_schema).unwrap();
        assert_eq!(physical.data_type(), t, "{expr}");
        assert_eq!(physical.nullable(), nullable, "{expr}");
        let out =
            evaluate_to_array(physical.as_ref(), &batch, &mut EvalContext::default()).unwrap();
        assert_eq!(out.data_type(), &t, "{expr}");
    }
}

/// Every operator over pairs of types that type inference accepts: the physical expression
/// builds, with the inferred type and nullability.
#[test]
fn physical_types_agree_with_inference_for_operators() {
    use rivulet_optimizer::BinaryOp as Op;
    let types = [
        DataType::Int8,
        DataType::Int32,
        DataType::UInt32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Decimal128(5, 2),
        DataType::Decimal128(38, 10),
        DataType::Utf8,
        DataType::Boolean,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Duration(TimeUnit::Millisecond),
        DataType::Interval(arrow::datatypes::IntervalUnit::YearMonth),
        DataType::Interval(arrow::datatypes::IntervalUnit::DayTime),
        DataType::Timestamp(TimeUnit::Second, Some("+01:00".into())),
        DataType::Null,
    ];
    let fields: Vec<Field> = types
        .iter()
        .enumerate()
        .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), i % 2 == 0))
        .collect();
    let schema = PlanSchema::from_arrow(&Schema::new(fields), None);
    let ops = [
        Op::Plus,
        Op::Minus,
        Op::Multiply,
        Op::Divide,
        Op::Modulo,
        Op::Eq,
        Op::Lt,
        Op::IsNotDistinctFrom,
        Op::And,
        Op::Or,
    ];
    let mut checked = 0;
    let mut check = |expr: Expr| {
        if let Ok((t, nullable)) = infer(&expr, &schema, "test") {
            let physical = create_physical_expr(&expr, &schema)
                .unwrap_or_else(|e| panic!("{expr} types as {t} but does not build: {e}"));
            assert_eq!(physical.data_type(), t, "{expr}");
            assert_eq!(physical.nullable(), nullable, "{expr}");
            checked += 1;
        }
    };
    for i in 0..types.len() {
        let left = col(&format!("c{i}"));
        check(-left.clone());
        check(left.clone().not());
        check(left.clone().is_null());
        for to in &types {
            check(left.clone().cast(to.clone()));
            check(left.clone().try_cast(to.clone()));
        }
        for j in 0..types.len() {
            let right = col(&format!("c{j}"));
            for op in ops {
                check(Expr::Binary {
                    left: Box::new(left.clone()),
                    op,
                    right: Box::new(right.clone()),
                });
            }
            check(when(col("c9")).then(left.clone()).otherwise(right.clone()));
            check(left.clone().in_list([right.clone(), left.clone()]));
            check(call(
                BuiltinFunction::Coalesce,
                vec![left.clone(), right.clone()],
            ));
        }
    }
    assert!(checked > 500, "only {checked} expressions type-checked");
}
