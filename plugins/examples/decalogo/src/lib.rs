//! `decalogo`: scores a development plan against a ten-point rubric (0–100)
//! and a thirty-question questionnaire (0–60, 2 points a question), with
//! evidence snippets and their byte offsets, violations for required
//! sections that are missing and warnings for goals without indicators or
//! baselines and budgets without figures. Patterns cover Spanish and
//! English.
//!
//! The text is scanned once with one Aho-Corasick automaton over every
//! pattern of the rubric, whatever its size.
//!
//! Configuration (all optional):
//! `{"rubric": {...}, "include_questionnaire": true}` — a whole replacement
//! rubric (see [`rubric::Rubric`]), and whether to list a finding with
//! evidence for every answered question.

pub mod rubric;

use std::collections::{BTreeMap, BTreeSet};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use docket_sdk::{Document, Evaluation, Evaluator, Finding, PluginError, Score, Severity, Span};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use rubric::Rubric;

/// Points a rubric criterion is worth.
const POINT_WEIGHT: f64 = 10.0;
/// Points a question is worth.
const QUESTION_WEIGHT: f64 = 2.0;
/// Bytes of context on each side of an evidence snippet.
const CONTEXT: usize = 40;

/// The evaluator.
pub struct Decalogo;

impl Evaluator for Decalogo {
    fn evaluate(document: Document, config: Value) -> Result<Evaluation, PluginError> {
        let config = Config::parse(config)?;
        if document.content.trim().is_empty() {
            return Err(PluginError::InvalidDocument(
                "the document has no text".into(),
            ));
        }
        let scanner = Scanner::new(&config.rubric)?;
        Ok(scanner.evaluate(&document.content, config.include_questionnaire))
    }

    fn merge_chunks(chunks: Vec<Evaluation>) -> Option<Evaluation> {
        merge(chunks)
    }
}

docket_sdk::export_evaluator!(Decalogo);

/// The parsed configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    rubric: Option<Rubric>,
    #[serde(default)]
    include_questionnaire: bool,
}

struct Parsed {
    rubric: Rubric,
    include_questionnaire: bool,
}

impl Config {
    fn parse(value: Value) -> Result<Parsed, PluginError> {
        let config: Config = if value.is_null() {
            Config::default()
        } else {
            serde_json::from_value(value)
                .map_err(|e| PluginError::InvalidConfig(format!("decalogo config: {e}")))?
        };
        let rubric = config.rubric.unwrap_or_default();
        if rubric.points.is_empty() {
            return Err(PluginError::InvalidConfig("rubric.points is empty".into()));
        }
        Ok(Parsed {
            rubric,
            include_questionnaire: config.include_questionnaire,
        })
    }
}

/// Evaluates `text` with the default rubric (the native entry point used by
/// benchmarks and tests).
pub fn evaluate_text(text: &str) -> Evaluation {
    match Scanner::new(&Rubric::default()) {
        Ok(scanner) => scanner.evaluate(text, false),
        Err(_) => Evaluation::default(),
    }
}

/// What a pattern counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Point(usize),
    Question(usize),
    Section(usize),
    Goal,
    Indicator,
    Baseline,
    Amount,
}

struct Pattern {
    /// As written in the rubric, without a trailing `*`.
    text: String,
    /// Must start on a word boundary.
    left: bool,
    /// Must end on a word boundary.
    right: bool,
    targets: Vec<Target>,
}

/// What a document (or the merge of its chunks) shows: everything the
/// scores, violations and warnings are computed from. Kept in `data`, so
/// chunk evaluations can be merged exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Signals {
    /// Rubric point id → the distinct patterns found.
    points: BTreeMap<String, BTreeSet<String>>,
    /// Question id → answered.
    questionnaire: BTreeMap<String, bool>,
    /// Section id → title and whether it is present.
    sections: BTreeMap<String, SectionState>,
    goals: bool,
    indicators: bool,
    baselines: bool,
    amounts: bool,
    /// Stop words seen per language, for the language label.
    language_votes: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SectionState {
    title: String,
    present: bool,
}

struct Scanner<'r> {
    rubric: &'r Rubric,
    automaton: AhoCorasick,
    /// Automaton pattern index → index in `patterns`.
    variant_of: Vec<usize>,
    patterns: Vec<Pattern>,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

