//! Which addresses a callback may reach: one table of special-purpose
//! ranges, each with a class, and the policy that decides which classes
//! are allowed.
//!
//! The table ([`SPECIAL_PURPOSE`]) holds every range of the IANA IPv4 and
//! IPv6 Special-Purpose Address Registries (RFC 6890 and the RFCs that
//! added rows since), multicast, the deprecated IPv6 ranges still in the
//! address architecture (site-local, IPv4-compatible), the known cloud
//! metadata and credential endpoints, and, for IPv6, the rule of the IPv6
//! Address Space registry that only 2000::/3 is allocated for global
//! unicast. An address takes the class of the most specific range holding
//! it; an address in no range is global.
//!
//! Only the loopback and private classes can be allowed, by
//! [`AddressPolicy::allow_loopback`] and [`AddressPolicy::allow_private`];
//! every other special class is refused under every policy.
//!
//! **Embedded IPv4.** IPv6 forms that carry an IPv4 address are judged by
//! that address, under the same policy:
//!
//! | form | range | IPv4 address |
//! |---|---|---|
//! | IPv4-mapped | `::ffff:0:0/96` | last 32 bits |
//! | IPv4-compatible (deprecated) | `::/96` except `::` and `::1` | last 32 bits |
//! | NAT64, well-known prefix | `64:ff9b::/96` | last 32 bits |
//! | NAT64, local use | `64:ff9b:1::/48` | last 32 bits (the /96 layout) |
//! | 6to4 | `2002::/16` | bits 16..48 |
//! | Teredo | `2001::/32` | server: bits 32..64; client: last 32 bits inverted |
//!
//! The address is refused when an embedded IPv4 address is refused
//! (Teredo: either of the two), with the IPv4 address's own reason, and
//! allowed when every embedded address is allowed: a public IPv4 address
//! in a transition form is as reachable as it is plainly. One exception:
//! a local-use NAT64 address is refused even when its last 32 bits are
//! public. The range is not globally reachable, and where a translator
//! reads the IPv4 address depends on the local prefix length (RFC 6052
//! §2.2), so its last 32 bits prove nothing about where it leads.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use AddressClass::{
    Broadcast, CloudMetadata, Documentation, Embeds, Global, LinkLocal, Loopback, Multicast,
    Private, Reserved, SiteLocal, Unspecified,
};
use Transition::{Ipv4Compatible, Ipv4Mapped, LocalNat64, Nat64, SixToFour, Teredo};
use ipnet::IpNet;

/// What an address is, as far as callbacks are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// In no special-purpose range: allowed under every policy.
    Global,
    /// This host (127.0.0.0/8, ::1); allowed by `allow_loopback`.
    Loopback,
    /// Private networks (RFC 1918, shared address space, unique local);
    /// allowed by `allow_private`.
    Private,
    /// Link-local (169.254.0.0/16, fe80::/10).
    LinkLocal,
    /// A cloud provider's metadata or credential endpoint.
    CloudMetadata,
    /// "This network" and the unspecified address.
    Unspecified,
    /// The limited broadcast address.
    Broadcast,
    /// Multicast.
    Multicast,
    /// Set aside for documentation and examples.
    Documentation,
    /// IPv6 site-local (fec0::/10), deprecated.
    SiteLocal,
    /// Set aside by the IETF for a protocol, for benchmarking, or for
    /// future use.
    Reserved,
    /// An IPv6 form carrying an IPv4 address, judged by that address.
    Embeds(Transition),
}

/// The IPv6 forms that carry an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2).
    Ipv4Mapped,
    /// `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated).
    Ipv4Compatible,
    /// The NAT64 well-known prefix `64:ff9b::/96` (RFC 6052).
    Nat64,
    /// The NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215).
    LocalNat64,
    /// 6to4, `2002:AABB:CCDD::/48` (RFC 3056).
    SixToFour,
    /// Teredo, `2001:0:<server>:<flags>:<port>:<client>` with the client
    /// address and port inverted (RFC 4380).
    Teredo,
}

/// One range of the table.
struct Range {
    net: IpNet,
    class: AddressClass,
}

const fn v4(octets: [u8; 4], prefix_len: u8, class: AddressClass) -> Range {
    let [a, b, c, d] = octets;
    Range {
        net: IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix_len),
        class,
    }
}

const fn v6(segments: [u16; 8], prefix_len: u8, class: AddressClass) -> Range {
    let [a, b, c, d, e, f, g, h] = segments;
    Range {
        net: IpNet::new_assert(
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix_len,
        ),
        class,
    }
}

