//! Tests of each expression family on small batches.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    IntervalYearMonthArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::*;
use crate::relational::ScalarUdf;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

fn col(batch: &RecordBatch, name: &str) -> PhysicalExprRef {
    let index = batch.schema().index_of(name).unwrap();
    let t = batch.schema().field(index).data_type().clone();
    Arc::new(ColumnExpr::new(name, index, t, true))
}

fn lit(v: impl Into<ScalarValue>) -> PhysicalExprRef {
    Arc::new(LiteralExpr::new(v.into()))
}

fn bin(l: PhysicalExprRef, op: BinaryOperator, r: PhysicalExprRef) -> PhysicalExprRef {
    Arc::new(BinaryExpr::try_new(l, op, r).unwrap())
}

fn func(f: ScalarFunction, args: Vec<PhysicalExprRef>) -> PhysicalExprRef {
    Arc::new(ScalarFunctionExpr::try_new(f, args).unwrap())
}

fn eval(expr: &PhysicalExprRef, batch: &RecordBatch) -> ArrayRef {
    eval_with(expr, batch, &mut EvalContext::default()).unwrap()
}

fn eval_with(
    expr: &PhysicalExprRef,
    batch: &RecordBatch,
    ctx: &mut EvalContext,
) -> Result<ArrayRef, EvalError> {
    let out = evaluate_to_array(expr.as_ref(), batch, ctx)?;
    assert_eq!(out.len(), batch.num_rows());
    assert_eq!(out.data_type(), &expr.data_type(), "{expr}");
    Ok(out)
}

fn ints(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

#[test]
fn integer_arithmetic_with_scalars_and_nulls() {
    let b = batch(vec![("a", ints(&[Some(7), None, Some(-7)]))]);
    let a = col(&b, "a");
    let sum = bin(a.clone(), BinaryOperator::Plus, lit(1i64));
    assert_eq!(sum.to_string(), "(a#0 + 1)");
    assert_eq!(
        eval(&sum, &b).as_ref(),
        ints(&[Some(8), None, Some(-6)]).as_ref()
    );
    let div = bin(a.clone(), BinaryOperator::Divide, lit(2i64));
    assert_eq!(
        eval(&div, &b).as_ref(),
        ints(&[Some(3), None, Some(-3)]).as_ref()
    );
    let rem = bin(a, BinaryOperator::Modulo, lit(2i64));
    assert_eq!(
        eval(&rem, &b).as_ref(),
        ints(&[Some(1), None, Some(-1)]).as_ref()
    );
    // Constants fold to a constant.
    let constant = bin(lit(2i64), BinaryOperator::Multiply, lit(3i64));
    let value = constant.evaluate(&b, &mut EvalContext::default()).unwrap();
    assert!(matches!(
        value,
        ColumnarValue::Scalar(ScalarValue::Int64(6))
    ));
}

#[test]
fn division_by_zero_follows_the_bad_data_policy() {
    let b = batch(vec![
        ("a", ints(&[Some(6), Some(1), Some(9)])),
        ("b", ints(&[Some(3), Some(0), Some(3)])),
    ]);
    let div = bin(col(&b, "a"), BinaryOperator::Divide, col(&b, "b"));

    let err = eval_with(&div, &b, &mut EvalContext::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("(a#0 / b#1)") && message.contains("row 1"),
        "{message}"
    );
    assert!(message.contains("division by zero"), "{message}");

    let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
    let out = eval_with(&div, &b, &mut ctx).unwrap();
    assert_eq!(out.as_ref(), ints(&[Some(2), None, Some(3)]).as_ref());
    assert!(ctx.take_failed_rows().is_empty());

    let bad = BadRows::new();
    let mut ctx = EvalContext::new(BadDataPolicy::Skip, bad.clone());
    eval_with(&div, &b, &mut ctx).unwrap();
    assert_eq!(ctx.take_failed_rows(), vec![1]);
    assert_eq!(bad.count(), 1);
    assert!(bad.samples()[0].contains("row 1"));
}

#[test]
fn integer_overflow_is_bad_data() {
    let b = batch(vec![("a", ints(&[Some(i64::MAX), Some(1)]))]);
    let sum = bin(col(&b, "a"), BinaryOperator::Plus, lit(1i64));
    let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
    let out = eval_with(&sum, &b, &mut ctx).unwrap();
    assert_eq!(out.as_ref(), ints(&[None, Some(2)]).as_ref());
    let neg = Arc::new(NegativeExpr::try_new(lit(i64::MIN)).unwrap()) as PhysicalExprRef;
    let err = eval_with(&neg, &b, &mut EvalContext::default()).unwrap_err();
    assert!(err.to_string().contains("row 0"), "{err}");
}

fn decimal(values: &[Option<i128>], p: u8, s: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(p, s)
            .unwrap(),
    )
}

