//! Addresses: CIDR ranges (the `trusted_proxies` setting) and the
//! special-purpose address ranges that webhooks may not reach. Pure: the
//! host's own interface addresses are passed in by the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range in CIDR form (`10.0.0.0/8`, `::1/128`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Result<IpRange, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a prefix length outside 0-{max}"))?,
        };
        Ok(IpRange { base, prefix })
    }

    const fn v4(a: [u8; 4], prefix: u8) -> IpRange {
        IpRange {
            base: IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            prefix,
        }
    }

    const fn v6(s: [u16; 8], prefix: u8) -> IpRange {
        IpRange {
            base: IpAddr::V6(Ipv6Addr::new(
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
            )),
            prefix,
        }
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

/// IANA's IPv4 Special-Purpose Address Registry, and multicast.
const SPECIAL_V4: [IpRange; 19] = [
    IpRange::v4([0, 0, 0, 0], 8),
    IpRange::v4([10, 0, 0, 0], 8),
    IpRange::v4([100, 64, 0, 0], 10),
    IpRange::v4([127, 0, 0, 0], 8),
    IpRange::v4([169, 254, 0, 0], 16),
    IpRange::v4([172, 16, 0, 0], 12),
    IpRange::v4([192, 0, 0, 0], 24),
    IpRange::v4([192, 0, 2, 0], 24),
    IpRange::v4([192, 31, 196, 0], 24),
    IpRange::v4([192, 52, 193, 0], 24),
    IpRange::v4([192, 88, 99, 0], 24),
    IpRange::v4([192, 168, 0, 0], 16),
    IpRange::v4([192, 175, 48, 0], 24),
    IpRange::v4([198, 18, 0, 0], 15),
    IpRange::v4([198, 51, 100, 0], 24),
    IpRange::v4([203, 0, 113, 0], 24),
    IpRange::v4([224, 0, 0, 0], 4),
    IpRange::v4([240, 0, 0, 0], 4),
    IpRange::v4([255, 255, 255, 255], 32),
];

/// IANA's IPv6 Special-Purpose Address Registry and multicast, less the
/// two forms that embed an IPv4 address worth judging on its own
/// (IPv4-mapped `::ffff:0:0/96` and NAT64 `64:ff9b::/96`). The IPv4-compatible
/// (`::/96`), 6to4 (`2002::/16`) and Teredo (`2001::/32`, in `2001::/23`)
/// forms are refused whole: each can carry any IPv4 address.
const SPECIAL_V6: [IpRange; 12] = [
    IpRange::v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
    IpRange::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
    IpRange::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
    IpRange::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
    IpRange::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
    IpRange::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
    IpRange::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    IpRange::v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
    IpRange::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
    IpRange::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    IpRange::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
    IpRange::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
];

const NAT64: IpRange = IpRange::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// True for an address in a special-purpose range (loopback, private,
/// link-local, shared, documentation, benchmarking, multicast, reserved, …),
/// directly or as the IPv4 address embedded in an IPv6 one, and for any of
/// `own` (the host's interface addresses).
pub fn is_special(ip: &IpAddr, own: &[IpAddr]) -> bool {
    if own.contains(ip) {
        return true;
    }
    match ip {
        IpAddr::V4(_) => SPECIAL_V4.iter().any(|r| r.contains(ip)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_special(&IpAddr::V4(v4), own);
            }
            if NAT64.contains(ip) {
                let [.., a, b, c, d] = v6.octets();
                return is_special(&IpAddr::V4(Ipv4Addr::new(a, b, c, d)), own);
            }
            SPECIAL_V6.iter().any(|r| r.contains(ip))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special(s: &str) -> bool {
        is_special(&s.parse().unwrap(), &[])
    }

    #[test]
    fn special_purpose_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "0.0.0.1",
            "10.1.2.3",
            "100.64.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.9",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:5db8:d70e::",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(special(s), "{s} is special-purpose");
        }
        for s in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:93.184.215.14",
            "64:ff9b::5db8:d70e",
        ] {
            assert!(!special(s), "{s} is a public address");
        }
    }

    #[test]
    fn the_hosts_own_addresses_are_special() {
        let own: IpAddr = "93.184.215.14".parse().unwrap();
        assert!(is_special(&own, &[own]));
        assert!(is_special(&"::ffff:93.184.215.14".parse().unwrap(), &[own]));
    }

    #[test]
    fn ranges_parse_and_contain() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(&"10.200.1.1".parse().unwrap()));
        assert!(!r.contains(&"11.0.0.1".parse().unwrap()));
        assert!(!r.contains(&"::1".parse().unwrap()));
        let one = IpRange::parse("::1").unwrap();
        assert!(one.contains(&"::1".parse().unwrap()));
        assert!(IpRange::parse("0.0.0.0/0")
            .unwrap()
            .contains(&"1.2.3.4".parse().unwrap()));
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("nonsense").is_err());
    }
}
