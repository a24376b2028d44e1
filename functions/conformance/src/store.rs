//! [`JobStore`](docket_core::ports::JobStore) checks, in two parts: jobs
//! and their outcomes, and the keyed records beside them.

mod jobs;
mod keys;

pub use jobs::*;
pub use keys::*;