#[test]
fn decimal_arithmetic_at_the_sql_type() {
    // 1.50 and 0.3
    let b = batch(vec![
        ("x", decimal(&[Some(150), Some(-150)], 5, 2)),
        ("y", decimal(&[Some(3), Some(0)], 3, 1)),
    ]);
    let (x, y) = (col(&b, "x"), col(&b, "y"));
    let sum = bin(x.clone(), BinaryOperator::Plus, y.clone());
    assert_eq!(sum.data_type(), DataType::Decimal128(6, 2));
    assert_eq!(
        eval(&sum, &b).as_ref(),
        decimal(&[Some(180), Some(-150)], 6, 2).as_ref()
    );
    let product = bin(x.clone(), BinaryOperator::Multiply, y.clone());
    assert_eq!(product.data_type(), DataType::Decimal128(9, 3));
    assert_eq!(
        eval(&product, &b).as_ref(),
        decimal(&[Some(450), Some(0)], 9, 3).as_ref()
    );
    let quotient = bin(x, BinaryOperator::Divide, y);
    let DataType::Decimal128(p, s) = quotient.data_type() else {
        panic!()
    };
    assert_eq!((p, s), (10, 6));
    let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
    let out = eval_with(&quotient, &b, &mut ctx).unwrap();
    assert_eq!(
        out.as_ref(),
        decimal(&[Some(5_000_000), None], 10, 6).as_ref()
    );
}

#[test]
fn comparisons_keep_constants_scalar_and_are_three_valued() {
    let b = batch(vec![("a", ints(&[Some(1), None, Some(3)]))]);
    let gt = bin(col(&b, "a"), BinaryOperator::Gt, lit(2i64));
    let expected = BooleanArray::from(vec![Some(false), None, Some(true)]);
    assert_eq!(eval(&gt, &b).as_ref(), &expected);
    let indf = bin(
        col(&b, "a"),
        BinaryOperator::IsNotDistinctFrom,
        lit(ScalarValue::Null(DataType::Int64)),
    );
    assert!(!indf.nullable());
    assert_eq!(
        eval(&indf, &b).as_ref(),
        &BooleanArray::from(vec![false, true, false])
    );
    assert!(BinaryExpr::try_new(col(&b, "a"), BinaryOperator::Eq, lit("x")).is_err());
}

#[test]
fn and_or_are_kleene() {
    let t = Arc::new(BooleanArray::from(vec![
        Some(true),
        Some(true),
        Some(true),
        None,
        None,
        Some(false),
    ])) as ArrayRef;
    let u = Arc::new(BooleanArray::from(vec![
        Some(true),
        None,
        Some(false),
        None,
        Some(false),
        None,
    ])) as ArrayRef;
    let b = batch(vec![("t", t), ("u", u)]);
    let and = bin(col(&b, "t"), BinaryOperator::And, col(&b, "u"));
    let or = bin(col(&b, "t"), BinaryOperator::Or, col(&b, "u"));
    assert_eq!(
        eval(&and, &b).as_ref(),
        &BooleanArray::from(vec![
            Some(true),
            None,
            Some(false),
            None,
            Some(false),
            Some(false)
        ])
    );
    assert_eq!(
        eval(&or, &b).as_ref(),
        &BooleanArray::from(vec![Some(true), Some(true), Some(true), None, None, None])
    );
    let not = Arc::new(NotExpr::try_new(col(&b, "u")).unwrap()) as PhysicalExprRef;
    assert_eq!(
        eval(&not, &b).as_ref(),
        &BooleanArray::from(vec![Some(false), None, Some(true), None, Some(true), None])
    );
}

