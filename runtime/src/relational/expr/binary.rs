//! [`BinaryExpr`]: arithmetic, comparisons and three-valued `AND` / `OR`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Datum, RecordBatch};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use arrow::error::ArrowError;

use super::{
    ColumnarValue, EvalContext, EvalError, ExprError, Operand, PhysicalExpr, PhysicalExprRef,
    decimal, kernel_result, temporal, to_array, with_nulls_at,
};
use crate::relational::ScalarValue;

/// The operator of a [`BinaryExpr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOperator {
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Multiply,
    /// `/`: integer division truncates toward zero.
    Divide,
    /// `%`: the sign follows the dividend.
    Modulo,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`, three-valued.
    And,
    /// `OR`, three-valued.
    Or,
    /// `IS NOT DISTINCT FROM`: equality where two nulls are equal; never null.
    IsNotDistinctFrom,
}

impl BinaryOperator {
    /// The operator as written in SQL.
    pub fn symbol(self) -> &'static str {
        use BinaryOperator as O;
        match self {
            O::Plus => "+",
            O::Minus => "-",
            O::Multiply => "*",
            O::Divide => "/",
            O::Modulo => "%",
            O::Eq => "=",
            O::NotEq => "<>",
            O::Lt => "<",
            O::LtEq => "<=",
            O::Gt => ">",
            O::GtEq => ">=",
            O::And => "AND",
            O::Or => "OR",
            O::IsNotDistinctFrom => "IS NOT DISTINCT FROM",
        }
    }

    fn is_arithmetic(self) -> bool {
        use BinaryOperator as O;
        matches!(
            self,
            O::Plus | O::Minus | O::Multiply | O::Divide | O::Modulo
        )
    }

    fn is_logical(self) -> bool {
        matches!(self, BinaryOperator::And | BinaryOperator::Or)
    }
}

/// The decimal type of `a op b` for decimals `(precision, scale)`, as SQL defines it, capped at
/// 38 digits (keeping the integer digits and at least 6 digits of scale).
///
/// ```
/// use arrow::datatypes::DataType;
/// use rivulet_runtime::relational::expr::{BinaryOperator, decimal_arithmetic_type};
///
/// let t = decimal_arithmetic_type(BinaryOperator::Multiply, (10, 2), (5, 1));
/// assert_eq!(t, DataType::Decimal128(16, 3));
/// ```
pub fn decimal_arithmetic_type(
    op: BinaryOperator,
    (p1, s1): (u8, i8),
    (p2, s2): (u8, i8),
) -> DataType {
    let (p1, s1, p2, s2) = (p1 as i32, s1 as i32, p2 as i32, s2 as i32);
    let (p, s) = match op {
        BinaryOperator::Plus | BinaryOperator::Minus => {
            let s = s1.max(s2);
            (s + (p1 - s1).max(p2 - s2) + 1, s)
        }
        BinaryOperator::Multiply => (p1 + p2 + 1, s1 + s2),
        BinaryOperator::Divide => {
            let s = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + s, s)
        }
        _ => {
            let s = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + s, s)
        }
    };
    let max = decimal::MAX_PRECISION as i32;
    if p <= max {
        DataType::Decimal128(p.max(1) as u8, s as i8)
    } else {
        let int_digits = p - s;
        let s = (max - int_digits).max(s.min(6)).max(0);
        DataType::Decimal128(max as u8, s as i8)
    }
}

/// `left op right`.
///
/// Operands of arithmetic and comparisons must have one type (the planner inserts casts),
/// except for decimals, which may differ in precision and scale, and time arithmetic:
/// `TIMESTAMP ± INTERVAL` (a millisecond duration or a year-month interval), `INTERVAL +
/// TIMESTAMP`, `DATE ± INTERVAL` and `TIMESTAMP - TIMESTAMP`. Integer overflow, decimal overflow
/// and division or modulo by zero are bad data for the row. Literals stay scalars, so comparing
/// a column with a constant does not materialise the constant.
#[derive(Debug)]
pub struct BinaryExpr {
    left: PhysicalExprRef,
    op: BinaryOperator,
    right: PhysicalExprRef,
    data_type: DataType,
}

