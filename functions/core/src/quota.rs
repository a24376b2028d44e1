//! Token buckets: the arithmetic of per-key rate limits. The `JobStore`
//! keeps each bucket's state and applies [`take`] atomically (a SQLite
//! transaction, a conditional DynamoDB update), so every API instance
//! shares one bucket per key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A rate: at most `burst` at once, refilled at `per_minute` a minute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Tokens a full bucket holds.
    pub burst: u32,
    /// Tokens added per minute.
    pub per_minute: u32,
}

/// A bucket as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketState {
    /// Tokens left (fractional while refilling).
    pub tokens: f64,
    /// When `tokens` was computed.
    pub at: DateTime<Utc>,
}

/// What taking a token gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant {
    /// Taken; this many whole tokens are left.
    Granted {
        /// Whole tokens left.
        remaining: u32,
    },
    /// The bucket is empty; a token will be there after this long.
    Denied {
        /// Wait this long before trying again.
        retry_after: Duration,
    },
}

/// Takes one token from `state` (a full bucket when `None`) at `now`.
/// Returns the bucket's new state and the grant. A clock that goes back
/// refills nothing.
pub fn take(state: Option<BucketState>, rate: Rate, now: DateTime<Utc>) -> (BucketState, Grant) {
    let burst = f64::from(rate.burst.max(1));
    let per_second = f64::from(rate.per_minute.max(1)) / 60.0;
    let tokens = match state {
        None => burst,
        Some(state) => {
            let elapsed = (now - state.at).num_milliseconds().max(0) as f64 / 1000.0;
            (state.tokens + elapsed * per_second).min(burst)
        }
    };
    if tokens >= 1.0 {
        let left = tokens - 1.0;
        (
            BucketState {
                tokens: left,
                at: now,
            },
            Grant::Granted {
                remaining: left.floor() as u32,
            },
        )
    } else {
        let wait = (1.0 - tokens) / per_second;
        (
            BucketState { tokens, at: now },
            Grant::Denied {
                retry_after: Duration::from_secs_f64(wait),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let rate = Rate {
            burst: 3,
            per_minute: 6,
        };
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut state = None;
        for remaining in [2, 1, 0] {
            let (next, grant) = take(state, rate, t0);
            assert_eq!(grant, Grant::Granted { remaining });
            state = Some(next);
        }
        let (next, grant) = take(state, rate, t0);
        // 6 a minute: one every 10 s.
        assert_eq!(
            grant,
            Grant::Denied {
                retry_after: Duration::from_secs(10)
            }
        );
        let later = t0 + chrono::Duration::seconds(4);
        let (_, grant) = take(Some(next), rate, later);
        assert_eq!(
            grant,
            Grant::Denied {
                retry_after: Duration::from_secs(6)
            }
        );
        let (_, grant) = take(Some(next), rate, t0 + chrono::Duration::seconds(10));
        assert_eq!(grant, Grant::Granted { remaining: 0 });
        // Never more than the burst, however long it waited.
        let (_, grant) = take(Some(next), rate, t0 + chrono::Duration::hours(1));
        assert_eq!(grant, Grant::Granted { remaining: 2 });
        // A clock that goes back refills nothing.
        let (_, grant) = take(Some(next), rate, t0 - chrono::Duration::hours(1));
        assert!(matches!(grant, Grant::Denied { .. }));
    }
}
