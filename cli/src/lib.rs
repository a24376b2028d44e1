//! The `docket` command's library: reading documents from disk, PDFs,
//! running the pipeline on the embedded backend, serving the API and the
//! API client. `main.rs` and its `commands` (one module per command) only
//! parse arguments and call in here, so everything is testable.

pub mod client;
pub mod faults;
pub mod local_jobs;
pub mod local_run;
pub mod plugins;
pub mod scaffold;
pub mod serve;
pub mod units;

pub use docket_intake::{intake, pdf};
