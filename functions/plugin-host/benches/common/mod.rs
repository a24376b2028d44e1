//! What the benchmarks share: documents cut from the sample corpus.

/// A document of about `bytes` bytes cut from the sample plans.
pub fn document(bytes: usize) -> String {
    let plans = [
        include_str!("../../../../examples/plans/plan-municipal-la-esperanza.md"),
        include_str!("../../../../examples/plans/riverside-county-development-plan.md"),
    ];
    let mut text = String::new();
    while text.len() < bytes {
        for plan in plans {
            text.push_str(plan);
            text.push_str("\n\n");
        }
    }
    let mut cut = bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}
