//! docket's webhook sender: job-finished callbacks over HTTP(S), with an
//! SSRF guard on every address the request could reach.
//!
//! A callback URL comes from a tenant, so the sender refuses loopback,
//! private, link-local, cloud-metadata and other special addresses unless
//! the deployment allows them ([`AddressPolicy`]). The guard sits in the
//! client's DNS resolver, so the addresses checked are the addresses
//! connected to (a name cannot resolve to a public address at check time
//! and a private one at connect time), and a name that resolves to any
//! refused address is refused. Redirects are not followed.
#![deny(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use docket_core::ports::{WebhookError, WebhookRequest, WebhookSender};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which special addresses callbacks may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Loopback (127.0.0.0/8, ::1): for tests and single-machine setups.
    pub allow_loopback: bool,
    /// Private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Why `ip` may not receive callbacks, or `None` when it may.
    /// Link-local and cloud-metadata addresses, unspecified, broadcast and
    /// multicast addresses are refused under every policy.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => self.refusal_v4(v4),
            IpAddr::V6(v6) => self.refusal_v6(v6),
        }
    }

    fn refusal_v4(&self, ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, _, _] = ip.octets();
        if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(169, 254, 170, 2) {
            Some("a cloud metadata address")
        } else if ip.is_link_local() {
            Some("a link-local address")
        } else if ip.is_unspecified() || a == 0 {
            Some("an unspecified address")
        } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
            Some("a broadcast, multicast or reserved address")
        } else if ip.is_loopback() {
            (!self.allow_loopback).then_some("a loopback address")
        } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            (!self.allow_private).then_some("a private address")
        } else {
            None
        }
    }

    fn refusal_v6(&self, ip: Ipv6Addr) -> Option<&'static str> {
        let first = ip.segments()[0];
        if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            Some("a cloud metadata address")
        } else if first & 0xffc0 == 0xfe80 {
            Some("a link-local address")
        } else if ip.is_unspecified() {
            Some("an unspecified address")
        } else if ip.is_multicast() {
            Some("a broadcast, multicast or reserved address")
        } else if ip.is_loopback() {
            (!self.allow_loopback).then_some("a loopback address")
        } else if first & 0xfe00 == 0xfc00 {
            (!self.allow_private).then_some("a private address")
        } else {
            None
        }
    }

    /// Checks every address; the first refused one is the error.
    fn check_all(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), WebhookError> {
        if addrs.is_empty() {
            return Err(WebhookError::NotAllowed(format!(
                "{host} resolves to no address"
            )));
        }
        for addr in addrs {
            if let Some(why) = self.refusal(addr.ip()) {
                return Err(WebhookError::NotAllowed(format!(
                    "{host} resolves to {}, {why}",
                    addr.ip()
                )));
            }
        }
        Ok(())
    }

    /// Resolves `host` and checks every address it resolves to.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, WebhookError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| WebhookError::NotAllowed(format!("{host} does not resolve: {e}")))?
            .collect();
        self.check_all(host, &addrs)?;
        Ok(addrs)
    }
}

/// The client's resolver: only checked addresses reach the connector.
struct GuardedResolver(AddressPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy
                .resolve(&host, 0)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Sends callbacks with one pooled HTTP client.
#[derive(Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl HttpWebhookSender {
    /// A sender under `policy`, giving up on a receiver after `timeout`.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(policy)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("docket-webhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }

    /// The URL, if it is an http(s) URL with a host.
    fn parse(url: &str) -> Result<url::Url, WebhookError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| WebhookError::NotAllowed(format!("{url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookError::NotAllowed(format!(
                "the scheme must be http or https, not {}",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(WebhookError::NotAllowed(
                "credentials in the URL are not accepted".into(),
            ));
        }
        if parsed.host().is_none() {
            return Err(WebhookError::NotAllowed(format!("{url:?} has no host")));
        }
        Ok(parsed)
    }

    /// Checks a URL whose host is an IP literal (the resolver never sees
    /// those); names are left to the resolver.
    fn check_literal(&self, url: &url::Url) -> Result<bool, WebhookError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(false),
        };
        match self.policy.refusal(ip) {
            Some(why) => Err(WebhookError::NotAllowed(format!("{ip} is {why}"))),
            None => Ok(true),
        }
    }
}

/// Whether an error (or one of its causes) is the guard's refusal.
fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<WebhookError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<WebhookError>() {
            return Some(refused.clone());
        }
        current = e.source();
    }
    None
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn check(&self, url: &str) -> Result<(), WebhookError> {
        let parsed = Self::parse(url)?;
        if !self.check_literal(&parsed)? {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port_or_known_default().unwrap_or(443);
            self.policy.resolve(host, port).await?;
        }
        Ok(())
    }

    async fn send(&self, request: WebhookRequest) -> Result<u16, WebhookError> {
        let parsed = Self::parse(&request.url)?;
        self.check_literal(&parsed)?;
        let mut builder = self.client.post(parsed).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(|e| {
            refusal_in(&e).unwrap_or_else(|| WebhookError::Failed {
                status: None,
                message: format!("could not reach the receiver: {}", error_chain(&e)),
            })
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(WebhookError::Failed {
                status: Some(status.as_u16()),
                message: format!("the receiver answered {status}"),
            })
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused_unless_allowed() {
        let strict = AddressPolicy::default();
        let open = AddressPolicy {
            allow_loopback: true,
            allow_private: true,
        };
        for (ip, why) in [
            ("127.0.0.1", Some("a loopback address")),
            ("::1", Some("a loopback address")),
            ("10.1.2.3", Some("a private address")),
            ("172.20.0.1", Some("a private address")),
            ("192.168.1.1", Some("a private address")),
            ("100.64.0.1", Some("a private address")),
            ("fd12::1", Some("a private address")),
            ("::ffff:10.0.0.1", Some("a private address")),
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("169.254.169.254", Some("a cloud metadata address")),
            ("fd00:ec2::254", Some("a cloud metadata address")),
            ("169.254.10.1", Some("a link-local address")),
            ("fe80::1", Some("a link-local address")),
            ("0.0.0.0", Some("an unspecified address")),
            ("::", Some("an unspecified address")),
            (
                "224.0.0.1",
                Some("a broadcast, multicast or reserved address"),
            ),
            (
                "255.255.255.255",
                Some("a broadcast, multicast or reserved address"),
            ),
            ("93.184.216.34", None),
            ("2606:4700::1111", None),
        ] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            assert_eq!(strict.refusal(ip), why, "{ip}");
        }
        for (ip, refused) in [
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("169.254.169.254", true),
            ("fe80::1", true),
        ] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            assert_eq!(open.refusal(ip).is_some(), refused, "{ip}");
        }
    }
}
