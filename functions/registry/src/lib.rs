//! docket's plugin registry without the engine: what a function that
//! submits jobs needs to know about evaluators and nothing it would need to
//! run them. [`Registry`] resolves a spec (`name`, `name@version`,
//! `name@range`) among the versions a process has plus the published ones
//! and checks a job's configuration against the plugin's schema;
//! [`Resolver`] is the `Evaluators` port of a process that runs no
//! evaluator (the API's `upload` function, `ingest`, `webhook`), so those
//! binaries do not link wasmtime. The plugin host's `Catalog` resolves and
//! checks through the same [`Registry`].
#![deny(missing_docs)]

use std::sync::Arc;

use docket_core::model::EvaluatorRef;
use docket_core::plugin::{Manifest, PluginSpec, resolve_among};
use docket_core::ports::{
    EvaluationReport, EvaluationRequest, Evaluators, PluginRegistry, StoreError,
};
use docket_core::{Evaluation, Failure, FailureCategory};

mod schema;

pub use schema::{check_config, check_schema};

/// The published plugins of a deployment, as evaluators are resolved and
/// configurations checked against them.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn PluginRegistry>,
}

impl Registry {
    /// The registry in `store`.
    pub fn new(store: Arc<dyn PluginRegistry>) -> Self {
        Self { store }
    }

    /// The registered manifest of `name@version`, if published.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn published(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<Manifest>, StoreError> {
        Ok(self
            .store
            .plugins(Some(name))
            .await?
            .into_iter()
            .find(|m| m.version == version))
    }

    /// Every published plugin version, by name then version.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn list(&self) -> Result<Vec<Manifest>, StoreError> {
        self.store.plugins(None).await
    }

    /// Resolves `spec` among `known` (the versions this process has) and
    /// the published versions of its name; an unknown name is refused
    /// naming every version there is.
    ///
    /// # Errors
    /// A `Configuration` failure naming the unknown evaluator or version;
    /// the registry's when it cannot be read.
    pub async fn resolve(
        &self,
        spec: &str,
        mut known: Vec<EvaluatorRef>,
    ) -> Result<EvaluatorRef, Failure> {
        let wanted = PluginSpec::parse(spec)?;
        let unreadable = |e: StoreError| {
            Failure::new(e.category(), format!("plugin registry not readable: {e}"))
        };
        let published = self
            .store
            .plugins(Some(&wanted.name))
            .await
            .map_err(unreadable)?;
        known.extend(published.iter().map(Manifest::reference));
        if !known.iter().any(|r| r.name == wanted.name) {
            // Name the published plugins too when the name is unknown.
            if let Ok(all) = self.store.plugins(None).await {
                known.extend(all.iter().map(Manifest::reference));
            }
        }
        resolve_among(spec, &known)
    }

    /// Checks `config` against the schema of `evaluator`: `local`'s when it
    /// is this very name@version (the same bytes may be known under another
    /// name, e.g. a bundled one), else the published manifest's.
    ///
    /// # Errors
    /// A `Configuration` failure saying where the configuration does not
    /// match; the registry's when it cannot be read.
    pub async fn check_config(
        &self,
        evaluator: &EvaluatorRef,
        local: Option<Manifest>,
        config: &serde_json::Value,
    ) -> Result<(), Failure> {
        if let Some(manifest) =
            local.filter(|m| m.name == evaluator.name && m.version == evaluator.version)
        {
            return check_config(&evaluator.name, &manifest.config_schema, config);
        }
        let published = self
            .published(&evaluator.name, &evaluator.version)
            .await
            .map_err(|e| {
                Failure::new(e.category(), format!("plugin registry not readable: {e}"))
            })?;
        match published {
            Some(manifest) => check_config(&evaluator.name, &manifest.config_schema, config),
            None => Ok(()),
        }
    }
}

/// The `Evaluators` port of a process that submits jobs but runs no
/// evaluator: it resolves among `bundled` and the published plugins and
/// checks configurations; a call to run one is a `RESOURCE` failure (retried
/// where evaluators run), never made by the functions that use it.
#[derive(Clone)]
pub struct Resolver {
    registry: Registry,
    bundled: Vec<Manifest>,
}

