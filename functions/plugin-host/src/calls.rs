//! The world's three calls (`evaluate`, `merge-chunks`, `summarize`): the
//! input converted to WIT, the call run in a fresh sandbox, the output
//! checked against the plugin's cap and converted back; and the kept-alive
//! instance the benchmarks compare a fresh instance per document against.

use std::sync::Arc;
use std::time::Instant;

use docket_core::model::EvaluatorRef;
use docket_core::ports::{DocumentView, EvaluationReport};
use docket_core::{Evaluation, Failure, FailureCategory};
use wasmtime::Store;

use crate::convert::{evaluation_from, evaluation_to, output_bytes, plugin_error, wit_document};
use crate::sandbox::StoreState;
use crate::{HostInner, LoadedPlugin, PluginHost, bindings};

impl HostInner {
    fn checked_output(
        &self,
        plugin: &LoadedPlugin,
        e: &bindings::Evaluation,
    ) -> Result<u64, Failure> {
        let bytes = output_bytes(e);
        let limit = plugin.manifest.limits.max_output_bytes;
        if bytes > limit {
            return Err(Failure::new(
                FailureCategory::Permanent,
                format!("output of {bytes} bytes exceeds the plugin's limit of {limit} bytes"),
            ));
        }
        Ok(bytes)
    }

    pub(crate) fn evaluate(
        &self,
        evaluator: &EvaluatorRef,
        document: &DocumentView<'_>,
        config: &serde_json::Value,
        deadline: Option<Instant>,
    ) -> Result<EvaluationReport, Failure> {
        let plugin = self.plugin(evaluator)?;
        let input = wit_document(document);
        let config = if config.is_null() {
            "{}".to_owned()
        } else {
            config.to_string()
        };
        let content_len = document.content.len() as u64;
        let (result, mut usage) =
            self.with_instance(&plugin, content_len, deadline, |store, instance| {
                instance.call_evaluate(store, &input, &config)
            })?;
        let raw = result.map_err(plugin_error)?;
        usage.output_bytes = self.checked_output(&plugin, &raw)?;
        Ok(EvaluationReport {
            evaluation: evaluation_from(raw, Some(content_len))?,
            usage,
        })
    }

    pub(crate) fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: &[Evaluation],
    ) -> Result<Option<Evaluation>, Failure> {
        let plugin = self.plugin(evaluator)?;
        let input: Vec<bindings::Evaluation> = chunks.iter().map(evaluation_to).collect();
        let input_bytes = input.iter().map(output_bytes).sum();
        let (merged, _) = self.with_instance(&plugin, input_bytes, None, |store, instance| {
            instance.call_merge_chunks(store, &input)
        })?;
        match merged {
            None => Ok(None),
            Some(raw) => {
                self.checked_output(&plugin, &raw)?;
                evaluation_from(raw, None).map(Some)
            }
        }
    }

    pub(crate) fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: &[Evaluation],
    ) -> Result<Option<serde_json::Value>, Failure> {
        let plugin = self.plugin(evaluator)?;
        let input: Vec<bindings::Evaluation> = evaluations.iter().map(evaluation_to).collect();
        let input_bytes = input.iter().map(output_bytes).sum();
        let (summary, _) = self.with_instance(&plugin, input_bytes, None, |store, instance| {
            instance.call_summarize(store, &input)
        })?;
        summary_from(summary)
    }

    /// Contract 0.2.0's `combine-summaries`, looked up by name: the calls
    /// every contract has are bound from 0.1.0's world, which a 0.2.0
    /// component also implements.
    pub(crate) fn combine_summaries(
        &self,
        evaluator: &EvaluatorRef,
        partials: &[serde_json::Value],
    ) -> Result<Option<serde_json::Value>, Failure> {
        let plugin = self.plugin(evaluator)?;
        let Some(export) = &plugin.combine else {
            return Err(Failure::new(
                FailureCategory::Permanent,
                format!(
                    "{} implements {}, which has no combine-summaries",
                    evaluator.name, plugin.manifest.world
                ),
            ));
        };
        let input: Vec<String> = partials.iter().map(serde_json::Value::to_string).collect();
        let input_bytes = input.iter().map(|p| p.len() as u64).sum();
        let (combined, _) = self.in_sandbox(&plugin, input_bytes, None, |store| {
            let instance = plugin.pre.instance_pre().instantiate(&mut *store)?;
            let combine = instance
                .get_typed_func::<(Vec<String>,), (Option<String>,)>(&mut *store, export)?;
            let (combined,) = combine.call(&mut *store, (input,))?;
            Ok(combined)
        })?;
        summary_from(combined)
    }
}

/// A summary the plugin returned, parsed.
fn summary_from(summary: Option<String>) -> Result<Option<serde_json::Value>, Failure> {
    summary
        .map(|json| {
            serde_json::from_str(&json).map_err(|e| {
                Failure::new(
                    FailureCategory::Permanent,
                    format!("invalid plugin output: summary is not JSON: {e}"),
                )
            })
        })
        .transpose()
}

/// A kept-alive instance: one store reused for many calls, refuelled before
/// each. docket's pipeline never uses it — documents must not share an
/// instance — it exists so benchmarks can measure what a fresh instance
/// per document costs.
pub struct WarmInstance {
    host: Arc<HostInner>,
    plugin: Arc<LoadedPlugin>,
    store: Store<StoreState>,
    instance: bindings::Evaluator,
}

impl PluginHost {
    /// A kept-alive instance of `evaluator` (for measurements only).
    ///
    /// # Errors
    /// When the evaluator is not loaded or does not instantiate.
    pub fn warm_instance(&self, evaluator: &EvaluatorRef) -> Result<WarmInstance, Failure> {
        let plugin = self.inner.plugin(evaluator)?;
        let limits = plugin.manifest.limits;
        let (mut store, _) = self.inner.new_store(&limits);
        let instance = self
            .inner
            .arm(&mut store, limits.timeout_ms, limits.fuel_base)
            .and_then(|()| plugin.pre.instantiate(&mut store))
            .map_err(|e| Failure::new(FailureCategory::Permanent, format!("{e:#}")))?;
        Ok(WarmInstance {
            host: self.inner.clone(),
            plugin,
            store,
            instance,
        })
    }
}

impl WarmInstance {
    /// Evaluates on the kept-alive instance.
    ///
    /// # Errors
    /// A categorized failure, as for a fresh instance.
    pub fn evaluate(
        &mut self,
        document: &DocumentView<'_>,
        config: &str,
    ) -> Result<Evaluation, Failure> {
        let limits = self.plugin.manifest.limits;
        let fuel = limits.fuel_for(document.content.len() as u64);
        let input = wit_document(document);
        let result = self
            .host
            .arm(&mut self.store, limits.timeout_ms, fuel)
            .and_then(|()| self.instance.call_evaluate(&mut self.store, &input, config))
            .map_err(|e| Failure::new(FailureCategory::Permanent, format!("{e:#}")))?;
        evaluation_from(
            result.map_err(plugin_error)?,
            Some(document.content.len() as u64),
        )
    }
}