#[test]
fn time_arithmetic() {
    let day = 86_400_000i64;
    let b = batch(vec![
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from(vec![0, day * 31])) as ArrayRef,
        ),
        ("d", Arc::new(Date32Array::from(vec![0, 31])) as ArrayRef),
        (
            "m",
            Arc::new(IntervalYearMonthArray::from(vec![1, 12])) as ArrayRef,
        ),
    ]);
    let plus_ms = bin(
        col(&b, "ts"),
        BinaryOperator::Plus,
        lit(ScalarValue::DurationMs(1_000)),
    );
    assert_eq!(
        eval(&plus_ms, &b).as_ref(),
        &TimestampMillisecondArray::from(vec![1_000, day * 31 + 1_000])
    );
    let plus_months = bin(col(&b, "ts"), BinaryOperator::Plus, col(&b, "m"));
    // 1970-01-01 + 1 month = 1970-02-01; 1970-02-01 + 12 months = 1971-02-01.
    assert_eq!(
        eval(&plus_months, &b).as_ref(),
        &TimestampMillisecondArray::from(vec![day * 31, day * (365 + 31)])
    );
    let date_minus = bin(
        col(&b, "d"),
        BinaryOperator::Minus,
        lit(ScalarValue::DurationMs(day)),
    );
    assert_eq!(
        eval(&date_minus, &b).as_ref(),
        &Date32Array::from(vec![-1, 30])
    );
    let date_plus = bin(col(&b, "d"), BinaryOperator::Plus, col(&b, "m"));
    assert_eq!(
        eval(&date_plus, &b).as_ref(),
        &Date32Array::from(vec![31, 365 + 31])
    );
    let diff = bin(col(&b, "ts"), BinaryOperator::Minus, col(&b, "ts"));
    assert_eq!(diff.data_type(), DataType::Duration(TimeUnit::Millisecond));
}

#[test]
fn cast_and_try_cast() {
    let b = batch(vec![("s", strings(&[Some("12"), Some("x"), None]))]);
    let cast = Arc::new(CastExpr::try_new(col(&b, "s"), DataType::Int32, false).unwrap())
        as PhysicalExprRef;
    assert_eq!(cast.to_string(), "CAST(s#0 AS Int32)");
    let err = eval_with(&cast, &b, &mut EvalContext::default()).unwrap_err();
    assert!(
        err.to_string().contains("row 1") && err.to_string().contains("'x'"),
        "{err}"
    );
    let bad = BadRows::new();
    let mut ctx = EvalContext::new(BadDataPolicy::Skip, bad.clone());
    let out = eval_with(&cast, &b, &mut ctx).unwrap();
    assert_eq!(out.as_ref(), &Int32Array::from(vec![Some(12), None, None]));
    assert_eq!(ctx.take_failed_rows(), vec![1]);
    assert_eq!(bad.count(), 1);
    let try_cast = Arc::new(CastExpr::try_new(col(&b, "s"), DataType::Int32, true).unwrap())
        as PhysicalExprRef;
    let mut ctx = EvalContext::default();
    assert_eq!(
        eval_with(&try_cast, &b, &mut ctx).unwrap().as_ref(),
        out.as_ref()
    );
    assert!(ctx.take_failed_rows().is_empty());
}

#[test]
fn case_evaluates_branches_only_on_their_rows() {
    let b = batch(vec![
        ("a", ints(&[Some(6), Some(1), None])),
        ("b", ints(&[Some(3), Some(0), Some(2)])),
    ]);
    let (a, bb) = (col(&b, "a"), col(&b, "b"));
    let case = Arc::new(
        CaseExpr::try_new(
            vec![(
                bin(bb.clone(), BinaryOperator::NotEq, lit(0i64)),
                bin(a.clone(), BinaryOperator::Divide, bb.clone()),
            )],
            Some(lit(-1i64)),
        )
        .unwrap(),
    ) as PhysicalExprRef;
    assert_eq!(
        eval(&case, &b).as_ref(),
        ints(&[Some(2), Some(-1), None]).as_ref()
    );
    // A failing row inside a branch is reported as the batch's row.
    let failing = Arc::new(
        CaseExpr::try_new(
            vec![(
                bin(a.clone(), BinaryOperator::Lt, lit(5i64)),
                bin(a, BinaryOperator::Divide, lit(0i64)),
            )],
            None,
        )
        .unwrap(),
    ) as PhysicalExprRef;
    let err = eval_with(&failing, &b, &mut EvalContext::default()).unwrap_err();
    assert!(err.to_string().contains("row 1"), "{err}");
    let mut ctx = EvalContext::new(BadDataPolicy::Skip, BadRows::new());
    eval_with(&failing, &b, &mut ctx).unwrap();
    assert_eq!(ctx.take_failed_rows(), vec![1]);
}

