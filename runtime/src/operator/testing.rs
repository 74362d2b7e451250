//! A harness for unit-testing operators by hand, without a job: feed batches and watermarks,
//! then look at what the operator emitted.

use super::Output;
use crate::error::TaskError;

/// An [`Output`] that records everything an operator emits.
///
/// ```
/// use rivulet_runtime::operator::testing::RecordingOutput;
/// use rivulet_runtime::{Operator, OperatorContext, Output, Records, TaskError};
///
/// struct Double;
/// impl Operator for Double {
///     type In = Records<i64>;
///     type Out = Records<i64>;
///     fn process_batch(&mut self, b: Records<i64>, out: &mut dyn Output<Records<i64>>) -> Result<(), TaskError> {
///         out.collect(b.map(|x| x * 2))
///     }
/// }
///
/// let mut op = Double;
/// let mut out = RecordingOutput::default();
/// op.open(&OperatorContext::new("double", 0, 1, 128)).unwrap();
/// op.process_batch(Records::from(vec![1, 2]), &mut out).unwrap();
/// op.process_watermark(10, &mut out).unwrap();
/// assert_eq!(out.batches[0].values(), &[2, 4]);
/// assert_eq!(out.watermarks, vec![10]);
/// ```
#[derive(Debug)]
pub struct RecordingOutput<B> {
    /// Every batch, in order.
    pub batches: Vec<B>,
    /// Every watermark, in order.
    pub watermarks: Vec<i64>,
    /// Every idleness change, in order.
    pub idle: Vec<bool>,
    /// Whether the output was finished.
    pub finished: bool,
}

impl<B> Default for RecordingOutput<B> {
    fn default() -> Self {
        RecordingOutput {
            batches: Vec::new(),
            watermarks: Vec::new(),
            idle: Vec::new(),
            finished: false,
        }
    }
}

impl<B: Send> Output<B> for RecordingOutput<B> {
    fn collect(&mut self, batch: B) -> Result<(), TaskError> {
        self.batches.push(batch);
        Ok(())
    }

    fn emit_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        self.watermarks.push(watermark);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TaskError> {
        self.finished = true;
        Ok(())
    }

    fn emit_idle(&mut self, idle: bool) -> Result<(), TaskError> {
        self.idle.push(idle);
        Ok(())
    }
}
