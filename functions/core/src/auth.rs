//! API keys and tiers. A key is shown to its owner once; docket keeps only
//! its SHA-256.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::TenantId;
use crate::ports::{ApiKeyStore, StoreError, WebhookSecrets};
use crate::quota::Rate;

/// What a key's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Small batches.
    Standard,
    /// Large batches.
    Premium,
    /// The deployment's operators: premium limits, and they see every
    /// tenant's jobs and the queues' internals (the dashboard's operator
    /// view); they act on a tenant's job on its owner's behalf.
    Operator,
}

impl Tier {
    /// Its weight when tenants take turns on a work queue: a premium
    /// tenant's items get twice a standard one's share of each receive
    /// (embedded backend; SQS fair queues share equally).
    pub fn fair_share(self) -> u32 {
        match self {
            Tier::Standard => 1,
            Tier::Premium | Tier::Operator => 2,
        }
    }
}

impl Tier {
    /// The tier a job was submitted under, as far as its fair share tells
    /// (premium and operator keys share 2; the jobs keep no more).
    pub fn of_fair_share(fair_share: u32) -> Tier {
        if fair_share >= Tier::Premium.fair_share() {
            Tier::Premium
        } else {
            Tier::Standard
        }
    }
}

/// The limits of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TierLimits {
    /// Most documents in one batch.
    pub documents_per_batch: usize,
    /// Most bytes of document text in one batch.
    pub batch_bytes: usize,
    /// Batches a key may submit (uploads and retries): a burst, then a
    /// steady rate.
    pub uploads: Rate,
    /// Most of the tenant's jobs queued or processing at once.
    pub concurrent_jobs: usize,
}

impl Tier {
    /// Every tier.
    pub const ALL: [Tier; 3] = [Tier::Standard, Tier::Premium, Tier::Operator];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Premium => "premium",
            Tier::Operator => "operator",
        }
    }

    /// The tier's limits.
    pub fn limits(self) -> TierLimits {
        match self {
            Tier::Standard => TierLimits {
                documents_per_batch: 50,
                batch_bytes: 10 * 1024 * 1024,
                uploads: Rate {
                    burst: 10,
                    per_minute: 30,
                },
                concurrent_jobs: 10,
            },
            Tier::Premium | Tier::Operator => TierLimits {
                documents_per_batch: 10_000,
                batch_bytes: 200 * 1024 * 1024,
                uploads: Rate {
                    burst: 100,
                    per_minute: 600,
                },
                concurrent_jobs: 100,
            },
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown tier {s:?}: use standard, premium or operator"))
    }
}

/// A stored API key: the hash of the token, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `sha256:<hex>` of the token.
    pub hash: String,
    /// Whose key it is.
    pub tenant: TenantId,
    /// Its tier.
    pub tier: Tier,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Who is calling: the tenant and tier of the API key a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's tenant: it sees only its own jobs.
    pub tenant: TenantId,
    /// The key's tier: its limits apply.
    pub tier: Tier,
    /// The stored hash of the key: names its rate-limit buckets.
    pub key_hash: String,
}

impl Caller {
    /// Whether the caller sees every tenant's jobs (an operator key).
    pub fn sees_every_tenant(&self) -> bool {
        self.tier == Tier::Operator
    }

    /// Whether the caller may read or act on a job of `owner`.
    pub fn may_see(&self, owner: &TenantId) -> bool {
        self.sees_every_tenant() || &self.tenant == owner
    }

    /// The caller acting for `owner` of `owner_tier`, whose job it acts
    /// on: what it makes (a recovery job) is the owner's, under the owner's
    /// tier (its concurrent jobs, its fair share); the caller's own key is
    /// still rate-limited.
    pub fn on_behalf_of(&self, owner: &TenantId, owner_tier: Tier) -> Caller {
        Caller {
            tenant: owner.clone(),
            tier: owner_tier,
            key_hash: self.key_hash.clone(),
        }
    }
}

/// A new API key: the token, shown once (only its hash is stored), and the
/// tenant's webhook signing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    /// The bearer token.
    pub token: String,
    /// The tenant's `whsec_` secret (made with its first key).
    pub webhook_secret: String,
}

/// Creates an API key for `tenant` of `tier` in `keys` (the embedded
/// backend's or a deployment's) and returns its token and the tenant's
/// webhook signing secret (made with its first key): the one way keys are
/// issued, by the API's operators, the `docket keys` command and tests.
///
/// # Errors
/// Store errors.
pub async fn issue_api_key(
    keys: &dyn ApiKeyStore,
    secrets: &dyn WebhookSecrets,
    tenant: &TenantId,
    tier: Tier,
    now: DateTime<Utc>,
) -> Result<IssuedKey, StoreError> {
    let token = generate_token();
    keys.put_api_key(&ApiKey {
        hash: hash_token(&token),
        tenant: tenant.clone(),
        tier,
        created_at: now,
    })
    .await?;
    let webhook_secret = secrets
        .webhook_secret(tenant, &crate::webhook::generate_secret())
        .await?;
    Ok(IssuedKey {
        token,
        webhook_secret,
    })
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(token.as_bytes()))
}

/// A new random token: `dk_` and 64 hex digits — 32 bytes (256 bits) from
/// the operating system's random source.
///
/// # Panics
/// When the operating system has no random source to give (then no key
/// can be made safely).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("dk_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("dk_") && a.len() == 67, "{a}");
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(!hash_token(&a).contains(&a[3..]));
        assert_eq!(
            hash_token("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tokens_carry_256_random_bits() {
        // Two UUIDv4s fix 6 of their 128 bits each: the version nibble `4`
        // at hex digit 12 and the variant (8, 9, a or b) at digit 16 of each
        // half. Over 64 tokens a random source leaves no digit fixed.
        let tokens: Vec<String> = (0..64).map(|_| generate_token()).collect();
        for token in &tokens {
            assert!(token[3..].chars().all(|c| c.is_ascii_hexdigit()), "{token}");
            assert_eq!(token.len(), 3 + 64);
        }
        for digit in [12, 16, 32 + 12, 32 + 16] {
            let first = &tokens[0][3 + digit..4 + digit];
            assert!(
                tokens.iter().any(|t| &t[3 + digit..4 + digit] != first),
                "hex digit {digit} is the same in every token"
            );
        }
    }

    #[test]
    fn tiers_parse_and_carry_limits() {
        assert_eq!("standard".parse::<Tier>(), Ok(Tier::Standard));
        assert!("gold".parse::<Tier>().is_err());
        assert_eq!(Tier::Standard.limits().documents_per_batch, 50);
    }
}
