//! The ClickHouse table dstore inserts into: one row per event, its columns in one list that the
//! CREATE TABLE, the INSERT and the row encoder (`rows`) all follow. Two flavors: `Modern` for
//! ClickHouse 20.1 and later (DateTime64, IPv6, UUID, LowCardinality, a TTL) and `Legacy` for older
//! servers such as Debian's 18.16 (DateTime plus a microseconds column, FixedString(16) addresses
//! and ids, String).
//!
//! The table is a ReplacingMergeTree whose sorting key ends in the event's identity (`node`, `seq`):
//! an event shipped twice (a crash between an insert and the position being saved) is the same row
//! twice, which merges fold into one; `SELECT ... FINAL` folds them at query time.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Modern,
    Legacy,
}

impl Flavor {
    /// The flavor a server of this version (`SELECT version()`, e.g. `18.16.1` or `24.8.4.13`)
    /// takes: DateTime64 came with 20.1, the last of the modern types to arrive.
    pub fn for_version(version: &str) -> Result<Flavor, String> {
        let mut parts = version.trim().split('.').map(|p| p.parse::<u32>());
        match (parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => Ok(if (major, minor) >= (20, 1) {
                Flavor::Modern
            } else {
                Flavor::Legacy
            }),
            _ => Err(format!("`{}` is not a ClickHouse version", version.trim())),
        }
    }

    /// The flavor of an existing table, from the type of its `time` column.
    pub fn of_time_column(column_type: &str) -> Option<Flavor> {
        if column_type.starts_with("DateTime64") {
            Some(Flavor::Modern)
        } else if column_type.starts_with("DateTime") {
            Some(Flavor::Legacy)
        } else {
            None
        }
    }

    pub fn parse(s: &str) -> Result<Option<Flavor>, String> {
        match s {
            "auto" => Ok(None),
            "modern" => Ok(Some(Flavor::Modern)),
            "legacy" => Ok(Some(Flavor::Legacy)),
            _ => Err(format!("`{s}` is not a schema: auto, modern or legacy")),
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Modern => "modern",
            Flavor::Legacy => "legacy",
        })
    }
}

/// One column: its name and its type in each flavor (`None`: the flavor has no such column).
pub struct Column {
    pub name: &'static str,
    pub modern: Option<&'static str>,
    pub legacy: Option<&'static str>,
}

const fn both(name: &'static str, modern: &'static str, legacy: &'static str) -> Column {
    Column {
        name,
        modern: Some(modern),
        legacy: Some(legacy),
    }
}

const fn same(name: &'static str, ty: &'static str) -> Column {
    both(name, ty, ty)
}

/// The columns, in the order rows are written. Addresses are 16 bytes (IPv4 mapped into IPv6, as
/// ClickHouse's IPv6 type and `IPv6NumToString` expect); a query has no rcode or latency (NULL).
pub const COLUMNS: &[Column] = &[
    both("time", "DateTime64(6, 'UTC')", "DateTime('UTC')"),
    Column {
        name: "time_usec",
        modern: None,
        legacy: Some("UInt32"),
    },
    both("node", "LowCardinality(String)", "String"),
    same("seq", "UInt64"),
    both("type", "LowCardinality(String)", "String"),
    same("undecodable", "UInt8"),
    both("message_id", "UUID", "FixedString(16)"),
    both("server_identity", "LowCardinality(String)", "String"),
    both("protocol", "LowCardinality(String)", "String"),
    both("requestor", "IPv6", "FixedString(16)"),
    same("requestor_port", "UInt16"),
    both("responder", "IPv6", "FixedString(16)"),
    same("responder_port", "UInt16"),
    same("in_bytes", "UInt32"),
    same("id", "UInt16"),
    same("qname", "String"),
    same("qtype", "UInt16"),
    same("qclass", "UInt16"),
    same("rcode", "Nullable(UInt8)"),
    same("latency_usec", "Nullable(UInt32)"),
    same("answer_names", "Array(String)"),
    same("answer_types", "Array(UInt16)"),
    same("answer_ttls", "Array(UInt32)"),
    same("answer_data", "Array(String)"),
    same("applied_policy", "String"),
    same("policy_tags", "Array(String)"),
    same("ecs", "String"),
    same("requestor_id", "String"),
    same("device_id", "String"),
    both("device_name", "LowCardinality(String)", "String"),
];

