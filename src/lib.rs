//! dstore: receive, store and search PowerDNS protobuf DNS event streams.
//!
//! `format` is the on-disk storage format and knows nothing of the applets, the network or HTTP.
//! `applets` holds the command-line programs that the single `dstore` executable dispatches to.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod applets;
pub mod clickhouse;
pub mod config;
pub mod dns;
pub mod event_json;
pub mod filter;
pub mod format;
pub mod frame;
pub mod gateway;
pub mod ingest;
pub mod log;
pub mod metrics;
pub mod net;
pub mod pb;
pub mod search;
pub mod timespec;
