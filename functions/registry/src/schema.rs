//! A plugin's configuration schema (JSON Schema), checked when it is
//! published and against each job's configuration when the job is
//! submitted, so a bad configuration is refused before any document runs.

use docket_core::{Failure, FailureCategory};

/// Errors listed at most in one refusal.
const LISTED: usize = 5;

/// Whether `schema` is a JSON Schema the checker can use (`null`: none).
///
/// # Errors
/// Why it is not.
pub fn check_schema(schema: &serde_json::Value) -> Result<(), String> {
    if schema.is_null() {
        return Ok(());
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| format!("the config schema is not a usable JSON Schema: {e}"))
}

/// Checks `config` against the plugin `name`'s `schema` (`null`: none).
///
/// # Errors
/// A CONFIGURATION [`Failure`] listing where and why the configuration
/// does not match (the first few).
pub fn check_config(
    name: &str,
    schema: &serde_json::Value,
    config: &serde_json::Value,
) -> Result<(), Failure> {
    if schema.is_null() {
        return Ok(());
    }
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        Failure::new(
            FailureCategory::Configuration,
            format!("{name}'s config schema is not a usable JSON Schema: {e}"),
        )
    })?;
    let errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let more = errors
        .len()
        .checked_sub(LISTED)
        .filter(|n| *n > 0)
        .map(|n| format!("; and {n} more"))
        .unwrap_or_default();
    Err(Failure::new(
        FailureCategory::Configuration,
        format!(
            "the config does not match {name}'s config schema: {}{more}",
            errors
                .iter()
                .take(LISTED)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_config_is_checked_against_the_schema_with_where_and_why() {
        let schema = json!({
            "type": "object",
            "properties": {"target_words": {"type": "integer", "minimum": 1}},
            "additionalProperties": false
        });
        assert!(check_config("p", &schema, &json!({"target_words": 800})).is_ok());
        assert!(check_config("p", &serde_json::Value::Null, &json!({"x": 1})).is_ok());
        let refused =
            check_config("p", &schema, &json!({"target_words": "many", "extra": 1})).unwrap_err();
        assert_eq!(refused.category, FailureCategory::Configuration);
        assert!(
            refused
                .message
                .starts_with("the config does not match p's config schema: "),
            "{}",
            refused.message
        );
        assert!(
            refused
                .message
                .contains("/target_words: \"many\" is not of type \"integer\""),
            "{}",
            refused.message
        );
        assert!(refused.message.contains("extra"), "{}", refused.message);
        assert!(check_schema(&json!({"type": "no such type"})).is_err());
        assert!(check_schema(&schema).is_ok());
    }
}
