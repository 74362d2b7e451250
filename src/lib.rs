//! rivulet facade.
#![warn(missing_docs)]
pub use rivulet_runtime as runtime;
