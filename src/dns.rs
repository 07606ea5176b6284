//! DNS names for numbers: query type mnemonics (`A`, `AAAA`, `HTTPS`, ...) and response code names
//! (`NOERROR`, `NXDOMAIN`, ...), both ways. The JSON output prints them and the query parser reads
//! them back, so each table lives here once. Numbers without a name use the RFC 3597 generic form
//! `TYPE<n>` (and `RCODE<n>` likewise), which the `_from_name` functions accept too.

use std::borrow::Cow;

/// Query and resource record types, from the IANA "Resource Record (RR) TYPEs" registry, plus the
/// two private-use types that the PowerDNS Authoritative Server serves (ALIAS, LUA).
const QTYPES: &[(u32, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (22, "NSAP"),
    (23, "NSAP-PTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (31, "EID"),
    (32, "NIMLOC"),
    (33, "SRV"),
    (34, "ATMA"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (38, "A6"),
    (39, "DNAME"),
    (40, "SINK"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (56, "NINFO"),
    (57, "RKEY"),
    (58, "TALINK"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (66, "DSYNC"),
    (99, "SPF"),
    (100, "UINFO"),
    (101, "UID"),
    (102, "GID"),
    (103, "UNSPEC"),
    (104, "NID"),
    (105, "L32"),
    (106, "L64"),
    (107, "LP"),
    (108, "EUI48"),
    (109, "EUI64"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (258, "AVC"),
    (259, "DOA"),
    (260, "AMTRELAY"),
    (261, "RESINFO"),
    (262, "WALLET"),
    (32768, "TA"),
    (32769, "DLV"),
    (65401, "ALIAS"),
    (65402, "LUA"),
];

/// Response codes (IANA "DNS RCODEs"), plus PowerDNS's 65536 for "no answer: network error or
/// timeout", which is not a DNS rcode but does appear in the rcode field of its protobuf messages.
/// 16 is both BADVERS and BADSIG; a DNS message header can only say BADVERS.
const RCODES: &[(u32, &str)] = &[
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (6, "YXDOMAIN"),
    (7, "YXRRSET"),
    (8, "NXRRSET"),
    (9, "NOTAUTH"),
    (10, "NOTZONE"),
    (11, "DSOTYPENI"),
    (16, "BADVERS"),
    (17, "BADKEY"),
    (18, "BADTIME"),
    (19, "BADMODE"),
    (20, "BADNAME"),
    (21, "BADALG"),
    (22, "BADTRUNC"),
    (23, "BADCOOKIE"),
    (65536, "NETWORK_ERROR"),
];

/// Names accepted on input only: aliases that never come out of `*_name`.
const QTYPE_ALIASES: &[(&str, u32)] = &[("*", 255)];
const RCODE_ALIASES: &[(&str, u32)] = &[("BADSIG", 16), ("NOTIMPL", 4)];

fn name_of(table: &'static [(u32, &'static str)], n: u32, generic: &str) -> Cow<'static, str> {
    match table.iter().find(|(v, _)| *v == n) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(format!("{generic}{n}")),
    }
}

fn number_of(
    table: &[(u32, &str)],
    aliases: &[(&str, u32)],
    name: &str,
    generic: &str,
) -> Option<u32> {
    let name = name.trim();
    if let Some((v, _)) = table.iter().find(|(_, s)| s.eq_ignore_ascii_case(name)) {
        return Some(*v);
    }
    if let Some((_, v)) = aliases.iter().find(|(s, _)| s.eq_ignore_ascii_case(name)) {
        return Some(*v);
    }
    let (prefix, rest) = name.split_at_checked(generic.len())?;
    if !prefix.eq_ignore_ascii_case(generic)
        || rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    rest.parse().ok()
}

/// The mnemonic of a query type: `A`, `AAAA`, ..., or `TYPE<n>` for one without a name.
pub fn qtype_name(qtype: u32) -> Cow<'static, str> {
    name_of(QTYPES, qtype, "TYPE")
}

/// The number of a query type mnemonic, any case; also takes `TYPE<n>` and `*` (ANY).
pub fn qtype_from_name(name: &str) -> Option<u32> {
    number_of(QTYPES, QTYPE_ALIASES, name, "TYPE")
}

/// The name of a response code: `NOERROR`, `NXDOMAIN`, ..., `NETWORK_ERROR` for PowerDNS's 65536,
/// or `RCODE<n>` for one without a name.
pub fn rcode_name(rcode: u32) -> Cow<'static, str> {
    name_of(RCODES, rcode, "RCODE")
}

/// The number of a response code name, any case; also takes `RCODE<n>`.
pub fn rcode_from_name(name: &str) -> Option<u32> {
    number_of(RCODES, RCODE_ALIASES, name, "RCODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qtype_names_round_trip() {
        for &(n, name) in QTYPES {
            assert_eq!(qtype_name(n), name);
            assert_eq!(qtype_from_name(name), Some(n));
            assert_eq!(qtype_from_name(&name.to_ascii_lowercase()), Some(n));
        }
        assert_eq!(qtype_name(28), "AAAA");
        assert_eq!(qtype_name(65), "HTTPS");
        assert_eq!(qtype_name(4242), "TYPE4242");
        assert_eq!(qtype_from_name("TYPE4242"), Some(4242));
        assert_eq!(qtype_from_name("type28"), Some(28));
        assert_eq!(qtype_from_name("*"), Some(255));
    }

    #[test]
    fn qtype_from_name_rejects_garbage() {
        for bad in [
            "",
            "TYPE",
            "TYPE-1",
            "TYPE+1",
            "TYPE1x",
            "TYPE99999999999",
            "AAAAA",
            "é",
        ] {
            assert_eq!(qtype_from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rcode_names_round_trip() {
        for &(n, name) in RCODES {
            assert_eq!(rcode_name(n), name);
            assert_eq!(rcode_from_name(name), Some(n));
        }
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(65536), "NETWORK_ERROR");
        assert_eq!(rcode_name(12), "RCODE12");
        assert_eq!(rcode_from_name("rcode12"), Some(12));
        assert_eq!(rcode_from_name("nxdomain"), Some(3));
        assert_eq!(rcode_from_name("BADSIG"), Some(16));
        assert_eq!(rcode_from_name("RCODE"), None);
        assert_eq!(rcode_from_name("3"), None);
    }
}
