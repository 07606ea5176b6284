//! Feeding ClickHouse: the table dstore expects (`schema`), one row per event in ClickHouse's
//! RowBinary format (`rows`), a small HTTP client that speaks ClickHouse's compressed insert format
//! (`http`), and the follower that ships a growing store block by block, remembering where it is
//! (`ship`). dstore stays the collector at the edge; ClickHouse is the cluster.

pub mod http;
pub mod rows;
pub mod schema;
pub mod ship;

pub use http::{Client, Endpoint};
pub use schema::{Flavor, Table};
