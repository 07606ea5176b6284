//! JSON for one event.
