//! The default rubric: ten points, thirty questions, five required sections
//! and the signals behind the warnings, with Spanish and English patterns.
//!
//! Pattern rules: matching ignores ASCII case (and all-caps variants of
//! accented words are added); a pattern must start on a word boundary when
//! it starts with a letter or digit, and end on one when it ends with a
//! letter or digit — unless it ends with `*`, which makes it a prefix
//! (`campesin*` matches `campesinos`).

use serde::Deserialize;

use crate::rubric_data as data;

/// One rubric point or questionnaire question.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Criterion {
    /// Stable id, e.g. `P03` or `Q17`.
    pub id: String,
    /// What it checks.
    pub title: String,
    /// Any of these counts as evidence.
    pub patterns: Vec<String>,
}

/// The whole rubric. Replace it with `{"rubric": {...}}` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    /// Ten points of 10 each: 10 with two or more distinct patterns found,
    /// 5 with one, 0 with none.
    pub points: Vec<Criterion>,
    /// Questions of 2 points each: answered when any pattern is found.
    pub questions: Vec<Criterion>,
    /// Sections a plan must have: each one missing is a violation.
    pub sections: Vec<Criterion>,
    /// Words that state goals or targets.
    pub goals: Vec<String>,
    /// Words that name indicators.
    pub indicators: Vec<String>,
    /// Words that name baselines.
    pub baselines: Vec<String>,
    /// Money amounts and currencies (budget figures).
    pub amounts: Vec<String>,
}

impl Rubric {
    /// Lowercases every pattern (keeping byte lengths), as matching expects.
    pub fn lowercase_patterns(&mut self) {
        let lower = |patterns: &mut Vec<String>| {
            for pattern in patterns.iter_mut() {
                *pattern = docket_sdk::text::lowercase_same_offsets(pattern);
            }
        };
        for criterion in self
            .points
            .iter_mut()
            .chain(&mut self.questions)
            .chain(&mut self.sections)
        {
            lower(&mut criterion.patterns);
        }
        for words in [
            &mut self.goals,
            &mut self.indicators,
            &mut self.baselines,
            &mut self.amounts,
        ] {
            lower(words);
        }
    }
}

fn owned(patterns: &[&str]) -> Vec<String> {
    patterns.iter().map(|p| (*p).to_owned()).collect()
}

fn criteria(rows: &[data::CriterionData]) -> Vec<Criterion> {
    rows.iter()
        .map(|(id, title, patterns)| Criterion {
            id: (*id).to_owned(),
            title: (*title).to_owned(),
            patterns: owned(patterns),
        })
        .collect()
}

impl Default for Rubric {
    fn default() -> Self {
        Rubric {
            points: criteria(data::POINTS),
            questions: criteria(data::QUESTIONS),
            sections: criteria(data::SECTIONS),
            goals: owned(data::GOALS),
            indicators: owned(data::INDICATORS),
            baselines: owned(data::BASELINES),
            amounts: owned(data::AMOUNTS),
        }
    }
}
