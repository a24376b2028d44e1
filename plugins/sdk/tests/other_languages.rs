//! The Python and JavaScript SDKs' copies of `is_word_char`: a table of
//! range starts and ends generated here, checked to be current (run with
//! `DOCKET_BLESS=1` to rewrite them after a Unicode update).

use docket_sdk::text::is_word_char;

fn ranges() -> Vec<u32> {
    let mut bounds = Vec::new();
    let mut inside = false;
    for cp in 0..=0x10FFFFu32 {
        let word = char::from_u32(cp).is_some_and(is_word_char);
        if word != inside {
            bounds.push(cp);
            inside = word;
        }
    }
    if inside {
        bounds.push(0x110000);
    }
    bounds
}

fn table(bounds: &[u32], open: &str, close: &str) -> String {
    let mut out = String::from(open);
    for (n, bound) in bounds.iter().enumerate() {
        if n % 8 == 0 {
            out.push_str("\n    ");
        } else {
            out.push(' ');
        }
        out.push_str(&format!("0x{bound:X},"));
    }
    out.push('\n');
    out.push_str(close);
    out.push('\n');
    out
}

fn check(path: &str, open: &str, close: &str) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).expect("SDK source");
    let (head, rest) = text
        .split_once("# BEGIN WORD RANGES\n")
        .or_else(|| text.split_once("// BEGIN WORD RANGES\n"))
        .expect("begin marker");
    let (_, tail) = rest.split_once("END WORD RANGES").expect("end marker");
    let marker = if path.ends_with(".py") { "# " } else { "// " };
    let wanted = format!(
        "{head}{marker}BEGIN WORD RANGES\n{}{marker}END WORD RANGES{tail}",
        table(&ranges(), open, close)
    );
    if std::env::var_os("DOCKET_BLESS").is_some() {
        std::fs::write(&file, wanted).expect("write");
    } else {
        assert!(
            text == wanted,
            "{path} is out of date: run the SDK tests with DOCKET_BLESS=1"
        );
    }
}

#[test]
fn python_and_javascript_tables_match_rust() {
    check("../sdk-python/docket.py", "_WORD_RANGES = [", "]");
    check("../sdk-js/docket.js", "const WORD_RANGES = [", "];");
}
