//! The sender against a real receiver on loopback: delivery, non-2xx
//! answers, redirects not followed, and the SSRF guard on literal
//! addresses and on names.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use docket_core::ports::{WebhookError, WebhookRequest, WebhookSender};
use docket_webhook::{AddressPolicy, HttpWebhookSender};

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let store = seen.clone();
    let app = Router::new()
        .route(
            "/ok",
            post(move |headers: HeaderMap, body: String| async move {
                store.lock().unwrap().push((headers, body));
                StatusCode::NO_CONTENT
            }),
        )
        .route("/broken", post(|| async { StatusCode::BAD_GATEWAY }))
        .route(
            "/moved",
            post(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/ok")]) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("127.0.0.1:{port}"), seen)
}

fn request(url: String) -> WebhookRequest {
    WebhookRequest {
        url,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), "msg_1".into()),
        ],
        body: r#"{"type":"batch.completed"}"#.into(),
    }
}

fn sender(allow_loopback: bool) -> HttpWebhookSender {
    let policy = AddressPolicy {
        allow_loopback,
        allow_private: false,
    };
    HttpWebhookSender::new(policy, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn delivers_to_an_allowed_receiver_and_reports_failures() {
    let (addr, seen) = receiver().await;
    let sender = sender(true);
    assert_eq!(
        sender.send(request(format!("http://{addr}/ok"))).await,
        Ok(204)
    );
    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["webhook-id"], "msg_1");
    assert_eq!(body, r#"{"type":"batch.completed"}"#);
    // By name too: localhost resolves to loopback, allowed here.
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(
        sender
            .send(request(format!("http://localhost:{port}/ok")))
            .await,
        Ok(204)
    );

    let broken = sender.send(request(format!("http://{addr}/broken"))).await;
    assert_eq!(
        broken,
        Err(WebhookError::Failed {
            status: Some(502),
            message: "the receiver answered 502 Bad Gateway".into()
        })
    );
    let moved = sender.send(request(format!("http://{addr}/moved"))).await;
    assert!(
        matches!(
            moved,
            Err(WebhookError::Failed {
                status: Some(307),
                ..
            })
        ),
        "{moved:?}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the redirect was not followed"
    );

    // Nobody listening: a failure to retry, not a refusal.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let unreachable = sender.send(request(format!("http://{dead}/ok"))).await;
    assert!(
        matches!(unreachable, Err(WebhookError::Failed { status: None, .. })),
        "{unreachable:?}"
    );
}

#[tokio::test]
async fn refuses_special_addresses_by_literal_and_by_name() {
    let (addr, seen) = receiver().await;
    let port = addr.rsplit(':').next().unwrap();
    let strict = sender(false);
    for (url, reason) in [
        (
            format!("http://{addr}/ok"),
            "127.0.0.1 is a loopback address".to_owned(),
        ),
        (
            format!("http://localhost:{port}/ok"),
            "resolves to".to_owned(),
        ),
        (
            "http://169.254.169.254/latest/meta-data".into(),
            "169.254.169.254 is a cloud metadata address".into(),
        ),
        ("http://[::1]:9/".into(), "::1 is a loopback address".into()),
        (
            "http://10.0.0.8/hook".into(),
            "10.0.0.8 is a private address".into(),
        ),
        (
            "ftp://example.com/".into(),
            "the scheme must be http or https, not ftp".into(),
        ),
        (
            "http://user:pw@example.com/".into(),
            "credentials in the URL are not accepted".into(),
        ),
        ("not a url".into(), "is not a URL".into()),
    ] {
        for result in [
            strict.check(&url).await,
            strict.send(request(url.clone())).await.map(|_| ()),
        ] {
            match result {
                Err(WebhookError::NotAllowed(message)) => {
                    assert!(message.contains(&reason), "{url}: {message}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );
}

/// Internal addresses written in an IPv6 form that embeds an IPv4 address
/// (or in a deprecated range) are refused at upload like the plain ones.
/// Only `check` is called: nothing is sent to these addresses.
#[tokio::test]
async fn refuses_internal_addresses_behind_ipv6_transition_forms() {
    let strict = sender(false);
    let relaxed = HttpWebhookSender::new(
        AddressPolicy {
            allow_loopback: true,
            allow_private: true,
        },
        Duration::from_secs(5),
    )
    .unwrap();
    let mut wrong = Vec::new();
    for (url, message) in [
        (
            "http://[64:ff9b::a9fe:a9fe]/",
            "64:ff9b::a9fe:a9fe is a cloud metadata address \
             (169.254.169.254 embedded in a NAT64 address)",
        ),
        (
            "http://[2002:a9fe:a9fe::1]/",
            "2002:a9fe:a9fe::1 is a cloud metadata address \
             (169.254.169.254 embedded in a 6to4 address)",
        ),
        (
            "http://[::169.254.169.254]/",
            "::a9fe:a9fe is a cloud metadata address \
             (169.254.169.254 embedded in an IPv4-compatible address)",
        ),
        ("http://[fec0::1]/", "fec0::1 is a site-local address"),
        (
            "http://[2001:0:4136:e378:8000:63bf:5601:5601]/hook",
            "2001:0:4136:e378:8000:63bf:5601:5601 is a cloud metadata address \
             (169.254.169.254 embedded in a Teredo address)",
        ),
        (
            "http://[2001:0:a9fe:a9fe::a247:27dd]/hook",
            "2001:0:a9fe:a9fe::a247:27dd is a cloud metadata address \
             (169.254.169.254 embedded in a Teredo address)",
        ),
        (
            "http://[::ffff:169.254.169.254]/",
            "::ffff:169.254.169.254 is a cloud metadata address \
             (169.254.169.254 embedded in an IPv4-mapped address)",
        ),
        (
            "https://[64:ff9b::a00:1]:8443/",
            "64:ff9b::a00:1 is a private address \
             (10.0.0.1 embedded in a NAT64 address)",
        ),
    ] {
        let got = strict.check(url).await;
        if got != Err(WebhookError::NotAllowed(message.into())) {
            wrong.push(format!("{url}: {got:?}"));
        }
    }
    // Allowing private networks allows them in every form, but never
    // metadata or site-local addresses.
    let got = relaxed.check("https://[64:ff9b::a00:1]:8443/").await;
    if got.is_err() {
        wrong.push(format!("allowing private networks: {got:?}"));
    }
    for url in [
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[fec0::1]/",
    ] {
        let got = relaxed.check(url).await;
        if got.is_ok() {
            wrong.push(format!("{url} allowed with private networks"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Public addresses pass, plain and in every transition form that embeds
/// a public IPv4 address. Only `check` is called: nothing is sent.
#[tokio::test]
async fn allows_public_addresses_in_every_form() {
    let strict = sender(false);
    for url in [
        "http://93.184.216.34/hook",
        "https://93.184.216.34:8443/hook",
        "http://[2606:4700::1111]/hook",
        "http://[::ffff:93.184.216.34]/hook",
        "http://[64:ff9b::5db8:d822]/hook",
        "http://[2002:5db8:d822::1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:a247:27dd]/hook",
    ] {
        assert_eq!(strict.check(url).await, Ok(()), "{url}");
    }
}
