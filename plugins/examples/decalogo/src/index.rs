//! The pattern index: every (pattern, what it counts towards) pair as an
//! entry keyed by its first token, sorted for binary search. Shared by the
//! library (for rubrics given in config) and the build script (which writes
//! the default rubric's index as static data).

use std::borrow::Cow;

use crate::docket_sdk_text::tokenize;

/// What a pattern counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Rubric point, by position.
    Point(usize),
    /// Question, by position.
    Question(usize),
    /// Required section, by position.
    Section(usize),
    /// A goal word.
    Goal,
    /// An indicator word.
    Indicator,
    /// A baseline word.
    Baseline,
    /// An amount or currency.
    Amount,
}

/// One pattern for one target.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The first token (lowercase).
    pub first: &'a str,
    /// The following tokens.
    pub rest: Cow<'a, [&'a str]>,
    /// The last token matches as a prefix.
    pub prefix: bool,
    /// The pattern as written (lowercase, without `*`).
    pub text: &'a str,
    /// What it counts towards.
    pub target: Target,
}

/// Entries for `(target, lowercase pattern)` pairs: whole-token entries
/// sorted by first token, and single-token prefix entries apart.
pub fn build<'a>(
    patterns: impl IntoIterator<Item = (Target, &'a str)>,
) -> (Vec<Entry<'a>>, Vec<Entry<'a>>) {
    let mut entries = Vec::new();
    let mut prefixes = Vec::new();
    for (target, raw) in patterns {
        let raw = raw.trim();
        let (text, prefix) = match raw.strip_suffix('*') {
            Some(stem) => (stem.trim_end(), true),
            None => (raw, false),
        };
        let tokens: Vec<&'a str> = tokenize(text)
            .iter()
            .map(|t| &text[t.start..t.end])
            .collect();
        let Some((first, rest)) = tokens.split_first() else {
            continue;
        };
        let entry = Entry {
            first,
            rest: Cow::Owned(rest.to_vec()),
            prefix,
            text,
            target,
        };
        if prefix && rest.is_empty() {
            prefixes.push(entry);
        } else {
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| a.first.cmp(b.first));
    (entries, prefixes)
}
