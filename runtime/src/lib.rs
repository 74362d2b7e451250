//! The runtime layer of rivulet.
#![warn(missing_docs)]

pub mod keys;
pub mod state;
