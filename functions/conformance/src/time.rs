//! How a check lets time pass for the backend under test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use docket_core::ports::Clock;

/// Lets time pass for a subject's backend. The checks that wait for a
/// visibility timeout or a delay call [`Time::pass`] instead of sleeping.
#[async_trait::async_trait]
pub trait Time: Send + Sync {
    /// Returns once the backend's clock has moved on by at least `by`.
    async fn pass(&self, by: Duration);
}

/// Real time, for a backend whose clock cannot be controlled (a remote
/// service): passing time is sleeping.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealTime;

#[async_trait::async_trait]
impl Time for RealTime {
    async fn pass(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

/// A clock that moves only when time is passed. Give it to the backend as
/// its [`Clock`] and to the subject as its [`Time`]: the backend then hides
/// and shows messages by this clock, and a wait costs nothing.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock at the current time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Utc::now())))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += chrono::Duration::from_std(by).unwrap();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[async_trait::async_trait]
impl Time for ManualClock {
    async fn pass(&self, by: Duration) {
        self.advance(by);
    }
}