impl<'r> Scanner<'r> {
    fn new(rubric: &'r Rubric) -> Result<Self, PluginError> {
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut add = |raw: &str, target: Target| {
            let (text, prefix) = match raw.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (raw, false),
            };
            let text = text.trim();
            if text.is_empty() {
                return;
            }
            let key = text.to_lowercase();
            let n = *index.entry(key).or_insert_with(|| {
                patterns.push(Pattern {
                    text: text.to_owned(),
                    left: text.chars().next().is_some_and(is_word_char),
                    right: !prefix && text.chars().next_back().is_some_and(is_word_char),
                    targets: Vec::new(),
                });
                patterns.len() - 1
            });
            if !patterns[n].targets.contains(&target) {
                patterns[n].targets.push(target);
            }
        };
        for (i, c) in rubric.points.iter().enumerate() {
            c.patterns.iter().for_each(|p| add(p, Target::Point(i)));
        }
        for (i, c) in rubric.questions.iter().enumerate() {
            c.patterns.iter().for_each(|p| add(p, Target::Question(i)));
        }
        for (i, c) in rubric.sections.iter().enumerate() {
            c.patterns.iter().for_each(|p| add(p, Target::Section(i)));
        }
        rubric.goals.iter().for_each(|p| add(p, Target::Goal));
        rubric
            .indicators
            .iter()
            .for_each(|p| add(p, Target::Indicator));
        rubric
            .baselines
            .iter()
            .for_each(|p| add(p, Target::Baseline));
        rubric.amounts.iter().for_each(|p| add(p, Target::Amount));

        // ASCII case is folded by the automaton; accented letters are not,
        // so the all-caps form of a non-ASCII pattern is added as well.
        let mut variants: Vec<String> = Vec::new();
        let mut variant_of = Vec::new();
        for (n, pattern) in patterns.iter().enumerate() {
            variants.push(pattern.text.clone());
            variant_of.push(n);
            if !pattern.text.is_ascii() {
                let upper = pattern.text.to_uppercase();
                if upper != pattern.text {
                    variants.push(upper);
                    variant_of.push(n);
                }
            }
        }
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&variants)
            .map_err(|e| PluginError::InvalidConfig(format!("rubric patterns: {e}")))?;
        Ok(Scanner {
            rubric,
            automaton,
            variant_of,
            patterns,
        })
    }

    fn evaluate(&self, text: &str, include_questionnaire: bool) -> Evaluation {
        let rubric = self.rubric;
        let mut signals = Signals {
            points: rubric
                .points
                .iter()
                .map(|c| (c.id.clone(), BTreeSet::new()))
                .collect(),
            questionnaire: rubric
                .questions
                .iter()
                .map(|c| (c.id.clone(), false))
                .collect(),
            sections: rubric
                .sections
                .iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        SectionState {
                            title: c.title.clone(),
                            present: false,
                        },
                    )
                })
                .collect(),
            language_votes: language_votes(text),
            ..Signals::default()
        };
        // First (earliest) evidence per point and per question.
        let mut point_evidence: BTreeMap<usize, (usize, usize, usize)> = BTreeMap::new();
        let mut question_evidence: BTreeMap<usize, (usize, usize, usize)> = BTreeMap::new();
        for found in self.automaton.find_overlapping_iter(text) {
            let n = self.variant_of[found.pattern().as_usize()];
            let pattern = &self.patterns[n];
            let (start, end) = (found.start(), found.end());
            if pattern.left && text[..start].chars().next_back().is_some_and(is_word_char) {
                continue;
            }
            if pattern.right && text[end..].chars().next().is_some_and(is_word_char) {
                continue;
            }
            for target in &pattern.targets {
                match *target {
                    Target::Point(i) => {
                        if let Some(set) = signals.points.get_mut(&rubric.points[i].id) {
                            set.insert(pattern.text.to_lowercase());
                        }
                        let entry = point_evidence.entry(i).or_insert((start, end, n));
                        if start < entry.0 {
                            *entry = (start, end, n);
                        }
                    }
                    Target::Question(i) => {
                        signals
                            .questionnaire
                            .insert(rubric.questions[i].id.clone(), true);
                        let entry = question_evidence.entry(i).or_insert((start, end, n));
                        if start < entry.0 {
                            *entry = (start, end, n);
                        }
                    }
                    Target::Section(i) => {
                        if let Some(state) = signals.sections.get_mut(&rubric.sections[i].id) {
                            state.present = true;
                        }
                    }
                    Target::Goal => signals.goals = true,
                    Target::Indicator => signals.indicators = true,
                    Target::Baseline => signals.baselines = true,
                    Target::Amount => signals.amounts = true,
                }
            }
        }
        let mut evidence = Vec::new();
        for (i, (start, end, n)) in point_evidence {
            let criterion = &rubric.points[i];
            evidence.push(Finding {
                code: format!("evidence:{}", criterion.id),
                severity: Severity::Info,
                message: format!(
                    "{}: found \u{ab}{}\u{bb}",
                    criterion.title, self.patterns[n].text
                ),
                evidence: Some(span(text, start, end)),
            });
        }
        if include_questionnaire {
            for (i, (start, end, n)) in question_evidence {
                let question = &rubric.questions[i];
                evidence.push(Finding {
                    code: format!("question:{}", question.id),
                    severity: Severity::Info,
                    message: format!(
                        "{} yes: \u{ab}{}\u{bb}",
                        question.title, self.patterns[n].text
                    ),
                    evidence: Some(span(text, start, end)),
                });
            }
        }
        signals.into_evaluation(evidence)
    }
}

