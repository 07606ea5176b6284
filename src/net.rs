//! Address ranges (CIDR) as operators write them: `10.0.0.0/8`, `2001:db8::/32`, or a single
//! address. Used by ingest's allow-from, and by the filters that match requestors and answers.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// PowerDNS's own default allow-from: loopback, the private and link-local ranges.
pub const DEFAULT_ALLOW_FROM: &str =
    "127.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 169.254.0.0/16, 192.168.0.0/16, 172.16.0.0/12, ::1/128, fc00::/7, fe80::/10";

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an address or a range such as 10.0.0.0/8"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a comma- or space-separated list of ranges.
pub fn parse_cidr_list(s: &str) -> Result<Vec<Cidr>, String> {
    s.split([',', ' ', '\t'])
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_v4_v6_and_mapped_addresses() {
        let list = parse_cidr_list(DEFAULT_ALLOW_FROM).unwrap();
        let allowed = |a: &str| list.iter().any(|c| c.contains(a.parse().unwrap()));
        assert!(allowed("127.0.0.1"));
        assert!(allowed("::ffff:10.1.2.3"));
        assert!(allowed("172.31.255.255"));
        assert!(!allowed("172.32.0.1"));
        assert!(allowed("::1"));
        assert!(allowed("fd00::1"));
        assert!(!allowed("8.8.8.8"));
        assert!(!allowed("2001:db8::1"));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("192.0.2.1".parse().unwrap()));
        assert!(!any.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn refuses_bad_ranges() {
        for bad in ["10.0.0.0/33", "::/129", "banana", "10.0.0.0/", "1.2.3/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "192.0.2.7".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7/32"
        );
    }
}
