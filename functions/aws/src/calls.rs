//! Counting the AWS API calls docket makes, by service and operation: for
//! the cost figures (calls per document) measured on the emulator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Calls per (service, operation), shared by the clients it is given to.
/// An operation counts once however many times the SDK retries it
/// (counted when it finishes).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<(String, String), u64>>>);

impl CallCounter {
    /// The counts so far.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "docket-call-counter"
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = match cfg.load::<Metadata>() {
            Some(metadata) => (metadata.service().to_owned(), metadata.name().to_owned()),
            None => ("unknown".to_owned(), "unknown".to_owned()),
        };
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
        Ok(())
    }
}
