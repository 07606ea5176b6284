//! The storage format.
