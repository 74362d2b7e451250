//! The Table API of rivulet.
#![warn(missing_docs)]

pub mod convert;

pub use convert::{
    ConvertError, fields_of, fields_of_with_timestamps, from_record_batch, to_record_batch,
};