impl BinaryExpr {
    /// `left op right`, or why the operand types do not fit the operator.
    pub fn try_new(
        left: PhysicalExprRef,
        op: BinaryOperator,
        right: PhysicalExprRef,
    ) -> Result<Self, ExprError> {
        let (lt, rt) = (left.data_type(), right.data_type());
        let fail = |message: String| {
            ExprError::invalid(format!("({left} {} {right})", op.symbol()), message)
        };
        let data_type = if op.is_logical() {
            for t in [&lt, &rt] {
                if !matches!(t, DataType::Boolean | DataType::Null) {
                    return Err(fail(format!(
                        "{} needs BOOLEAN operands, got {t}",
                        op.symbol()
                    )));
                }
            }
            DataType::Boolean
        } else if !op.is_arithmetic() {
            if lt != rt && lt != DataType::Null && rt != DataType::Null {
                return Err(fail(format!(
                    "cannot compare {lt} with {rt}; cast both to one type"
                )));
            }
            DataType::Boolean
        } else {
            arithmetic_type(op, &lt, &rt).map_err(fail)?
        };
        Ok(BinaryExpr {
            left,
            op,
            right,
            data_type,
        })
    }

    /// The operator.
    pub fn op(&self) -> BinaryOperator {
        self.op
    }

    fn arithmetic(
        &self,
        l: ColumnarValue,
        r: ColumnarValue,
        rows: usize,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let (lt, rt) = (l.data_type(), r.data_type());
        if lt == DataType::Null || rt == DataType::Null {
            return Ok(ColumnarValue::Scalar(ScalarValue::Null(
                self.data_type.clone(),
            )));
        }
        if let DataType::Decimal128(p, s) = self.data_type {
            let (la, ra) = (to_array(&l, rows), to_array(&r, rows));
            let out = decimal::arithmetic(self.op, &la, &ra, (p, s), |row, message| {
                ctx.row_failed(self, row, message)
            })?;
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        if lt == DataType::Date32 && matches!(rt, DataType::Duration(_)) {
            let (la, ra) = (to_array(&l, rows), to_array(&r, rows));
            let negate = self.op == BinaryOperator::Minus;
            let out = temporal::date_plus_duration(&la, &ra, negate, |row, message| {
                ctx.row_failed(self, row, message)
            })?;
            return Ok(ColumnarValue::Array(out));
        }
        let kernel: ArithmeticKernel = match self.op {
            BinaryOperator::Plus => numeric::add,
            BinaryOperator::Minus => numeric::sub,
            BinaryOperator::Multiply => numeric::mul,
            BinaryOperator::Divide => numeric::div,
            _ => numeric::rem,
        };
        let (lo, ro) = (Operand::new(&l), Operand::new(&r));
        match kernel(&lo, &ro) {
            Ok(out) => Ok(kernel_result(out, lo.is_scalar() && ro.is_scalar(), rows)),
            Err(e) if is_row_error(&e) => {
                // Some row failed: find which, report them, and compute the others.
                let (la, ra) = (to_array(&l, rows), to_array(&r, rows));
                let mut bad = Vec::new();
                failing_rows(kernel, &la, &ra, 0, rows, &mut bad);
                for (row, message) in &bad {
                    ctx.row_failed(self, *row, message.clone())?;
                }
                let bad: Vec<usize> = bad.into_iter().map(|(row, _)| row).collect();
                if bad.is_empty() {
                    return Err(EvalError::arrow(self, e));
                }
                let la = with_nulls_at(&la, &bad);
                let out = kernel(&la, &ra).map_err(|e| EvalError::arrow(self, e))?;
                Ok(ColumnarValue::Array(out))
            }
            Err(e) => Err(EvalError::arrow(self, e)),
        }
    }

    fn comparison(
        &self,
        l: ColumnarValue,
        r: ColumnarValue,
        rows: usize,
    ) -> Result<ColumnarValue, EvalError> {
        let both_null = l.data_type() == DataType::Null && r.data_type() == DataType::Null;
        if l.data_type() == DataType::Null || r.data_type() == DataType::Null {
            if self.op != BinaryOperator::IsNotDistinctFrom {
                return Ok(ColumnarValue::Scalar(ScalarValue::Null(DataType::Boolean)));
            }
            if both_null {
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(true)));
            }
            // `x IS NOT DISTINCT FROM NULL` is `x IS NULL`.
            let other = if l.data_type() == DataType::Null {
                r
            } else {
                l
            };
            return Ok(match other {
                ColumnarValue::Scalar(v) => {
                    ColumnarValue::Scalar(ScalarValue::Boolean(v.is_null()))
                }
                ColumnarValue::Array(a) => ColumnarValue::Array(Arc::new(
                    boolean::is_null(&a).map_err(|e| EvalError::arrow(self, e))?,
                )),
            });
        }
        let kernel: fn(&dyn Datum, &dyn Datum) -> Result<BooleanArray, ArrowError> = match self.op {
            BinaryOperator::Eq => cmp::eq,
            BinaryOperator::NotEq => cmp::neq,
            BinaryOperator::Lt => cmp::lt,
            BinaryOperator::LtEq => cmp::lt_eq,
            BinaryOperator::Gt => cmp::gt,
            BinaryOperator::GtEq => cmp::gt_eq,
            _ => cmp::not_distinct,
        };
        let (lo, ro) = (Operand::new(&l), Operand::new(&r));
        let out = kernel(&lo, &ro).map_err(|e| EvalError::arrow(self, e))?;
        Ok(kernel_result(
            Arc::new(out),
            lo.is_scalar() && ro.is_scalar(),
            rows,
        ))
    }

    fn logical(
        &self,
        l: ColumnarValue,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let rows = batch.num_rows();
        // Short cut: FALSE AND x is FALSE, TRUE OR x is TRUE, whatever x is.
        let decided = ScalarValue::Boolean(self.op == BinaryOperator::Or);
        match &l {
            ColumnarValue::Scalar(v) if *v == decided => return Ok(l),
            ColumnarValue::Array(a)
                if a.null_count() == 0 && a.data_type() == &DataType::Boolean =>
            {
                let trues = a.as_boolean().true_count();
                if (self.op == BinaryOperator::And && trues == 0)
                    || (self.op == BinaryOperator::Or && trues == rows)
                {
                    return Ok(l);
                }
            }
            _ => {}
        }
        let r = self.right.evaluate(batch, ctx)?;
        let all_scalar = matches!(
            (&l, &r),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let len = if all_scalar { 1 } else { rows };
        let (la, ra) = (as_boolean(&l, len, self)?, as_boolean(&r, len, self)?);
        let out = match self.op {
            BinaryOperator::And => boolean::and_kleene(&la, &ra),
            _ => boolean::or_kleene(&la, &ra),
        }
        .map_err(|e| EvalError::arrow(self, e))?;
        Ok(kernel_result(Arc::new(out), all_scalar, rows))
    }
}