#[test]
fn in_list_is_three_valued() {
    let b = batch(vec![("a", ints(&[Some(1), Some(3), None]))]);
    let in_list = |list: Vec<PhysicalExprRef>, negated| {
        Arc::new(InListExpr::try_new(col(&b, "a"), list, negated).unwrap()) as PhysicalExprRef
    };
    let plain = in_list(vec![lit(1i64), lit(2i64)], false);
    assert_eq!(
        eval(&plain, &b).as_ref(),
        &BooleanArray::from(vec![Some(true), Some(false), None])
    );
    let with_null = in_list(
        vec![lit(1i64), lit(ScalarValue::Null(DataType::Int64))],
        false,
    );
    assert_eq!(
        eval(&with_null, &b).as_ref(),
        &BooleanArray::from(vec![Some(true), None, None])
    );
    let not_in = in_list(
        vec![lit(1i64), lit(ScalarValue::Null(DataType::Int64))],
        true,
    );
    assert_eq!(
        eval(&not_in, &b).as_ref(),
        &BooleanArray::from(vec![Some(false), None, None])
    );
    assert_eq!(not_in.to_string(), "a#0 NOT IN (1, NULL)");
}

#[test]
fn like_with_constant_and_column_patterns() {
    let b = batch(vec![
        ("s", strings(&[Some("Apple"), Some("banana"), None])),
        ("p", strings(&[Some("A%"), Some("%nan_"), Some("x")])),
    ]);
    let like = |pattern, negated, ci| {
        Arc::new(LikeExpr::try_new(col(&b, "s"), pattern, negated, ci).unwrap()) as PhysicalExprRef
    };
    assert_eq!(
        eval(&like(lit("a%"), false, false), &b).as_ref(),
        &BooleanArray::from(vec![Some(false), Some(false), None])
    );
    assert_eq!(
        eval(&like(lit("a%"), false, true), &b).as_ref(),
        &BooleanArray::from(vec![Some(true), Some(false), None])
    );
    assert_eq!(
        eval(&like(col(&b, "p"), true, false), &b).as_ref(),
        &BooleanArray::from(vec![Some(false), Some(false), None])
    );
}

#[test]
fn string_functions() {
    let b = batch(vec![("s", strings(&[Some(" héllo wörld "), None]))]);
    let s = col(&b, "s");
    let check = |f, args: Vec<PhysicalExprRef>, expected: ArrayRef| {
        let e = func(f, args);
        assert_eq!(eval(&e, &b).as_ref(), expected.as_ref(), "{e}");
    };
    check(
        ScalarFunction::Upper,
        vec![s.clone()],
        strings(&[Some(" HÉLLO WÖRLD "), None]),
    );
    check(
        ScalarFunction::Trim,
        vec![s.clone()],
        strings(&[Some("héllo wörld"), None]),
    );
    check(
        ScalarFunction::LTrim,
        vec![s.clone()],
        strings(&[Some("héllo wörld "), None]),
    );
    check(
        ScalarFunction::CharLength,
        vec![s.clone()],
        Arc::new(Int32Array::from(vec![Some(13), None])),
    );
    check(
        ScalarFunction::Substring,
        vec![s.clone(), lit(2i32), lit(5i32)],
        strings(&[Some("héllo"), None]),
    );
    check(
        ScalarFunction::Substring,
        vec![s.clone(), lit(0i32), lit(2i32)],
        strings(&[Some(" "), None]),
    );
    check(
        ScalarFunction::Substring,
        vec![s.clone(), lit(8i64)],
        strings(&[Some("wörld "), None]),
    );
    check(
        ScalarFunction::Concat,
        vec![lit("<"), s.clone(), lit(1i32)],
        strings(&[Some("< héllo wörld 1"), None]),
    );
    check(
        ScalarFunction::Replace,
        vec![s.clone(), lit("l"), lit("L")],
        strings(&[Some(" héLLo wörLd "), None]),
    );
    check(
        ScalarFunction::Position,
        vec![lit("wö"), s.clone()],
        Arc::new(Int32Array::from(vec![Some(8), None])),
    );
    check(
        ScalarFunction::SplitIndex,
        vec![s.clone(), lit(" "), lit(2i32)],
        strings(&[Some("wörld"), None]),
    );
    check(
        ScalarFunction::SplitIndex,
        vec![s.clone(), lit(" "), lit(9i32)],
        strings(&[None, None]),
    );
    check(
        ScalarFunction::RegexpExtract,
        vec![s.clone(), lit(r"(\w+) (\w+)"), lit(2i32)],
        strings(&[Some("wörld"), None]),
    );
    check(
        ScalarFunction::RegexpExtract,
        vec![s.clone(), lit(r"w\w+")],
        strings(&[Some("wörld"), None]),
    );
    check(
        ScalarFunction::RegexpExtract,
        vec![s.clone(), lit("zzz")],
        strings(&[None, None]),
    );
    // An invalid pattern is bad data.
    let bad = func(ScalarFunction::RegexpExtract, vec![s, lit("(")]);
    assert!(eval_with(&bad, &b, &mut EvalContext::default()).is_err());
}