/// Every special-purpose range and its class; the most specific range
/// holding an address decides.
#[rustfmt::skip]
static SPECIAL_PURPOSE: &[Range] = &[
    // IANA IPv4 Special-Purpose Address Registry.
    v4([0, 0, 0, 0], 8, Unspecified),            // "this network", RFC 791 §3.2; 0.0.0.0/32, RFC 1122
    v4([10, 0, 0, 0], 8, Private),               // private use, RFC 1918
    v4([100, 64, 0, 0], 10, Private),            // shared address space (CGN), RFC 6598
    v4([127, 0, 0, 0], 8, Loopback),             // RFC 1122 §3.2.1.3
    v4([169, 254, 0, 0], 16, LinkLocal),         // RFC 3927
    v4([172, 16, 0, 0], 12, Private),            // private use, RFC 1918
    v4([192, 0, 0, 0], 24, Reserved),            // IETF protocol assignments, RFC 6890 §2.1 (with
                                                 // 192.0.0.0/29 RFC 7335, .8 RFC 7600, .9 RFC 7723,
                                                 // .10 RFC 8155, .170-.171 RFC 8880)
    v4([192, 0, 2, 0], 24, Documentation),       // TEST-NET-1, RFC 5737
    v4([192, 31, 196, 0], 24, Reserved),         // AS112-v4, RFC 7535
    v4([192, 52, 193, 0], 24, Reserved),         // AMT, RFC 7450
    v4([192, 88, 99, 0], 24, Reserved),          // deprecated 6to4 relay anycast, RFC 7526
    v4([192, 168, 0, 0], 16, Private),           // private use, RFC 1918
    v4([192, 175, 48, 0], 24, Reserved),         // direct delegation AS112 service, RFC 7534
    v4([198, 18, 0, 0], 15, Reserved),           // benchmarking, RFC 2544
    v4([198, 51, 100, 0], 24, Documentation),    // TEST-NET-2, RFC 5737
    v4([203, 0, 113, 0], 24, Documentation),     // TEST-NET-3, RFC 5737
    v4([240, 0, 0, 0], 4, Reserved),             // reserved, RFC 1112 §4
    v4([255, 255, 255, 255], 32, Broadcast),     // limited broadcast, RFC 919 §7, RFC 8190
    // IANA IPv4 Multicast Address Space Registry.
    v4([224, 0, 0, 0], 4, Multicast),            // RFC 5771
    // Cloud metadata and credential endpoints.
    v4([169, 254, 169, 254], 32, CloudMetadata), // EC2, GCP, Azure and OCI instance metadata
    v4([169, 254, 170, 2], 32, CloudMetadata),   // ECS task metadata and credentials
    v4([169, 254, 170, 23], 32, CloudMetadata),  // EKS Pod Identity agent
    v4([100, 100, 100, 200], 32, CloudMetadata), // Alibaba Cloud instance metadata

    // IANA IPv6 Special-Purpose Address Registry.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Unspecified),                // RFC 4291 §2.5.2
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Loopback),                   // RFC 4291 §2.5.3
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, Embeds(Ipv4Mapped)),     // RFC 4291 §2.5.5.2
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, Embeds(Nat64)),       // RFC 6052
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Embeds(LocalNat64)),  // RFC 8215
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),                // discard-only, RFC 6666
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, Reserved),                // dummy prefix, RFC 9780
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),               // IETF protocol assignments, RFC 2928
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Embeds(Teredo)),         // RFC 4380, RFC 8190
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, Reserved),              // PCP anycast, RFC 7723
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, Reserved),              // TURN anycast, RFC 8155
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, Reserved),              // DNS-SD SRP anycast, RFC 9665
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Reserved),               // benchmarking, RFC 5180
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, Reserved),               // AMT, RFC 7450
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, Reserved),           // AS112-v6, RFC 7535
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, Reserved),            // deprecated ORCHID, RFC 4843
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, Reserved),            // ORCHIDv2, RFC 7343
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, Reserved),            // drone remote ID DETs, RFC 9374
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),      // RFC 3849
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, Embeds(SixToFour)),      // RFC 3056
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, Reserved),       // direct delegation AS112, RFC 7534
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),          // RFC 9637
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, Reserved),               // SRv6 SIDs, RFC 9602
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Private),                 // unique local, RFC 4193
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),              // link-local unicast, RFC 4291 §2.5.6
    // IPv6 addressing architecture and the IANA IPv6 Address Space Registry.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, Embeds(Ipv4Compatible)),      // RFC 4291 §2.5.5.1
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, SiteLocal),              // deprecated, RFC 3879
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),               // RFC 4291 §2.7
    v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Global),                  // global unicast, RFC 4291 §2.4
    v6([0, 0, 0, 0, 0, 0, 0, 0], 0, Reserved),                     // the rest: reserved by the IETF
    // Cloud metadata and credential endpoints.
    v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, CloudMetadata), // EC2 instance metadata
    v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23], 128, CloudMetadata),  // EKS Pod Identity agent
];

