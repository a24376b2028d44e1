//! `docket submit` past its inline limit: the files themselves go through
//! upload slots to a real `docket serve`, and the batch names them by key.

use serde_json::Value;

use super::{client, premium_key, repo, serve, text};

#[test]
fn docket_submit_puts_files_through_upload_slots_past_its_inline_limit() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let token = premium_key(&state);
    let server = serve(&state);
    let inputs = work.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let plans = repo().join("examples/plans");
    let mut sent = 0;
    for entry in std::fs::read_dir(&plans).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, inputs.join(path.file_name().unwrap())).unwrap();
        sent += 1;
    }
    std::fs::write(inputs.join("broken.pdf"), b"%PDF-1.4 not really").unwrap();
    sent += 1;

    let input = inputs.to_str().unwrap();
    let submitted = client(
        &server,
        &token,
        &[
            "submit",
            input,
            "--evaluator",
            "wordstats",
            "--inline-mib",
            "0",
            "--wait",
        ],
    );
    let stderr = text(&submitted.stderr);
    assert!(submitted.status.success(), "{submitted:?}");
    assert!(
        stderr.contains(&format!("put {sent} files through upload slots")),
        "{stderr}"
    );
    let job = text(&submitted.stdout).lines().next().unwrap().to_owned();
    let results = client(&server, &token, &["results", &job]);
    assert!(results.status.success(), "{results:?}");
    let results: Value = serde_json::from_slice(&results.stdout).unwrap();
    assert_eq!(results["document_count"], sent, "{results}");
    assert_eq!(
        results["summary"]["completed_documents"],
        sent - 1,
        "{results}"
    );
    let broken = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "broken.pdf")
        .unwrap();
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["error"]["category"], "DATA");
    // The PDF's text was extracted by a processor from the file put.
    let pdf = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "northfield-regional-plan.pdf")
        .unwrap();
    assert_eq!(pdf["status"], "completed", "{pdf}");
    // 30 pages: two chunks of 25 pages at most, each chunk's data kept.
    let words: u64 = pdf["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|chunk| chunk["words"].as_u64().unwrap())
        .sum();
    assert!(words > 300, "{pdf}");

    // Under the limit, the same inputs go inline, as before.
    let inline = client(
        &server,
        &token,
        &["submit", input, "--evaluator", "wordstats"],
    );
    assert!(inline.status.success(), "{inline:?}");
    assert!(!text(&inline.stderr).contains("upload slots"), "{inline:?}");
}