#[test]
fn math_functions() {
    let b = batch(vec![
        ("i", ints(&[Some(-15), Some(25), None])),
        (
            "f",
            Arc::new(Float64Array::from(vec![Some(-2.5), Some(2.45), None])) as ArrayRef,
        ),
        ("d", decimal(&[Some(-1250), Some(1249), None], 5, 2)),
    ]);
    let check = |f, args: Vec<PhysicalExprRef>, expected: ArrayRef| {
        let e = func(f, args);
        assert_eq!(eval(&e, &b).as_ref(), expected.as_ref(), "{e}");
    };
    let (i, f, d) = (col(&b, "i"), col(&b, "f"), col(&b, "d"));
    check(
        ScalarFunction::Abs,
        vec![i.clone()],
        ints(&[Some(15), Some(25), None]),
    );
    check(
        ScalarFunction::Round,
        vec![i.clone(), lit(-1i32)],
        ints(&[Some(-20), Some(30), None]),
    );
    check(
        ScalarFunction::Sign,
        vec![i],
        ints(&[Some(-1), Some(1), None]),
    );
    check(
        ScalarFunction::Round,
        vec![f.clone()],
        Arc::new(Float64Array::from(vec![Some(-3.0), Some(2.0), None])),
    );
    check(
        ScalarFunction::Round,
        vec![f.clone(), lit(1i32)],
        Arc::new(Float64Array::from(vec![Some(-2.5), Some(2.5), None])),
    );
    check(
        ScalarFunction::Ceil,
        vec![f.clone()],
        Arc::new(Float64Array::from(vec![Some(-2.0), Some(3.0), None])),
    );
    check(
        ScalarFunction::Floor,
        vec![d.clone()],
        decimal(&[Some(-1300), Some(1200), None], 5, 2),
    );
    check(
        ScalarFunction::Ceil,
        vec![d.clone()],
        decimal(&[Some(-1200), Some(1300), None], 5, 2),
    );
    check(
        ScalarFunction::Round,
        vec![d.clone(), lit(1i32)],
        decimal(&[Some(-1250), Some(1250), None], 5, 2),
    );
    check(
        ScalarFunction::Abs,
        vec![d],
        decimal(&[Some(1250), Some(1249), None], 5, 2),
    );
    check(
        ScalarFunction::Power,
        vec![lit(2i32), lit(10i32)],
        Arc::new(Float64Array::from(vec![1024.0; 3])),
    );
    check(
        ScalarFunction::Sqrt,
        vec![lit(2.25f64)],
        Arc::new(Float64Array::from(vec![1.5; 3])),
    );
    let ln = func(ScalarFunction::Ln, vec![f]);
    let ln = eval(&ln, &b);
    assert!(
        ln.as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(0)
            .is_nan()
    );
    // Decimal rounding past the precision overflows.
    let nines = batch(vec![("d", decimal(&[Some(999)], 3, 1))]);
    let e = func(ScalarFunction::Round, vec![col(&nines, "d")]);
    assert!(eval_with(&e, &nines, &mut EvalContext::default()).is_err());
}

