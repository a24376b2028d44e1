//! Writes the default rubric's pattern index as static data
//! (`$OUT_DIR/default_index.rs`), so evaluating with the default rubric
//! builds nothing per document.

use std::fmt::Write as _;

#[path = "src/rubric_data.rs"]
#[allow(dead_code)]
mod rubric_data;

#[path = "../../sdk/src/text.rs"]
#[allow(dead_code)]
mod docket_sdk_text;

#[path = "src/index.rs"]
mod index;

use index::Target;

fn main() {
    println!("cargo:rerun-if-changed=src/rubric_data.rs");
    println!("cargo:rerun-if-changed=src/index.rs");
    println!("cargo:rerun-if-changed=../../sdk/src/text.rs");
    let mut lowered: Vec<(Target, String)> = Vec::new();
    type Criteria = (&'static [rubric_data::CriterionData], fn(usize) -> Target);
    let lists: [Criteria; 3] = [
        (rubric_data::POINTS, Target::Point),
        (rubric_data::QUESTIONS, Target::Question),
        (rubric_data::SECTIONS, Target::Section),
    ];
    for (criteria, target) in lists {
        for (i, (_, _, patterns)) in criteria.iter().enumerate() {
            for pattern in *patterns {
                lowered.push((target(i), docket_sdk_text::lowercase_same_offsets(pattern)));
            }
        }
    }
    for (words, target) in [
        (rubric_data::GOALS, Target::Goal),
        (rubric_data::INDICATORS, Target::Indicator),
        (rubric_data::BASELINES, Target::Baseline),
        (rubric_data::AMOUNTS, Target::Amount),
    ] {
        for word in words {
            lowered.push((target, docket_sdk_text::lowercase_same_offsets(word)));
        }
    }
    let (entries, prefixes) = index::build(lowered.iter().map(|(t, p)| (*t, p.as_str())));
    let mut out = String::new();
    for (name, list) in [
        ("DEFAULT_ENTRIES", &entries),
        ("DEFAULT_PREFIXES", &prefixes),
    ] {
        writeln!(out, "pub(crate) static {name}: &[Entry<'static>] = &[").expect("format");
        for e in list.iter() {
            writeln!(
                out,
                "    Entry {{ first: {:?}, rest: Cow::Borrowed(&{:?}), prefix: {}, text: {:?}, target: Target::{:?} }},",
                e.first,
                e.rest.as_ref(),
                e.prefix,
                e.text,
                e.target
            )
            .expect("format");
        }
        writeln!(out, "];").expect("format");
    }
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("set by cargo"))
        .join("default_index.rs");
    std::fs::write(path, out).expect("write default_index.rs");
}
