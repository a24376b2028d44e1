//! The upload body — `{"documents":[{"id","title","content","metadata"}],
//! "options":{…}}` — as ONE serde type: the API reads it, manifests on disk
//! and in the inbox are read with it, `*.batch.json` options come from it
//! and the `docket submit` client writes it.
//!
//! Fields are read loosely (`id` may be a number, `content` anything) so
//! that each problem can be reported with its path instead of one serde
//! error for the whole body; [`Rules`] say which problems count where.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Chunking, DocumentBody, DocumentSpec, TenantId};

/// The upload body: the batch clients' shape plus docket's own options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The documents, in order.
    pub documents: Vec<UploadDocument>,
    /// How to run them.
    #[serde(default)]
    pub options: UploadOptions,
}

/// One document of an upload body or manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadDocument {
    /// Its id: a string (or a number, kept as its digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// Its title (the id when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// Instead of `content`: a file whose text is read, relative to the
    /// manifest (a file beside it on disk, an object beside it in the
    /// inbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Instead of `content`: an object of the deployment's bucket whose
    /// text the processor extracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A JSON object carried to the results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The options of an upload body (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadOptions {
    /// `high`, `normal` or `low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Keep evidence spans in the results.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_flag"
    )]
    pub include_evidence: Option<bool>,
    /// The seed clients' switch, passed to the evaluator's configuration.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_flag"
    )]
    pub include_questionnaire: Option<bool>,
    /// Where the job-finished callback goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// `name`, `name@version` or `name@range`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluator: Option<String>,
    /// The evaluator's configuration (a JSON object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// How documents are split into work items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunking: Option<Chunking>,
    /// Fail fast past this share of failed documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerated_failure_percent: Option<f64>,
}