#[test]
fn conditional_functions() {
    let b = batch(vec![
        ("a", ints(&[Some(1), None, Some(5)])),
        ("b", ints(&[Some(2), Some(3), None])),
    ]);
    let (a, bb) = (col(&b, "a"), col(&b, "b"));
    let check = |f, args: Vec<PhysicalExprRef>, expected: ArrayRef| {
        let e = func(f, args);
        assert_eq!(eval(&e, &b).as_ref(), expected.as_ref(), "{e}");
    };
    check(
        ScalarFunction::Coalesce,
        vec![a.clone(), bb.clone(), lit(0i64)],
        ints(&[Some(1), Some(3), Some(5)]),
    );
    check(
        ScalarFunction::Greatest,
        vec![a.clone(), bb.clone()],
        ints(&[Some(2), None, None]),
    );
    check(
        ScalarFunction::Least,
        vec![a.clone(), lit(3i64)],
        ints(&[Some(1), None, Some(3)]),
    );
    check(
        ScalarFunction::NullIf,
        vec![a, lit(5i64)],
        ints(&[Some(1), None, None]),
    );
    let e = func(ScalarFunction::Coalesce, vec![bb, lit(0i64)]);
    assert!(!e.nullable());
}

#[test]
fn time_functions() {
    // 2024-02-29 13:45:30.250 UTC, a Thursday.
    let ms = 1_709_214_330_250i64;
    let b = batch(vec![
        (
            "t",
            Arc::new(TimestampMillisecondArray::from(vec![Some(ms), None])) as ArrayRef,
        ),
        (
            "s",
            strings(&[Some("2024-02-29 13:45:30.250"), Some("nope")]),
        ),
    ]);
    let t = col(&b, "t");
    let parts = [
        (DatePart::Year, 2024),
        (DatePart::Quarter, 1),
        (DatePart::Month, 2),
        (DatePart::Day, 29),
        (DatePart::DayOfWeek, 5),
        (DatePart::DayOfYear, 60),
        (DatePart::Hour, 13),
        (DatePart::Minute, 45),
        (DatePart::Second, 30),
    ];
    for (part, expected) in parts {
        let e = func(ScalarFunction::Extract(part), vec![t.clone()]);
        assert_eq!(
            eval(&e, &b).as_ref(),
            ints(&[Some(expected), None]).as_ref(),
            "{e}"
        );
    }
    let format = func(
        ScalarFunction::DateFormat,
        vec![t, lit("yyyy/MM/dd HH:mm:ss.SSS")],
    );
    assert_eq!(
        eval(&format, &b).as_ref(),
        strings(&[Some("2024/02/29 13:45:30.250"), None]).as_ref()
    );
    let parse = func(ScalarFunction::ToTimestamp, vec![col(&b, "s")]);
    let mut ctx = EvalContext::new(BadDataPolicy::Null, BadRows::new());
    let out = eval_with(&parse, &b, &mut ctx).unwrap();
    assert_eq!(
        out.as_ref(),
        &TimestampMillisecondArray::from(vec![Some(ms), None])
    );
    let err = eval_with(&parse, &b, &mut EvalContext::default()).unwrap_err();
    assert!(
        err.to_string().contains("row 1") && err.to_string().contains("nope"),
        "{err}"
    );
    let date = func(ScalarFunction::ToDate, vec![lit("1970-01-11")]);
    assert_eq!(eval(&date, &b).as_ref(), &Date32Array::from(vec![10, 10]));
}

#[derive(Debug)]
struct Twice {
    broken: bool,
}

