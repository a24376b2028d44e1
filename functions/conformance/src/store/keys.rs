//! The records the store keeps by key beside jobs: API keys by hash,
//! rate-limit buckets by name, webhook secrets by tenant (with a job's
//! webhook delivery state), plugin versions by `name@version`.

use std::time::Duration;

use chrono::Utc;
use docket_core::model::{JobId, TenantId};
use docket_core::ports::StoreError;

use crate::{Subject, sample_job};

/// API keys are found by their hash only; a second key with the same hash
/// conflicts.
pub async fn store_keeps_api_keys_by_hash(subject: &Subject) {
    use docket_core::auth::{ApiKey, Tier, generate_token, hash_token};
    let token = generate_token();
    let key = ApiKey {
        hash: hash_token(&token),
        tenant: TenantId::parse("acme").unwrap(),
        tier: Tier::Standard,
        created_at: Utc::now(),
    };
    subject.store.put_api_key(&key).await.expect("put key");
    assert_eq!(
        subject
            .store
            .api_key(&hash_token(&token))
            .await
            .expect("get key"),
        key
    );
    let error = subject
        .store
        .api_key(&hash_token("not the token"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
    let error = subject.store.put_api_key(&key).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
}

/// A rate-limit bucket gives its burst once across concurrent callers,
/// keeps buckets apart and refills with time.
pub async fn store_token_buckets_are_shared_and_atomic(subject: &Subject) {
    use docket_core::quota::{Grant, Rate};
    let rate = Rate {
        burst: 20,
        per_minute: 60,
    };
    let now = Utc::now();
    let bucket = format!("uploads:{}", uuid::Uuid::new_v4());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = subject.store.clone();
        let bucket = bucket.clone();
        tasks.spawn(async move {
            let mut granted = 0;
            for _ in 0..5 {
                if let Grant::Granted { .. } =
                    store.take_token(&bucket, rate, now).await.expect("take")
                {
                    granted += 1;
                }
            }
            granted
        });
    }
    let mut granted = 0;
    while let Some(count) = tasks.join_next().await {
        granted += count.expect("task");
    }
    assert_eq!(granted, 20, "8 callers × 5 tries share a burst of 20");
    let denied = subject
        .store
        .take_token(&bucket, rate, now)
        .await
        .expect("take");
    assert_eq!(
        denied,
        Grant::Denied {
            retry_after: Duration::from_secs(1)
        }
    );
    let other = format!("uploads:{}", uuid::Uuid::new_v4());
    assert_eq!(
        subject
            .store
            .take_token(&other, rate, now)
            .await
            .expect("take"),
        Grant::Granted { remaining: 19 }
    );
    let later = now + chrono::Duration::seconds(3);
    assert_eq!(
        subject
            .store
            .take_token(&bucket, rate, later)
            .await
            .expect("take"),
        Grant::Granted { remaining: 2 }
    );
}

/// A delivered callback stays delivered; a tenant's first secret wins.
pub async fn store_keeps_webhook_state_and_one_secret_per_tenant(subject: &Subject) {
    use docket_core::webhook::{WebhookDelivery, WebhookState};
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let state = |state, attempts| WebhookDelivery {
        state,
        attempts,
        last_status: Some(200),
        last_error: None,
        updated_at: Utc::now(),
    };
    for delivery in [
        state(WebhookState::Pending, 1),
        state(WebhookState::Delivered, 2),
        state(WebhookState::Failed, 3),
    ] {
        subject
            .store
            .set_webhook(&job.id, &delivery)
            .await
            .expect("set");
    }
    let kept = subject
        .store
        .job(&job.id)
        .await
        .expect("read")
        .webhook
        .expect("webhook");
    assert_eq!((kept.state, kept.attempts), (WebhookState::Delivered, 2));
    let missing = subject
        .store
        .set_webhook(&JobId::generate(), &state(WebhookState::Pending, 0))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");

    let tenant = TenantId::parse(&format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let first = subject
        .store
        .webhook_secret(&tenant, "whsec_Zmlyc3Q=")
        .await
        .expect("secret");
    let second = subject
        .store
        .webhook_secret(&tenant, "whsec_c2Vjb25k")
        .await
        .expect("secret");
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("whsec_Zmlyc3Q=", "whsec_Zmlyc3Q=")
    );
    let other = TenantId::parse(&format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap();
    assert_eq!(
        subject
            .store
            .webhook_secret(&other, "whsec_b3RoZXI=")
            .await
            .expect("secret"),
        "whsec_b3RoZXI="
    );
}

/// A published `name@version` is registered once: the same digest again
/// is a no-op, other bytes are refused (from concurrent publishers too),
/// and so are the same bytes with another language or limits;
/// versions list by name, then in semver order.
pub async fn store_registers_each_plugin_version_once(subject: &Subject) {
    use docket_core::plugin::Manifest;
    let store = &subject.store;
    let v1 = Manifest::for_component("wordy", "1.9.0", b"one");
    assert!(store.register_plugin(&v1).await.expect("register"));
    assert!(!store.register_plugin(&v1).await.expect("again"));
    let other_bytes = Manifest::for_component("wordy", "1.9.0", b"changed");
    let error = store.register_plugin(&other_bytes).await.unwrap_err();
    let StoreError::Conflict(message) = &error else {
        panic!("{error}")
    };
    assert!(
        message.contains(&v1.sha256) && message.contains(&other_bytes.sha256),
        "{message}"
    );
    // The same bytes under another language (other budgets) would change
    // nothing: refused with what differs.
    let other_language = Manifest::for_language("wordy", "1.9.0", "python", b"one");
    let error = store.register_plugin(&other_language).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Conflict(m) if m.contains("with these bytes and language rust (asked: python)")),
        "{error}"
    );
    // Concurrent publishers of one new version with different bytes: one wins.
    let racers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let manifest =
                    Manifest::for_component("wordy", "1.10.0", format!("racer {n}").as_bytes());
                store.register_plugin(&manifest).await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(true) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
    let python = Manifest::for_language("alpha", "0.1.0", "python", b"py");
    store.register_plugin(&python).await.expect("register");
    let all = store.plugins(None).await.expect("list");
    let listed: Vec<String> = all
        .iter()
        .map(|m| format!("{}@{}", m.name, m.version))
        .collect();
    assert_eq!(listed, ["alpha@0.1.0", "wordy@1.9.0", "wordy@1.10.0"]);
    assert_eq!(all[0], python, "the manifest round-trips");
    let wordy = store.plugins(Some("wordy")).await.expect("list");
    assert_eq!(wordy.len(), 2);
    assert!(store.plugins(Some("word")).await.expect("list").is_empty());
}