/// A table to insert into: `[database.]name`, its flavor, and (modern only) how many days rows
/// live (0: forever).
#[derive(Clone, Debug)]
pub struct Table {
    pub database: Option<String>,
    pub name: String,
    pub flavor: Flavor,
    pub ttl_days: u32,
}

/// Checks a database or table name: letters, digits and `_`, not starting with a digit, so that
/// it needs no quoting and cannot smuggle SQL.
fn identifier(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a table name (letters, digits and _, optionally DATABASE.TABLE)"
        ))
    }
}

impl Table {
    /// `events` or `db.events`.
    pub fn parse(text: &str, flavor: Flavor, ttl_days: u32) -> Result<Table, String> {
        let (database, name) = match text.split_once('.') {
            Some((db, name)) => (Some(identifier(db)?), identifier(name)?),
            None => (None, identifier(text)?),
        };
        Ok(Table {
            database,
            name,
            flavor,
            ttl_days,
        })
    }

    pub fn qualified(&self) -> String {
        match &self.database {
            Some(db) => format!("{db}.{}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn columns(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        COLUMNS.iter().filter_map(|c| {
            let ty = match self.flavor {
                Flavor::Modern => c.modern,
                Flavor::Legacy => c.legacy,
            };
            ty.map(|ty| (c.name, ty))
        })
    }

    /// The CREATE TABLE statement. Sorted by name then time, so that a name's events over a time
    /// range are one contiguous read; partitioned by day, so that dropping old days is cheap.
    pub fn create_statement(&self) -> String {
        let columns: Vec<String> = self
            .columns()
            .map(|(name, ty)| format!("    {name} {ty}"))
            .collect();
        let (partition, ttl) = match self.flavor {
            Flavor::Modern => (
                "toDate(time)",
                (self.ttl_days > 0)
                    .then(|| format!("TTL toDateTime(time) + INTERVAL {} DAY\n", self.ttl_days)),
            ),
            Flavor::Legacy => ("toYYYYMMDD(time)", None),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {}\n(\n{}\n)\nENGINE = ReplacingMergeTree\nPARTITION BY {partition}\nORDER BY (qname, time, node, seq)\n{}",
            self.qualified(),
            columns.join(",\n"),
            ttl.unwrap_or_default()
        )
    }

    /// The INSERT that the batches follow (their data in RowBinary).
    pub fn insert_statement(&self) -> String {
        let names: Vec<&str> = self.columns().map(|(n, _)| n).collect();
        format!(
            "INSERT INTO {} ({}) FORMAT RowBinary",
            self.qualified(),
            names.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_follows_the_server_version() {
        assert_eq!(Flavor::for_version("18.16.1"), Ok(Flavor::Legacy));
        assert_eq!(Flavor::for_version("19.17.4.11"), Ok(Flavor::Legacy));
        assert_eq!(Flavor::for_version("20.1.2.4"), Ok(Flavor::Modern));
        assert_eq!(Flavor::for_version("26.1.1.1\n"), Ok(Flavor::Modern));
        assert!(Flavor::for_version("<html>").is_err());
        assert_eq!(
            Flavor::of_time_column("DateTime64(6, 'UTC')"),
            Some(Flavor::Modern)
        );
        assert_eq!(
            Flavor::of_time_column("DateTime('UTC')"),
            Some(Flavor::Legacy)
        );
        assert_eq!(Flavor::of_time_column(""), None);
    }

    #[test]
    fn names_are_checked_and_statements_follow_the_columns() {
        assert!(Table::parse("x; DROP TABLE y", Flavor::Modern, 0).is_err());
        assert!(Table::parse("1abc", Flavor::Modern, 0).is_err());
        assert!(Table::parse("a.b.c", Flavor::Modern, 0).is_err());
        let t = Table::parse("dns.events", Flavor::Legacy, 30).unwrap();
        assert_eq!(t.qualified(), "dns.events");
        let create = t.create_statement();
        assert!(create.contains("time_usec UInt32"));
        assert!(!create.contains("TTL"), "18.16 has no TTL: {create}");
        let modern = Table::parse("events", Flavor::Modern, 30).unwrap();
        let create = modern.create_statement();
        assert!(create.contains("time DateTime64(6, 'UTC')"));
        assert!(!create.contains("time_usec"));
        assert!(create.contains("TTL toDateTime(time) + INTERVAL 30 DAY"));
        assert_eq!(modern.columns().count() + 1, t.columns().count());
        assert!(modern
            .insert_statement()
            .starts_with("INSERT INTO events (time, node, seq, type,"));
    }
}