impl ScalarUdf for Twice {
    fn name(&self) -> &str {
        "twice"
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType, String> {
        match args {
            [DataType::Int64] => Ok(DataType::Int64),
            other => Err(format!("twice takes a BIGINT, got {other:?}")),
        }
    }
    fn invoke(&self, args: &[ArrayRef], rows: usize) -> Result<ArrayRef, crate::BoxError> {
        if self.broken {
            return Ok(Arc::new(Int64Array::from(vec![0; rows + 1])));
        }
        let a = arrow::compute::kernels::numeric::mul(&args[0], &Int64Array::new_scalar(2))?;
        Ok(a)
    }
}

#[test]
fn user_functions_are_called_and_checked() {
    let b = batch(vec![("a", ints(&[Some(1), None]))]);
    let twice = Arc::new(
        ScalarUdfExpr::try_new(Arc::new(Twice { broken: false }), vec![col(&b, "a")]).unwrap(),
    ) as PhysicalExprRef;
    assert_eq!(twice.to_string(), "twice(a#0)");
    assert_eq!(eval(&twice, &b).as_ref(), ints(&[Some(2), None]).as_ref());
    let broken = Arc::new(
        ScalarUdfExpr::try_new(Arc::new(Twice { broken: true }), vec![col(&b, "a")]).unwrap(),
    ) as PhysicalExprRef;
    let err = eval_with(&broken, &b, &mut EvalContext::default()).unwrap_err();
    assert!(
        matches!(err, EvalError::Udf { .. }) && err.to_string().contains("3 values for 2 rows"),
        "{err}"
    );
    assert!(ScalarUdfExpr::try_new(Arc::new(Twice { broken: false }), vec![lit("x")]).is_err());
}

#[test]
fn finds_every_failing_row_of_a_large_batch() {
    let divisors: Vec<Option<i64>> = (0..100)
        .map(|i| match i {
            3 | 50 | 99 => Some(0),
            7 => None,
            _ => Some(1),
        })
        .collect();
    let b = batch(vec![
        ("a", ints(&vec![Some(5); 100])),
        ("b", ints(&divisors)),
    ]);
    let div = bin(col(&b, "a"), BinaryOperator::Modulo, col(&b, "b"));
    let bad = BadRows::new();
    let mut ctx = EvalContext::new(BadDataPolicy::Skip, bad.clone());
    let out = eval_with(&div, &b, &mut ctx).unwrap();
    assert_eq!(ctx.take_failed_rows(), vec![3, 50, 99]);
    assert_eq!(bad.count(), 3);
    assert_eq!(out.null_count(), 4);
}

#[test]
fn interval_plus_timestamp_and_dates_in_time_functions() {
    let b = batch(vec![
        (
            "d",
            Arc::new(Date32Array::from(vec![Some(59), None])) as ArrayRef,
        ),
        (
            "m",
            Arc::new(IntervalYearMonthArray::from(vec![1, 1])) as ArrayRef,
        ),
    ]);
    let plus = bin(
        col(&b, "m"),
        BinaryOperator::Plus,
        lit(ScalarValue::TimestampMs(0)),
    );
    let day = 86_400_000i64;
    assert_eq!(
        eval(&plus, &b).as_ref(),
        &TimestampMillisecondArray::from(vec![day * 31, day * 31])
    );
    // 1970-03-01, a Sunday.
    let dow = func(
        ScalarFunction::Extract(DatePart::DayOfWeek),
        vec![col(&b, "d")],
    );
    assert_eq!(eval(&dow, &b).as_ref(), ints(&[Some(1), None]).as_ref());
    let format = func(
        ScalarFunction::DateFormat,
        vec![col(&b, "d"), lit("dd.MM.yy 'at' HH")],
    );
    assert_eq!(
        eval(&format, &b).as_ref(),
        strings(&[Some("01.03.70 at 00"), None]).as_ref()
    );
    let bad_pattern = func(ScalarFunction::DateFormat, vec![col(&b, "d"), lit("QQQ")]);
    let err = eval_with(&bad_pattern, &b, &mut EvalContext::default()).unwrap_err();
    assert!(
        err.to_string().contains("unsupported date format letters"),
        "{err}"
    );
}

#[test]
fn greatest_of_strings_and_like_escapes() {
    let b = batch(vec![
        ("s", strings(&[Some("pear"), Some("50%"), None])),
        ("t", strings(&[Some("apple"), Some("5"), Some("x")])),
    ]);
    let greatest = func(ScalarFunction::Greatest, vec![col(&b, "s"), col(&b, "t")]);
    assert_eq!(
        eval(&greatest, &b).as_ref(),
        strings(&[Some("pear"), Some("50%"), None]).as_ref()
    );
    let like = Arc::new(LikeExpr::try_new(col(&b, "s"), lit(r"%\%"), false, false).unwrap())
        as PhysicalExprRef;
    assert_eq!(
        eval(&like, &b).as_ref(),
        &BooleanArray::from(vec![Some(false), Some(true), None])
    );
}
