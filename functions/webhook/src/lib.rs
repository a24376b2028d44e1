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
//!
//! Addresses are judged by one table of special-purpose ranges, each with
//! a class the policy allows or refuses; IPv6 forms that carry an IPv4
//! address (mapped, compatible, NAT64, 6to4, Teredo) are judged by the
//! IPv4 address they carry. The table and the rule are in the `address`
//! module. The upload check ([`WebhookSender::check`]), literal hosts at
//! send time and the resolver all ask [`AddressPolicy::refusal`].
#![deny(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use docket_core::ports::{WebhookError, WebhookRequest, WebhookSender};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

mod address;

pub use address::{AddressClass, AddressPolicy, Refusal, Transition};

impl AddressPolicy {
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
    use std::str::FromStr;

    use super::*;

    /// The connect-time guard refuses what the upload check refuses,
    /// before anything is connected to.
    #[tokio::test]
    async fn the_resolver_refuses_transition_forms_of_internal_addresses() {
        let resolver = GuardedResolver(AddressPolicy::default());
        for (host, message) in [
            (
                "2002:a9fe:a9fe::1",
                "2002:a9fe:a9fe::1 resolves to 2002:a9fe:a9fe::1, a cloud metadata address \
                 (169.254.169.254 embedded in a 6to4 address)",
            ),
            (
                "64:ff9b::7f00:1",
                "64:ff9b::7f00:1 resolves to 64:ff9b::7f00:1, a loopback address \
                 (127.0.0.1 embedded in a NAT64 address)",
            ),
            (
                "fec0::1",
                "fec0::1 resolves to fec0::1, a site-local address",
            ),
        ] {
            let name = Name::from_str(host).unwrap_or_else(|_| panic!("{host} is a name"));
            let refused = match resolver.resolve(name).await {
                Ok(addrs) => panic!("{host} resolved to {:?}", addrs.collect::<Vec<_>>()),
                Err(e) => refusal_in(e.as_ref()),
            };
            assert_eq!(refused, Some(WebhookError::NotAllowed(message.into())));
        }
        // A public IPv4 address through NAT64 resolves to itself.
        let public = std::net::Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0x5db8, 0xd822);
        let name = Name::from_str(&public.to_string()).unwrap_or_else(|_| panic!("a name"));
        let addrs: Vec<SocketAddr> = match resolver.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(addrs, [SocketAddr::from((public, 0))]);
    }
}
