//! The `docket` command's library: reading documents from disk, PDFs, and
//! running the pipeline on the embedded backend. `main.rs` only parses
//! arguments and calls in here, so everything is testable.

pub mod intake;
pub mod local_run;
pub mod pdf;
pub mod serve;