/// `value` as a boolean array of `len` rows (a null-typed value becomes boolean nulls).
pub(crate) fn as_boolean(
    value: &ColumnarValue,
    len: usize,
    expr: &dyn fmt::Display,
) -> Result<BooleanArray, EvalError> {
    let array = to_array(value, len);
    let array: ArrayRef = if array.data_type() == &DataType::Boolean {
        array
    } else {
        arrow::compute::cast(&array, &DataType::Boolean).map_err(|e| EvalError::arrow(expr, e))?
    };
    Ok(array.as_boolean().clone())
}

fn arithmetic_type(op: BinaryOperator, lt: &DataType, rt: &DataType) -> Result<DataType, String> {
    use DataType as T;
    let sym = op.symbol();
    let is_interval = |t: &DataType| {
        matches!(
            t,
            T::Duration(TimeUnit::Millisecond) | T::Interval(IntervalUnit::YearMonth)
        )
    };
    let additive = matches!(op, BinaryOperator::Plus | BinaryOperator::Minus);
    Ok(match (lt, rt) {
        (T::Null, T::Null) => T::Null,
        (T::Decimal128(p1, s1), T::Decimal128(p2, s2)) => {
            decimal_arithmetic_type(op, (*p1, *s1), (*p2, *s2))
        }
        (T::Null, t) | (t, T::Null) if t.is_numeric() => t.clone(),
        (l, r) if l == r && l.is_numeric() => l.clone(),
        (T::Timestamp(TimeUnit::Millisecond, tz), r) if additive && is_interval(r) => {
            T::Timestamp(TimeUnit::Millisecond, tz.clone())
        }
        (l, T::Timestamp(TimeUnit::Millisecond, tz))
            if op == BinaryOperator::Plus && is_interval(l) =>
        {
            T::Timestamp(TimeUnit::Millisecond, tz.clone())
        }
        (T::Date32, r) if additive && is_interval(r) => T::Date32,
        (T::Timestamp(TimeUnit::Millisecond, _), T::Timestamp(TimeUnit::Millisecond, _))
            if op == BinaryOperator::Minus =>
        {
            T::Duration(TimeUnit::Millisecond)
        }
        _ => {
            return Err(format!(
                "{sym} needs numbers of one type (or TIMESTAMP(3)/DATE with an INTERVAL), got {lt} and {rt}"
            ));
        }
    })
}