/// An evidence span for `text[start..end]` with some context around it.
fn span(text: &str, start: usize, end: usize) -> Span {
    let mut from = start.saturating_sub(CONTEXT);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (end + CONTEXT).min(text.len());
    while !text.is_char_boundary(to) {
        to += 1;
    }
    let snippet = text[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Span {
        start: start as u64,
        end: end as u64,
        snippet,
    }
}

const SPANISH: &[&str] = &[
    "el", "la", "los", "las", "del", "que", "para", "con", "por", "una",
];
const ENGLISH: &[&str] = &[
    "the", "and", "of", "to", "for", "with", "that", "is", "are", "will",
];

fn language_votes(text: &str) -> BTreeMap<String, u32> {
    let (mut es, mut en) = (0, 0);
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.len() > 4 || word.is_empty() {
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if SPANISH.contains(&lower.as_str()) {
            es += 1;
        } else if ENGLISH.contains(&lower.as_str()) {
            en += 1;
        }
    }
    BTreeMap::from([("en".to_owned(), en), ("es".to_owned(), es)])
}

impl Signals {
    /// Scores, violations, warnings and labels from the signals, after the
    /// `evidence` findings.
    fn into_evaluation(self, mut findings: Vec<Finding>) -> Evaluation {
        let rubric_score: f64 = self
            .points
            .values()
            .map(|found| match found.len() {
                0 => 0.0,
                1 => POINT_WEIGHT / 2.0,
                _ => POINT_WEIGHT,
            })
            .sum();
        let answered = self.questionnaire.values().filter(|a| **a).count() as f64;
        for (id, section) in &self.sections {
            if !section.present {
                findings.push(Finding {
                    code: format!("missing-section:{id}"),
                    severity: Severity::Violation,
                    message: format!("required section missing: {}", section.title),
                    evidence: None,
                });
            }
        }
        let mut warn = |code: &str, message: &str| {
            findings.push(Finding {
                code: code.to_owned(),
                severity: Severity::Warning,
                message: message.to_owned(),
                evidence: None,
            })
        };
        if self.goals && !self.indicators {
            warn(
                "goals-without-indicators",
                "goals are stated without indicators to measure them",
            );
        }
        if self.goals && !self.baselines {
            warn(
                "goals-without-baseline",
                "goals are stated without a baseline to measure from",
            );
        }
        if !self.amounts {
            warn(
                "no-budget-figures",
                "no budget figures (amounts or currencies) were found",
            );
        }
        let es = self.language_votes.get("es").copied().unwrap_or(0);
        let en = self.language_votes.get("en").copied().unwrap_or(0);
        let language = match (es, en) {
            (0, 0) => "language:unknown",
            (es, en) if es >= en => "language:es",
            _ => "language:en",
        };
        Evaluation {
            scores: vec![
                Score::new(
                    "decalogo",
                    rubric_score,
                    POINT_WEIGHT * self.points.len() as f64,
                ),
                Score::new(
                    "questionnaire",
                    answered * QUESTION_WEIGHT,
                    QUESTION_WEIGHT * self.questionnaire.len() as f64,
                ),
            ],
            findings,
            labels: vec![language.to_owned()],
            data: serde_json::to_value(&self).unwrap_or(Value::Null),
        }
    }
}

/// Merges chunk evaluations exactly: the union of what every chunk shows,
/// re-scored; the first evidence per criterion is kept.
fn merge(chunks: Vec<Evaluation>) -> Option<Evaluation> {
    let mut merged: Option<Signals> = None;
    let mut evidence: Vec<Finding> = Vec::new();
    for chunk in chunks {
        let signals: Signals = serde_json::from_value(chunk.data).ok()?;
        for finding in chunk.findings {
            if finding.severity == Severity::Info
                && !evidence.iter().any(|f| f.code == finding.code)
            {
                evidence.push(finding);
            }
        }
        merged = Some(match merged {
            None => signals,
            Some(mut acc) => {
                for (id, found) in signals.points {
                    acc.points.entry(id).or_default().extend(found);
                }
                for (id, answered) in signals.questionnaire {
                    *acc.questionnaire.entry(id).or_default() |= answered;
                }
                for (id, state) in signals.sections {
                    let entry = acc.sections.entry(id).or_insert_with(|| state.clone());
                    entry.present |= state.present;
                }
                acc.goals |= signals.goals;
                acc.indicators |= signals.indicators;
                acc.baselines |= signals.baselines;
                acc.amounts |= signals.amounts;
                for (language, votes) in signals.language_votes {
                    *acc.language_votes.entry(language).or_default() += votes;
                }
                acc
            }
        });
    }
    evidence.sort_by(|a, b| a.code.cmp(&b.code));
    Some(merged?.into_evaluation(evidence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn score(e: &Evaluation, name: &str) -> f64 {
        e.scores
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
            .unwrap()
    }

    fn codes(e: &Evaluation, severity: Severity) -> Vec<&str> {
        e.findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| f.code.as_str())
            .collect()
    }

    #[test]
    fn scores_points_by_distinct_patterns() {
        // P01: two distinct patterns (10); P04: one (5); Q03 answered.
        let e = evaluate_text("Diagnóstico. La problemática de pobreza. Línea base 2023.");
        assert_eq!(score(&e, "decalogo"), 15.0);
        assert_eq!(score(&e, "questionnaire"), 2.0);
        assert_eq!(e.labels, ["language:es"]);
    }

    #[test]
    fn word_boundaries_and_prefixes() {
        // "metabolismo" is not "meta"; "agricultural" is "agricultur*".
        let e = evaluate_text("metabolismo agricultural");
        assert_eq!(score(&e, "questionnaire"), 2.0);
        let data = &e.data;
        assert_eq!(data["goals"], false);
    }

    #[test]
    fn evidence_spans_are_byte_offsets_of_the_match() {
        let text = "Intro: ñandú. DIAGNÓSTICO del municipio.";
        let e = evaluate_text(text);
        let finding = e
            .findings
            .iter()
            .find(|f| f.code == "evidence:P01")
            .unwrap();
        let span = finding.evidence.as_ref().unwrap();
        assert_eq!(&text[span.start as usize..span.end as usize], "DIAGNÓSTICO");
        assert!(span.snippet.contains("DIAGNÓSTICO del municipio"));
    }

    #[test]
    fn missing_sections_are_violations_and_weak_goals_warnings() {
        let e = evaluate_text("Our goals: more parks.");
        assert_eq!(
            codes(&e, Severity::Violation),
            [
                "missing-section:budget",
                "missing-section:diagnosis",
                "missing-section:monitoring",
                "missing-section:objectives"
            ]
        );
        assert_eq!(
            codes(&e, Severity::Warning),
            [
                "goals-without-indicators",
                "goals-without-baseline",
                "no-budget-figures"
            ]
        );
    }

    #[test]
    fn merging_chunks_equals_evaluating_the_whole() {
        let first = "Diagnosis of the current situation. Goals and targets.";
        let second = "Indicators with a baseline. Budget of USD 2 million. Monitoring.";
        let whole = evaluate_text(&format!("{first}\n\n{second}"));
        let merged = merge(vec![evaluate_text(first), evaluate_text(second)]).unwrap();
        assert_eq!(merged.scores, whole.scores);
        assert_eq!(
            codes(&merged, Severity::Violation),
            codes(&whole, Severity::Violation)
        );
        assert_eq!(
            codes(&merged, Severity::Warning),
            codes(&whole, Severity::Warning)
        );
    }

    #[test]
    fn config_replaces_the_rubric_and_rejects_unknown_fields() {
        let rubric = json!({
            "points": [{"id": "X1", "title": "Parks", "patterns": ["park", "parks"]}],
            "questions": [], "sections": [], "goals": [], "indicators": [],
            "baselines": [], "amounts": []
        });
        let doc = Document::new("d", "A park and more parks.");
        let e = Decalogo::evaluate(doc.clone(), json!({ "rubric": rubric })).unwrap();
        assert_eq!(e.scores[0], Score::new("decalogo", 10.0, 10.0));
        let err = Decalogo::evaluate(doc, json!({ "rubrik": {} })).unwrap_err();
        assert!(matches!(err, PluginError::InvalidConfig(m) if m.contains("rubrik")));
    }

    #[test]
    fn empty_documents_are_invalid() {
        let err = Decalogo::evaluate(Document::new("d", "  \n "), Value::Null).unwrap_err();
        assert!(matches!(err, PluginError::InvalidDocument(_)));
    }
}
