//! The special-purpose table, range by range: an example address for every
//! row, plain and in each IPv6 form that embeds an IPv4 address, judged
//! under every policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{SPECIAL_PURPOSE, range_of};
use crate::AddressPolicy;

/// Which policy lets an example through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Always,
    WithLoopback,
    WithPrivate,
    Never,
}

use Allowed::{Always, Never, WithLoopback, WithPrivate};

const LOOPBACK: &str = "a loopback address";
const PRIVATE: &str = "a private address";
const LINK_LOCAL: &str = "a link-local address";
const METADATA: &str = "a cloud metadata address";
const UNSPECIFIED: &str = "an unspecified address";
const BROADCAST: &str = "a broadcast address";
const MULTICAST: &str = "a multicast address";
const DOCUMENTATION: &str = "a documentation address";
const RESERVED: &str = "a reserved address";
const SITE_LOCAL: &str = "a site-local address";
const LOCAL_NAT64: &str = "a local-use NAT64 address";

/// One IPv4 example per row of the IPv4 half of the table (ends of the
/// larger ranges too), then public addresses just outside them. Each is
/// also tried in every IPv6 form that embeds an IPv4 address.
const IPV4: &[(&str, Option<&str>, Allowed)] = &[
    ("0.1.2.3", Some(UNSPECIFIED), Never),
    ("0.255.255.255", Some(UNSPECIFIED), Never),
    ("10.0.0.1", Some(PRIVATE), WithPrivate),
    ("10.255.255.254", Some(PRIVATE), WithPrivate),
    ("100.64.0.1", Some(PRIVATE), WithPrivate),
    ("100.127.255.254", Some(PRIVATE), WithPrivate),
    ("127.0.0.1", Some(LOOPBACK), WithLoopback),
    ("127.255.255.254", Some(LOOPBACK), WithLoopback),
    ("169.254.169.254", Some(METADATA), Never),
    ("169.254.170.2", Some(METADATA), Never),
    ("169.254.170.23", Some(METADATA), Never),
    ("100.100.100.200", Some(METADATA), Never),
    ("169.254.10.1", Some(LINK_LOCAL), Never),
    ("172.16.0.1", Some(PRIVATE), WithPrivate),
    ("172.31.255.254", Some(PRIVATE), WithPrivate),
    ("192.0.0.9", Some(RESERVED), Never),
    ("192.0.0.170", Some(RESERVED), Never),
    ("192.0.2.1", Some(DOCUMENTATION), Never),
    ("192.31.196.1", Some(RESERVED), Never),
    ("192.52.193.1", Some(RESERVED), Never),
    ("192.88.99.1", Some(RESERVED), Never),
    ("192.168.1.1", Some(PRIVATE), WithPrivate),
    ("192.175.48.1", Some(RESERVED), Never),
    ("198.18.0.1", Some(RESERVED), Never),
    ("198.19.255.254", Some(RESERVED), Never),
    ("198.51.100.1", Some(DOCUMENTATION), Never),
    ("203.0.113.1", Some(DOCUMENTATION), Never),
    ("224.0.0.1", Some(MULTICAST), Never),
    ("239.255.255.250", Some(MULTICAST), Never),
    ("240.0.0.1", Some(RESERVED), Never),
    ("255.255.255.254", Some(RESERVED), Never),
    ("255.255.255.255", Some(BROADCAST), Never),
    ("1.1.1.1", None, Always),
    ("93.184.216.34", None, Always),
    ("100.128.0.1", None, Always),
    ("172.32.0.1", None, Always),
    ("192.0.3.1", None, Always),
    ("198.20.0.1", None, Always),
    ("223.255.255.254", None, Always),
];

/// One IPv6 example per row of the IPv6 half of the table, with the
/// message under the default policy; then public addresses.
const IPV6: &[(&str, Option<&str>, Allowed)] = &[
    ("0.0.0.0", Some(UNSPECIFIED), Never),
    ("::", Some(UNSPECIFIED), Never),
    ("::1", Some(LOOPBACK), WithLoopback),
    ("fd00:ec2::254", Some(METADATA), Never),
    ("fd00:ec2::23", Some(METADATA), Never),
    ("fd12::1", Some(PRIVATE), WithPrivate),
    ("fc00::1", Some(PRIVATE), WithPrivate),
    (
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(PRIVATE),
        WithPrivate,
    ),
    ("fe80::1", Some(LINK_LOCAL), Never),
    ("febf:ffff::1", Some(LINK_LOCAL), Never),
    ("fec0::1", Some(SITE_LOCAL), Never),
    ("feff:ffff::1", Some(SITE_LOCAL), Never),
    ("ff02::1", Some(MULTICAST), Never),
    ("ff0e::1", Some(MULTICAST), Never),
    ("100::1", Some(RESERVED), Never),
    ("100:0:0:1::1", Some(RESERVED), Never),
    ("2001:1::1", Some(RESERVED), Never),
    ("2001:1::2", Some(RESERVED), Never),
    ("2001:1::3", Some(RESERVED), Never),
    ("2001:2::1", Some(RESERVED), Never),
    ("2001:3::1", Some(RESERVED), Never),
    ("2001:4:112::1", Some(RESERVED), Never),
    ("2001:10::1", Some(RESERVED), Never),
    ("2001:20::1", Some(RESERVED), Never),
    ("2001:30::1", Some(RESERVED), Never),
    ("2001:100::1", Some(RESERVED), Never),
    ("2001:1ff:ffff::1", Some(RESERVED), Never),
    ("2001:db8::1", Some(DOCUMENTATION), Never),
    ("3fff::1", Some(DOCUMENTATION), Never),
    ("3fff:fff:ffff::1", Some(DOCUMENTATION), Never),
    ("2620:4f:8000::1", Some(RESERVED), Never),
    ("5f00::1", Some(RESERVED), Never),
    // Outside 2000::/3 nothing is allocated for unicast.
    ("4000::1", Some(RESERVED), Never),
    ("::ffff:0:a9fe:a9fe", Some(RESERVED), Never),
    ("64:ff9c::1", Some(RESERVED), Never),
    // Transition forms whose embedded address is judged on its own below;
    // these are the cases the generated forms do not cover.
    (
        "::2",
        Some("an unspecified address (0.0.0.2 embedded in an IPv4-compatible address)"),
        Never,
    ),
    (
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        Some("a documentation address (192.0.2.45 embedded in a Teredo address)"),
        Never,
    ),
    // Local-use NAT64 is refused even when its last 32 bits are public:
    // where the IPv4 address sits depends on the local prefix length.
    ("64:ff9b:1::5db8:d822", Some(LOCAL_NAT64), Never),
    ("64:ff9b:1:ab:cd::5db8:d822", Some(LOCAL_NAT64), Never),
    (
        "64:ff9b:1::a9fe:a9fe",
        Some("a cloud metadata address (169.254.169.254 embedded in a local-use NAT64 address)"),
        Never,
    ),
    (
        "64:ff9b:1::7f00:1",
        Some("a loopback address (127.0.0.1 embedded in a local-use NAT64 address)"),
        Never,
    ),
    ("2606:4700::1111", None, Always),
    ("2001:4860:4860::8888", None, Always),
    ("2001:200::1", None, Always),
    ("2a00:1450:4001::1", None, Always),
    ("2620:4f:8001::1", None, Always),
];

