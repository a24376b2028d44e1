//! Writes the sample corpus's multi-page PDF,
//! `examples/plans/northfield-regional-plan.pdf` (30 pages: with the default
//! 25 pages per work item it is split into two chunks).
//!
//! ```text
//! cargo run --release -p docket-cli --example make_sample_pdf -- examples/plans/northfield-regional-plan.pdf
//! ```

fn page(n: usize) -> String {
    let body = match n {
        1 => {
            "Northfield Regional Development Plan 2026-2029\n\nA four-year plan for the 9 municipalities of the Northfield region."
        }
        2 => {
            "1. Diagnosis\n\nThe current situation: Northfield has a population of 412,000.\nPoverty affects 17% of households; unemployment is 9.1%."
        }
        3 => {
            "Rural roads are in poor condition and 30% of rural homes lack drinking water.\nThe region's disaster risk is high along the Wye river."
        }
        5 => "2. Vision\n\nBy 2040 Northfield will be a connected and fair region.",
        6 => {
            "3. Strategic objectives\n\nEducation, health, housing and employment for youth and older adults."
        }
        12 => {
            "4. Targets\n\nEach target has an indicator and a baseline measured in 2025.\nReduce unemployment from 9.1% to 6.5%."
        }
        18 => "Environmental protection and climate change adaptation are cross-cutting.",
        27 => {
            "5. Budget\n\nThe four-year budget is USD 1,240 million, from own revenue and state transfers."
        }
        29 => {
            "6. Monitoring and evaluation\n\nA public monitoring dashboard will report every indicator each quarter."
        }
        _ => "",
    };
    let filler =
        "The regional development office coordinates this chapter with the municipalities.";
    format!("Page {n}\n{body}\n\n{filler}")
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/plans/northfield-regional-plan.pdf".into());
    let pages: Vec<String> = (1..=30).map(page).collect();
    let bytes = docket_cli::pdf::write_text_pdf(&pages).expect("encode PDF");
    std::fs::write(&out, bytes).expect("write PDF");
    println!("wrote {out} ({} pages)", pages.len());
}
