//! The host names the proxy serves: the bulkexports and voice API hosts, with
//! the region and edge forms the official clients build
//! (`{product}.{edge}.{region}.twilio.com`). The same list makes the CA's name
//! constraints, so a name the proxy refuses is one the CA cannot vouch for.

/// The products served.
pub const PRODUCTS: [&str; 2] = ["bulkexports", "voice"];
/// Twilio's regions.
pub const REGIONS: [&str; 8] = ["us1", "us2", "ie1", "au1", "jp1", "sg1", "de1", "br1"];
/// Twilio's edge locations.
pub const EDGES: [&str; 9] = [
    "ashburn",
    "dublin",
    "frankfurt",
    "roaming",
    "sao-paulo",
    "singapore",
    "sydney",
    "tokyo",
    "umatilla",
];

/// Every host name served, in a fixed order.
pub fn all() -> Vec<String> {
    let mut names = Vec::new();
    for product in PRODUCTS {
        names.push(format!("{product}.twilio.com"));
        for region in REGIONS {
            names.push(format!("{product}.{region}.twilio.com"));
            for edge in EDGES {
                names.push(format!("{product}.{edge}.{region}.twilio.com"));
            }
        }
    }
    names
}

/// The served name `host` stands for (lower-cased, without a trailing dot),
/// or None when the proxy must refuse it.
pub fn served(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let ok = match labels.as_slice() {
        [product, "twilio", "com"] => PRODUCTS.contains(product),
        [product, region, "twilio", "com"] => {
            PRODUCTS.contains(product) && REGIONS.contains(region)
        }
        [product, edge, region, "twilio", "com"] => {
            PRODUCTS.contains(product) && EDGES.contains(edge) && REGIONS.contains(region)
        }
        _ => false,
    };
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_exactly_the_listed_names() {
        for name in all() {
            assert_eq!(served(&name).as_deref(), Some(name.as_str()));
        }
        assert_eq!(
            served("BulkExports.Twilio.com.").as_deref(),
            Some("bulkexports.twilio.com")
        );
        assert_eq!(
            served("bulkexports.sydney.au1.twilio.com").as_deref(),
            Some("bulkexports.sydney.au1.twilio.com")
        );
        for refused in [
            "api.twilio.com",
            "twilio.com",
            "example.com",
            "bulkexports.twilio.com.evil.example",
            "bulkexports.nowhere.twilio.com",
            "x.bulkexports.twilio.com",
            "127.0.0.1",
            "",
        ] {
            assert_eq!(served(refused), None, "{refused}");
        }
    }
}