impl Resolver {
    /// Resolves among `bundled` (the manifests of the components a
    /// processor carries) and the published plugins in `registry`.
    pub fn new(registry: Registry, bundled: Vec<Manifest>) -> Self {
        Self { registry, bundled }
    }

    fn not_run(&self, evaluator: &EvaluatorRef) -> Failure {
        Failure::new(
            FailureCategory::Resource,
            format!("evaluator {evaluator} is not run in this function (it has no plugin engine)"),
        )
    }
}

#[async_trait::async_trait]
impl Evaluators for Resolver {
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        self.registry.resolve(spec, self.loaded()).await
    }

    fn loaded(&self) -> Vec<EvaluatorRef> {
        self.bundled.iter().map(Manifest::reference).collect()
    }

    async fn check_config(
        &self,
        evaluator: &EvaluatorRef,
        config: &serde_json::Value,
    ) -> Result<(), Failure> {
        let local = self
            .bundled
            .iter()
            .find(|m| m.sha256 == evaluator.digest)
            .cloned();
        self.registry.check_config(evaluator, local, config).await
    }

    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        _deadline: Option<std::time::Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>> {
        requests
            .iter()
            .map(|r| Err(self.not_run(&r.evaluator)))
            .collect()
    }

    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        _chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure> {
        Err(self.not_run(evaluator))
    }

    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        _evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        Err(self.not_run(evaluator))
    }

    async fn folds_summaries(&self, evaluator: &EvaluatorRef) -> Result<bool, Failure> {
        Err(self.not_run(evaluator))
    }

    async fn combine_summaries(
        &self,
        evaluator: &EvaluatorRef,
        _partials: Vec<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        Err(self.not_run(evaluator))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Published manifests in memory.
    struct Published(Vec<Manifest>);

    #[async_trait::async_trait]
    impl PluginRegistry for Published {
        async fn register_plugin(&self, _: &Manifest) -> Result<bool, StoreError> {
            unreachable!("not published through here")
        }

        async fn plugins(&self, name: Option<&str>) -> Result<Vec<Manifest>, StoreError> {
            Ok(self
                .0
                .iter()
                .filter(|m| name.is_none_or(|n| m.name == n))
                .cloned()
                .collect())
        }
    }

    fn resolver() -> Resolver {
        let mut strict = Manifest::for_component("strict", "1.2.0", b"strict bytes");
        strict.config_schema = serde_json::json!({"type": "object", "required": ["threshold"]});
        let published = vec![
            Manifest::for_component("strict", "1.0.0", b"old bytes"),
            strict,
        ];
        Resolver::new(
            Registry::new(Arc::new(Published(published))),
            vec![Manifest::for_component(
                "wordstats",
                "0.1.0",
                b"bundled bytes",
            )],
        )
    }

    #[tokio::test]
    async fn resolves_bundled_and_published_versions_and_checks_their_configs() {
        let resolver = resolver();
        let bundled = resolver.resolve("wordstats").await.unwrap();
        assert_eq!(
            bundled.digest,
            docket_core::plugin::digest(b"bundled bytes")
        );
        let newest = resolver.resolve("strict@^1").await.unwrap();
        assert_eq!(newest.version, "1.2.0");
        assert_eq!(newest.digest, docket_core::plugin::digest(b"strict bytes"));
        let unknown = resolver.resolve("nope").await.unwrap_err();
        assert_eq!(unknown.category, FailureCategory::Configuration);
        assert_eq!(
            unknown.message,
            "unknown evaluator \"nope\" (known: strict, wordstats)"
        );
        let refused = resolver
            .check_config(&newest, &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(refused.category, FailureCategory::Configuration);
        resolver
            .check_config(&newest, &serde_json::json!({"threshold": 3}))
            .await
            .unwrap();
        resolver
            .check_config(&bundled, &serde_json::json!({"any": 1}))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn running_an_evaluator_here_is_a_resource_failure() {
        let resolver = resolver();
        let bundled = resolver.resolve("wordstats").await.unwrap();
        let failure = resolver.folds_summaries(&bundled).await.unwrap_err();
        assert_eq!(failure.category, FailureCategory::Resource);
        assert_eq!(
            failure.message,
            format!("evaluator {bundled} is not run in this function (it has no plugin engine)")
        );
    }
}