/// The IPv6 forms that carry an IPv4 address: name, and how to build one.
fn transition_forms(v4: Ipv4Addr) -> [(&'static str, Ipv6Addr); 6] {
    let bits = u32::from(v4);
    let (high, low) = ((bits >> 16) as u16, bits as u16);
    // A public Teredo server and client (93.184.216.34, as the client's
    // inverted bits), for the forms that vary only the other one.
    let (server_high, server_low) = (0x5db8, 0xd822);
    let (client_high, client_low) = (!0x5db8, !0xd822);
    [
        ("an IPv4-mapped address", v4.to_ipv6_mapped()),
        ("an IPv4-compatible address", v4.to_ipv6_compatible()),
        (
            "a NAT64 address",
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low),
        ),
        (
            "a 6to4 address",
            Ipv6Addr::new(0x2002, high, low, 0xab, 0, 0, 0, 1),
        ),
        (
            "a Teredo address",
            Ipv6Addr::new(0x2001, 0, server_high, server_low, 0x8000, 0, !high, !low),
        ),
        (
            "a Teredo address",
            Ipv6Addr::new(0x2001, 0, high, low, 0, 0, client_high, client_low),
        ),
    ]
}

const POLICIES: [AddressPolicy; 4] = [
    AddressPolicy {
        allow_loopback: false,
        allow_private: false,
    },
    AddressPolicy {
        allow_loopback: true,
        allow_private: false,
    },
    AddressPolicy {
        allow_loopback: false,
        allow_private: true,
    },
    AddressPolicy {
        allow_loopback: true,
        allow_private: true,
    },
];

fn allowed_under(allowed: Allowed, policy: AddressPolicy) -> bool {
    match allowed {
        Always => true,
        WithLoopback => policy.allow_loopback,
        WithPrivate => policy.allow_private,
        Never => false,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not an address: {e}"))
}

/// Every example with its expected message under the default policy and
/// the policies that allow it: the plain addresses and the generated
/// transition forms.
fn examples() -> Vec<(IpAddr, Option<String>, Allowed)> {
    let mut all = Vec::new();
    for &(text, why, allowed) in IPV4.iter().chain(IPV6) {
        all.push((ip(text), why.map(str::to_owned), allowed));
    }
    for &(text, why, allowed) in IPV4 {
        let IpAddr::V4(v4) = ip(text) else {
            panic!("{text} is not IPv4")
        };
        for (form, v6) in transition_forms(v4) {
            let why = why.map(|why| format!("{why} ({v4} embedded in {form})"));
            all.push((IpAddr::V6(v6), why, allowed));
        }
    }
    all
}

#[test]
fn every_range_is_refused_or_allowed_as_its_class_says() {
    let mut wrong = Vec::new();
    for (ip, why, allowed) in examples() {
        for policy in POLICIES {
            let got = policy.refusal(ip).map(|refusal| refusal.to_string());
            let expected_refused = !allowed_under(allowed, policy);
            let ok = if policy == AddressPolicy::default() {
                got == why
            } else {
                got.is_some() == expected_refused
            };
            if !ok {
                wrong.push(format!(
                    "{ip} under {policy:?}: got {got:?}, expected {}",
                    if expected_refused {
                        why.clone().unwrap_or_else(|| "a refusal".into())
                    } else {
                        "allowed".into()
                    }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_range_has_an_example_and_is_listed_once() {
    let examples = examples();
    let mut seen = Vec::new();
    for range in SPECIAL_PURPOSE {
        assert_eq!(range.net, range.net.trunc(), "{} has host bits", range.net);
        assert!(!seen.contains(&range.net), "{} is listed twice", range.net);
        seen.push(range.net);
        let covered = examples
            .iter()
            .any(|(ip, ..)| range_of(*ip).is_some_and(|found| found.net == range.net));
        assert!(covered, "no example falls in {} first", range.net);
    }
}
