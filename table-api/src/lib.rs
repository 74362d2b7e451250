//! The Table API of rivulet.
#![warn(missing_docs)]
