//! The logical layer of rivulet.
#![warn(missing_docs)]