type ArithmeticKernel = fn(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>;

/// The rows in `offset..offset + len` where `kernel` fails, found by bisection, so a batch with
/// a few bad rows costs a few kernel calls per bad row.
fn failing_rows(
    kernel: ArithmeticKernel,
    left: &ArrayRef,
    right: &ArrayRef,
    offset: usize,
    len: usize,
    out: &mut Vec<(usize, String)>,
) {
    if len == 0 {
        return;
    }
    let result = kernel(&left.slice(offset, len), &right.slice(offset, len));
    match result {
        Ok(_) => {}
        Err(e) if len == 1 => out.push((offset, row_error_message(&e))),
        Err(_) => {
            let half = len / 2;
            failing_rows(kernel, left, right, offset, half, out);
            failing_rows(kernel, left, right, offset + half, len - half, out);
        }
    }
}

fn is_row_error(e: &ArrowError) -> bool {
    matches!(
        e,
        ArrowError::ArithmeticOverflow(_) | ArrowError::DivideByZero | ArrowError::ComputeError(_)
    )
}

fn row_error_message(e: &ArrowError) -> String {
    match e {
        ArrowError::DivideByZero => "division by zero".to_owned(),
        ArrowError::ArithmeticOverflow(m) => format!("overflow: {}", m.trim()),
        other => other.to_string(),
    }
}

impl fmt::Display for BinaryExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {} {})", self.left, self.op.symbol(), self.right)
    }
}

impl PhysicalExpr for BinaryExpr {
    fn data_type(&self) -> DataType {
        self.data_type.clone()
    }

    fn nullable(&self) -> bool {
        match self.op {
            BinaryOperator::IsNotDistinctFrom => false,
            // Division by zero and overflow are bad data, null under the null policy.
            BinaryOperator::Divide | BinaryOperator::Modulo => true,
            BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply => {
                self.left.nullable() || self.right.nullable() || !self.data_type.is_floating()
            }
            _ => self.left.nullable() || self.right.nullable(),
        }
    }

    fn evaluate(
        &self,
        batch: &RecordBatch,
        ctx: &mut EvalContext,
    ) -> Result<ColumnarValue, EvalError> {
        let l = self.left.evaluate(batch, ctx)?;
        if self.op.is_logical() {
            return self.logical(l, batch, ctx);
        }
        let r = self.right.evaluate(batch, ctx)?;
        let rows = batch.num_rows();
        if self.op.is_arithmetic() {
            self.arithmetic(l, r, rows, ctx)
        } else {
            self.comparison(l, r, rows)
        }
    }
}
