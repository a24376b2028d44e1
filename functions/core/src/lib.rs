//! docket's core: jobs, work items, chunking, progress, aggregation, retry
//! policy and the pipeline steps, written against the ports in [`ports`].
//!
//! This crate does no I/O of its own and depends on no AWS, Lambda, SQLite or
//! wasmtime crate. The `local` and `aws` adapter crates implement the ports;
//! the Lambda functions and the `docket` command hand their ports to a
//! [`pipeline::Pipeline`] once and call its use cases.
#![deny(missing_docs)]

pub mod aggregate;
pub mod auth;
pub mod chunking;
pub mod evaluation;
pub mod failure;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod plugin;
pub mod ports;
pub mod progress;
pub mod quota;
pub mod results;
pub mod upload;
pub mod webhook;

pub use evaluation::{Data, Evaluation, Finding, Score, Severity, Span};
pub use failure::{Failure, FailureCategory, RetryPolicy};
pub use model::{
    DocumentBody, DocumentSpec, EvaluatorRef, ItemOutcome, ItemResult, ItemStatus, Job,
    JobCounters, JobId, JobOptions, JobStatus, Priority, TenantId, WorkItem,
};
pub use pipeline::{Pipeline, PipelineError, PipelineSettings, Ports, Submission};