/// The most specific range holding `ip`, if any.
fn range_of(ip: IpAddr) -> Option<&'static Range> {
    SPECIAL_PURPOSE
        .iter()
        .filter(|range| range.net.contains(&ip))
        .max_by_key(|range| range.net.prefix_len())
}

impl AddressClass {
    /// The class of `ip`: that of the most specific range holding it, or
    /// [`AddressClass::Global`].
    pub fn of(ip: IpAddr) -> Self {
        range_of(ip).map_or(Global, |range| range.class)
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Global => "a public address",
            Loopback => "a loopback address",
            Private => "a private address",
            LinkLocal => "a link-local address",
            CloudMetadata => "a cloud metadata address",
            Unspecified => "an unspecified address",
            Broadcast => "a broadcast address",
            Multicast => "a multicast address",
            Documentation => "a documentation address",
            SiteLocal => "a site-local address",
            Reserved => "a reserved address",
            Embeds(form) => return form.fmt(f),
        })
    }
}

impl Transition {
    /// The IPv4 addresses `ip` carries in this form: one, or for Teredo
    /// the client and then the server.
    fn embedded(self, ip: Ipv6Addr) -> (Ipv4Addr, Option<Ipv4Addr>) {
        let bits = ip.to_bits();
        // Truncation picks the 32 bits wanted.
        let word = |shift: u32| Ipv4Addr::from_bits((bits >> shift) as u32);
        match self {
            Self::Ipv4Mapped | Self::Ipv4Compatible | Self::Nat64 | Self::LocalNat64 => {
                (word(0), None)
            }
            Self::SixToFour => (word(80), None),
            Self::Teredo => (Ipv4Addr::from_bits(!(bits as u32)), Some(word(64))),
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4Mapped => "an IPv4-mapped address",
            Self::Ipv4Compatible => "an IPv4-compatible address",
            Self::Nat64 => "a NAT64 address",
            Self::LocalNat64 => "a local-use NAT64 address",
            Self::SixToFour => "a 6to4 address",
            Self::Teredo => "a Teredo address",
        })
    }
}

/// Why an address may not receive callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The class refused: the embedded IPv4 address's when there is one.
    pub class: AddressClass,
    /// The refused IPv4 address and the IPv6 form that carried it.
    pub embedded: Option<(Ipv4Addr, Transition)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some((v4, form)) => write!(f, "{} ({v4} embedded in {form})", self.class),
            None => self.class.fmt(f),
        }
    }
}

/// Which special addresses callbacks may reach, as classes of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Allow [`AddressClass::Loopback`]: for tests and single-machine
    /// setups.
    pub allow_loopback: bool,
    /// Allow [`AddressClass::Private`]: 10/8, 172.16/12, 192.168/16,
    /// 100.64/10 and fc00::/7, except the metadata endpoints in them.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Whether addresses of `class` may receive callbacks, apart from any
    /// IPv4 address they carry. Only loopback and private can be allowed.
    pub fn allows(&self, class: AddressClass) -> bool {
        match class {
            Global => true,
            Loopback => self.allow_loopback,
            Private => self.allow_private,
            Embeds(form) => form != LocalNat64,
            LinkLocal | CloudMetadata | Unspecified | Broadcast | Multicast | Documentation
            | SiteLocal | Reserved => false,
        }
    }

    /// Why `ip` may not receive callbacks, or `None` when it may. This is
    /// the one classifier: the upload check, literal hosts and the
    /// resolver's connect-time check all ask it.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        let class = AddressClass::of(ip);
        if let (Embeds(form), IpAddr::V6(v6)) = (class, ip) {
            let (first, second) = form.embedded(v6);
            for v4 in std::iter::once(first).chain(second) {
                let inner = AddressClass::of(IpAddr::V4(v4));
                if !self.allows(inner) {
                    return Some(Refusal {
                        class: inner,
                        embedded: Some((v4, form)),
                    });
                }
            }
        }
        (!self.allows(class)).then_some(Refusal {
            class,
            embedded: None,
        })
    }
}

#[cfg(test)]
mod tests;
