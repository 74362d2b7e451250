//! Key encoding and key groups.