/// What a flag given as text may say, read as FastAPI (pydantic) reads a
/// boolean, so clients written against it keep working: any case of
/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`.
pub const FLAG_WORDS: &str = "true/false, 1/0, yes/no, on/off";

/// `text` as a flag ([`FLAG_WORDS`]); `None` when it is none of them.
pub fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// The message of a flag that is not one.
pub fn not_a_flag(text: &str) -> String {
    format!("{text:?} is not a boolean (use {FLAG_WORDS})")
}

/// A JSON flag as pydantic's lax mode reads one: a boolean, `0` or `1`, or
/// a string [`parse_flag`] reads.
fn lenient_flag<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(flag)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(Value::String(text)) => parse_flag(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(not_a_flag(&text))),
        Some(other) => Err(D::Error::custom(format!(
            "{other} is not a boolean (use {FLAG_WORDS})"
        ))),
    }
}

/// Where a tenant's uploaded files are stored; a batch may reference
/// only objects under it (`key`).
pub fn uploads_prefix(tenant: &TenantId) -> String {
    format!("uploads/{tenant}/")
}

/// The key of the `n`th file of upload `upload`, named `name` (kept
/// readable: characters other than letters, digits, `.`, `-` and `_`
/// become `_`).
pub fn uploaded_file_key(tenant: &TenantId, upload: &str, n: usize, name: &str) -> String {
    let name: String = name
        .chars()
        .rev()
        .take(100)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{upload}/{n:05}-{name}", uploads_prefix(tenant))
}

/// Where a document's text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// In its `content`.
    Content,
    /// In the file at this path, relative to the manifest.
    Path(&'a str),
    /// In this object of the deployment's bucket.
    Key(&'a str),
}

/// What is wrong with one field of a document: the field's name (`id`,
/// `content`, `metadata`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field.
    pub field: &'static str,
    /// Why.
    pub message: &'static str,
}

/// Which rules a document is read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// The API's: an id ([`UploadDocument::required_id`]) and non-blank
    /// text are required, metadata must be an object — every problem is
    /// reported.
    Strict,
    /// A manifest's on disk or in the inbox: a document without a usable
    /// id gets its position ([`UploadDocument::id_or`]), metadata is kept
    /// as given.
    Lenient,
}

impl UploadDocument {
    /// A text document.
    pub fn text(id: &str, title: &str, content: String, metadata: Value) -> Self {
        Self {
            id: Some(Value::String(id.to_owned())),
            title: Some(title.to_owned()),
            content: Some(Value::String(content)),
            metadata: (!metadata.is_null()).then_some(metadata),
            ..Self::default()
        }
    }

    /// Where the document's text is: inline, or the file or object it
    /// names — exactly one of them.
    ///
    /// # Errors
    /// `content`: `give one of content, path or key` when none or several
    /// are given.
    pub fn source(&self) -> Result<Source<'_>, FieldProblem> {
        match (&self.content, &self.path, &self.key) {
            (Some(_), None, None) => Ok(Source::Content),
            (None, Some(path), None) => Ok(Source::Path(path)),
            (None, None, Some(key)) => Ok(Source::Key(key)),
            (None, None, None) => Err(FieldProblem {
                field: "content",
                message: "missing (give one of content, path or key)",
            }),
            _ => Err(FieldProblem {
                field: "content",
                message: "give only one of content, path or key",
            }),
        }
    }

    /// Its metadata under `rules`.
    ///
    /// # Errors
    /// `metadata`: `must be a JSON object` (strict only).
    pub fn metadata(&self, rules: Rules) -> Result<Value, FieldProblem> {
        match &self.metadata {
            None => Ok(Value::Null),
            Some(metadata @ (Value::Null | Value::Object(_))) => Ok(metadata.clone()),
            Some(_) if rules == Rules::Strict => Err(FieldProblem {
                field: "metadata",
                message: "must be a JSON object",
            }),
            Some(metadata) => Ok(metadata.clone()),
        }
    }

    /// The document's id under the strict rules.
    ///
    /// # Errors
    /// The id's problem: `empty`, `must be a string`, `missing`.
    pub fn required_id(&self) -> Result<String, FieldProblem> {
        let problem = |message| FieldProblem {
            field: "id",
            message,
        };
        match &self.id {
            Some(Value::String(id)) if id.trim().is_empty() => Err(problem("empty")),
            Some(Value::String(id)) => Ok(id.clone()),
            Some(Value::Number(id)) => Ok(id.to_string()),
            Some(_) => Err(problem("must be a string")),
            None => Err(problem("missing")),
        }
    }

    /// The document's id under the lenient rules: the one given (a
    /// non-empty string or a number), else `fallback`.
    pub fn id_or(&self, fallback: String) -> String {
        match &self.id {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => fallback,
        }
    }

    /// Its title: the one given, else its id.
    pub fn title_or(&self, id: &str) -> String {
        self.title.clone().unwrap_or_else(|| id.to_owned())
    }

    /// The document as the pipeline takes it, with `id`, or the first
    /// problem of its content or metadata under `rules`.
    ///
    /// # Errors
    /// `content`: `empty` (strict only), `must be a string`, `missing`;
    /// `metadata`: `must be a JSON object` (strict only).
    pub fn into_spec(self, id: String, rules: Rules) -> Result<DocumentSpec, FieldProblem> {
        let strict = rules == Rules::Strict;
        let title = self.title_or(&id);
        let metadata = self.metadata(rules);
        let problem = |field, message| FieldProblem { field, message };
        let content = match self.content {
            Some(Value::String(content)) if strict && content.trim().is_empty() => {
                return Err(problem("content", "empty"));
            }
            Some(Value::String(content)) => content,
            Some(_) => return Err(problem("content", "must be a string")),
            None => return Err(problem("content", "missing")),
        };
        Ok(DocumentSpec {
            title,
            id,
            body: DocumentBody::Text(content),
            metadata: metadata?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_as_fastapi_reads_them() {
        for word in [
            "true", "True", "TRUE", "1", "yes", "Yes", "on", "t", "y", " true ",
        ] {
            assert_eq!(parse_flag(word), Some(true), "{word}");
        }
        for word in ["false", "False", "0", "no", "NO", "off", "Off", "f", "n"] {
            assert_eq!(parse_flag(word), Some(false), "{word}");
        }
        for word in ["", "maybe", "2", "truthy", "nope"] {
            assert_eq!(parse_flag(word), None, "{word}");
        }
        let options = |json: &str| serde_json::from_str::<UploadOptions>(json);
        for (json, flag) in [
            (r#"{"include_evidence": true}"#, Some(true)),
            (r#"{"include_evidence": "True"}"#, Some(true)),
            (r#"{"include_evidence": 0}"#, Some(false)),
            (r#"{"include_evidence": "off"}"#, Some(false)),
            (r#"{"include_evidence": null}"#, None),
            ("{}", None),
        ] {
            assert_eq!(
                options(json).map(|o| o.include_evidence).ok(),
                Some(flag),
                "{json}"
            );
        }
        for json in [
            r#"{"include_questionnaire": "maybe"}"#,
            r#"{"include_questionnaire": 2}"#,
            r#"{"include_questionnaire": []}"#,
        ] {
            let error = options(json).map(|_| ()).unwrap_err().to_string();
            assert!(
                error.contains("is not a boolean (use true/false"),
                "{json}: {error}"
            );
        }
    }

    #[test]
    fn ids_follow_the_rules() {
        let doc = |id: Value| UploadDocument {
            id: Some(id),
            ..UploadDocument::default()
        };
        let problem = |d: UploadDocument| d.required_id().unwrap_err().message;
        assert_eq!(doc(Value::from("a")).required_id(), Ok("a".into()));
        assert_eq!(doc(Value::from(7)).required_id(), Ok("7".into()));
        assert_eq!(problem(doc(Value::from(" "))), "empty");
        assert_eq!(problem(doc(Value::from(true))), "must be a string");
        assert_eq!(problem(UploadDocument::default()), "missing");
        let fallback = || "m#3".to_owned();
        assert_eq!(UploadDocument::default().id_or(fallback()), "m#3");
        assert_eq!(doc(Value::from("")).id_or(fallback()), "m#3");
        assert_eq!(doc(Value::from(" ")).id_or(fallback()), " ");
        assert_eq!(doc(Value::from(7)).id_or(fallback()), "7");
    }

    #[test]
    fn the_client_writes_what_the_api_reads() {
        let request = UploadRequest {
            documents: vec![UploadDocument::text("a", "A", "text".into(), Value::Null)],
            options: UploadOptions {
                evaluator: Some("wordstats".into()),
                ..UploadOptions::default()
            },
        };
        let json = serde_json::to_string(&request).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"documents":[{"id":"a","title":"A","content":"text"}],"options":{"evaluator":"wordstats"}}"#
        );
        assert_eq!(
            serde_json::from_str::<UploadRequest>(&json).ok(),
            Some(request)
        );
    }
}
