//! Failure categories and the retry policy that is a `match` on them.
//!
//! The categories come from the batch systems docket replaces. Every error
//! that can reach a work item carries one, so deciding whether to retry never
//! parses a message.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a work item failed, and therefore how (or whether) to retry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCategory {
    /// A passing fault (timeout, dropped connection): retry at once.
    Transient,
    /// Out of a shared resource (capacity, memory of the host): retry after a
    /// linearly growing delay.
    Resource,
    /// Throttled by a backend: retry with exponential backoff and jitter.
    RateLimit,
    /// The job or plugin is misconfigured: retrying cannot help.
    Configuration,
    /// The document itself is unusable (unreadable, empty, rejected by the
    /// evaluator): retrying cannot help.
    Data,
    /// Anything else that will fail the same way again: plugin traps, fuel or
    /// memory exhaustion, invalid plugin output.
    Permanent,
}

impl FailureCategory {
    /// Every category, in a stable order (used for summaries and metrics).
    pub const ALL: [FailureCategory; 6] = [
        FailureCategory::Transient,
        FailureCategory::Resource,
        FailureCategory::RateLimit,
        FailureCategory::Configuration,
        FailureCategory::Data,
        FailureCategory::Permanent,
    ];

    /// Its position in [`FailureCategory::ALL`].
    pub fn index(self) -> usize {
        match self {
            FailureCategory::Transient => 0,
            FailureCategory::Resource => 1,
            FailureCategory::RateLimit => 2,
            FailureCategory::Configuration => 3,
            FailureCategory::Data => 4,
            FailureCategory::Permanent => 5,
        }
    }

    /// Whether another attempt could succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureCategory::Transient | FailureCategory::Resource | FailureCategory::RateLimit
        )
    }

    /// The wire name, e.g. `RATE_LIMIT`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::Transient => "TRANSIENT",
            FailureCategory::Resource => "RESOURCE",
            FailureCategory::RateLimit => "RATE_LIMIT",
            FailureCategory::Configuration => "CONFIGURATION",
            FailureCategory::Data => "DATA",
            FailureCategory::Permanent => "PERMANENT",
        }
    }
}

impl fmt::Display for FailureCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A categorized failure with a message meant for the person reading the
/// results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// How to treat it.
    pub category: FailureCategory,
    /// What went wrong, e.g. `fuel limit of 50000000 exhausted`.
    pub message: String,
}

impl Failure {
    /// A failure of `category` with `message`.
    pub fn new(category: FailureCategory, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }

    /// The same failure, its message prefixed with where it happened.
    #[must_use]
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        Self {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.category, self.message)
    }
}

impl std::error::Error for Failure {}

/// What to do with a delivery whose evaluation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Make the message visible again after this delay.
    RetryAfter(Duration),
    /// Record the item failed now.
    GiveUp,
}

/// Per-category backoff. Delays are what the queue's visibility is set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries after which a retryable failure is recorded as final. The
    /// queue's dead-letter threshold must be above this, so that the
    /// processor records the failure before the queue gives the message up.
    pub max_receives: u32,
    /// Step of the linear backoff for RESOURCE failures.
    pub resource_step: Duration,
    /// First delay of the exponential backoff for RATE_LIMIT failures.
    pub rate_limit_base: Duration,
    /// Upper bound of every delay (SQS allows 12 hours; docket keeps it short).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_receives: 5,
            resource_step: Duration::from_secs(10),
            rate_limit_base: Duration::from_secs(2),
            max_delay: Duration::from_secs(900),
        }
    }
}

impl RetryPolicy {
    /// Decides the fate of a delivery that failed with `category` on its
    /// `receive_count`-th delivery (1 for the first). `jitter` in `[0, 1)`
    /// scales the exponential delay ("full jitter"); pass a random number in
    /// production and a fixed one in tests.
    pub fn decide(
        &self,
        category: FailureCategory,
        receive_count: u32,
        jitter: f64,
    ) -> RetryDecision {
        if !category.is_retryable() || receive_count >= self.max_receives {
            return RetryDecision::GiveUp;
        }
        let attempt = receive_count.max(1);
        let delay = match category {
            FailureCategory::Transient => Duration::ZERO,
            FailureCategory::Resource => self.resource_step.saturating_mul(attempt),
            FailureCategory::RateLimit => {
                let exponent = (attempt - 1).min(20);
                let ceiling = self
                    .rate_limit_base
                    .saturating_mul(1 << exponent)
                    .min(self.max_delay);
                ceiling.mul_f64(jitter.clamp(0.0, 1.0))
            }
            _ => unreachable!("non-retryable categories return above"),
        };
        RetryDecision::RetryAfter(delay.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_s_index_is_its_place_in_all() {
        for (n, category) in FailureCategory::ALL.iter().enumerate() {
            assert_eq!(category.index(), n, "{category}");
        }
    }

    #[test]
    fn non_retryable_categories_give_up_on_first_delivery() {
        let policy = RetryPolicy::default();
        for category in [
            FailureCategory::Configuration,
            FailureCategory::Data,
            FailureCategory::Permanent,
        ] {
            assert_eq!(
                policy.decide(category, 1, 0.5),
                RetryDecision::GiveUp,
                "{category}"
            );
        }
    }

    #[test]
    fn transient_retries_at_once_until_max_receives() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(FailureCategory::Transient, 1, 0.9),
            RetryDecision::RetryAfter(Duration::ZERO)
        );
        assert_eq!(
            policy.decide(FailureCategory::Transient, 4, 0.9),
            RetryDecision::RetryAfter(Duration::ZERO)
        );
        assert_eq!(
            policy.decide(FailureCategory::Transient, 5, 0.9),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn resource_backs_off_linearly() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=4)
            .map(|n| policy.decide(FailureCategory::Resource, n, 0.0))
            .collect();
        assert_eq!(
            delays,
            [10, 20, 30, 40].map(|s| RetryDecision::RetryAfter(Duration::from_secs(s)))
        );
    }

    #[test]
    fn rate_limit_backs_off_exponentially_with_full_jitter() {
        let policy = RetryPolicy {
            max_receives: 30,
            ..RetryPolicy::default()
        };
        let at = |n, jitter| policy.decide(FailureCategory::RateLimit, n, jitter);
        assert_eq!(
            at(1, 1.0),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            at(2, 1.0),
            RetryDecision::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(
            at(4, 1.0),
            RetryDecision::RetryAfter(Duration::from_secs(16))
        );
        assert_eq!(
            at(4, 0.5),
            RetryDecision::RetryAfter(Duration::from_secs(8))
        );
        assert_eq!(at(4, 0.0), RetryDecision::RetryAfter(Duration::ZERO));
        // Capped by max_delay however many attempts came before.
        assert_eq!(
            at(25, 1.0),
            RetryDecision::RetryAfter(Duration::from_secs(900))
        );
    }

    #[test]
    fn categories_serialize_to_their_wire_names() {
        let json = serde_json::to_string(&FailureCategory::RateLimit).unwrap();
        assert_eq!(json, "\"RATE_LIMIT\"");
        for category in FailureCategory::ALL {
            let json = serde_json::to_string(&category).unwrap();
            assert_eq!(json, format!("\"{}\"", category.as_str()));
        }
    }
}
