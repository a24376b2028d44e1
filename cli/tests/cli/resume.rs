//! Crash-safe local runs: a run killed or stopped is resumed by running it
//! again; a killed server's claims are released when it restarts; one
//! process owns a state directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{VARYING, docket_run, http, premium_key, serve, stdout, without_values};

/// `n` short text files in `dir`, each with its own words.
fn corpus(dir: &Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let words = ["agua", "plan", "meta", "salud", "vías", "presupuesto"];
        let text: Vec<&str> = (0..(i % 40 + 5))
            .map(|k| words[(i + k) % words.len()])
            .collect();
        std::fs::write(dir.join(format!("doc-{i:05}.txt")), text.join(" ")).unwrap();
    }
    dir.to_owned()
}

/// What the state directory's database says of its one job: its id,
/// whether its intake is open, its documents, and the outcomes recorded.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    job: String,
    intake_open: bool,
    documents: u64,
    outcomes: u64,
    claimed: u64,
}

fn seen(state: &Path) -> Option<Seen> {
    let db = state.join("docket.sqlite3");
    if !db.exists() {
        return None;
    }
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    connection.busy_timeout(Duration::from_secs(5)).ok()?;
    let (job, body): (String, String) = connection
        .query_row("SELECT id, body FROM jobs LIMIT 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .ok()?;
    let body: Value = serde_json::from_str(&body).ok()?;
    let count = |sql: &str| -> Option<u64> {
        connection
            .query_row(sql, [], |row| row.get::<_, i64>(0))
            .ok()
            .map(|n| n as u64)
    };
    Some(Seen {
        job,
        intake_open: body["counters"]["intake_open"] == true,
        documents: body["counters"]["documents_total"].as_u64().unwrap_or(0),
        outcomes: count("SELECT COUNT(*) FROM outcomes")?,
        claimed: count("SELECT COUNT(*) FROM messages WHERE claimed = 1")?,
    })
}

/// Polls `state` until `ready` holds, or panics when `child` exits first.
fn wait_for(state: &Path, child: &mut Child, ready: impl Fn(&Seen) -> bool) -> Seen {
    loop {
        if let Some(now) = seen(state).filter(|s| ready(s)) {
            return now;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("docket exited ({status}) before the point the test waits for");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Puts `evaluator`'s compiled code in `state`'s cache, as a run on
/// another state directory leaves it (no job in `state`).
fn compiled_in(state: &Path, evaluator: &str) {
    let warm = tempfile::tempdir().unwrap();
    let docs = corpus(&warm.path().join("corpus"), 1);
    let mut run = start_run(warm.path(), &docs, evaluator);
    assert!(run.wait().unwrap().success());
    std::fs::create_dir_all(state.join("cache")).unwrap();
    for artifact in std::fs::read_dir(warm.path().join("state/cache")).unwrap() {
        let artifact = artifact.unwrap().path();
        std::fs::copy(
            &artifact,
            state.join("cache").join(artifact.file_name().unwrap()),
        )
        .unwrap();
    }
}

/// `docket run` started in the background over `corpus`.
fn start_run(work: &Path, corpus: &Path, evaluator: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .current_dir(work)
        .env("DOCKET_STATE", work.join("state"))
        .args([
            "run",
            "--quiet",
            "--workers",
            "1",
            "--evaluator",
            evaluator,
            "--out",
        ])
        .arg(work.join("out"))
        .arg(corpus)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The numbers of `resumed job <id> (<k> of <n> documents already done;
/// <m> items recorded by this run)`, the first line of the summary.
fn resumed_line(output: &str, job: &str) -> (u64, u64, u64) {
    let line = output.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix(&format!("resumed job {job} ("))
        .unwrap_or_else(|| panic!("not a resumed line: {line:?}"));
    let numbers: Vec<u64> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        rest,
        format!(
            "{} of {} documents already done; {} items recorded by this run)",
            numbers[0], numbers[1], numbers[2]
        )
    );
    (numbers[0], numbers[1], numbers[2])
}

fn results_text(work: &Path) -> String {
    without_values(
        &std::fs::read_to_string(work.join("out/results.json")).unwrap(),
        &VARYING,
    )
}

/// `docket run` killed (SIGKILL) mid-processing, then run again: the same
/// job goes on, only the documents without an outcome are evaluated and
/// counted, and the results are those of a run never interrupted. Run a
/// third time, it evaluates nothing and writes the same results.
#[test]
fn a_killed_run_resumes_its_job_and_evaluates_only_the_rest() {
    const N: u64 = 3_000;
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), N as usize);
    let state = work.path().join("state");
    let mut child = start_run(work.path(), &docs, "decalogo");
    wait_for(&state, &mut child, |s| {
        !s.intake_open && s.outcomes >= N / 4
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = seen(&state).unwrap();
    assert!(
        killed.outcomes < N,
        "{killed:?}: the run ended before the kill"
    );

    let (output, results) = docket_run(work.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let (done, total, recorded) = resumed_line(&stdout(&output), &killed.job);
    let timed = stdout(&output)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(timed.ends_with(" items/s in this run"), "{timed}");
    assert_eq!(done, killed.outcomes, "one item per document");
    assert_eq!(total, N);
    assert_eq!(recorded, N - done, "only the rest evaluated and counted");
    assert_eq!(results["job_id"], killed.job.as_str());
    assert_eq!(results["summary"]["completed_documents"], N);
    let resumed = results_text(work.path());

    let whole = tempfile::tempdir().unwrap();
    let (output, _) = docket_run(whole.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(resumed, results_text(whole.path()));

    let (output, _) = docket_run(work.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output).lines().next().unwrap(),
        format!(
            "job {} had finished already: nothing evaluated again, its results written again (--fresh evaluates anew)",
            killed.job
        )
    );
    assert_eq!(resumed, results_text(work.path()));

    // --fresh: a new job over the same files.
    let (output, results) = docket_run(work.path(), &[docs.to_str().unwrap(), "--fresh"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).starts_with("job job_"),
        "{}",
        stdout(&output)
    );
    assert_ne!(results["job_id"], killed.job.as_str());
    assert_eq!(results["summary"]["completed_documents"], N);
}

/// A changed file makes another job: the run is not resumed over inputs
/// that are not the ones it was asked.
#[test]
fn a_changed_file_is_a_new_job_not_a_wrong_resume() {
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), 5);
    let (output, first) = docket_run(work.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    std::fs::write(docs.join("doc-00002.txt"), "agua potable para todos").unwrap();
    let (output, second) = docket_run(work.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).starts_with("job job_"),
        "{}",
        stdout(&output)
    );
    assert_ne!(first["job_id"], second["job_id"]);
    // Other options over the same files: another job too.
    let (output, third) = docket_run(
        work.path(),
        &[docs.to_str().unwrap(), "--tolerated-failure-percent", "50"],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).starts_with("job job_"),
        "{}",
        stdout(&output)
    );
    assert_ne!(third["job_id"], second["job_id"]);
    // The same request again: the same job.
    let (output, again) = docket_run(work.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(again["job_id"], second["job_id"]);
}

/// The first Ctrl-C while the batch is still being read in stops the run:
/// exit 130, the job left resumable with its intake open; the same command
/// again reads the rest in and finishes, every document counted once.
#[test]
fn ctrl_c_during_intake_leaves_the_job_resumable_and_the_rerun_finishes_it() {
    const N: u64 = 20_000;
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), N as usize);
    let state = work.path().join("state");
    let mut child = start_run(work.path(), &docs, "wordstats");
    let before = wait_for(&state, &mut child, |s| {
        s.intake_open && s.documents >= 1_000
    });
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stopped = seen(&state).unwrap();
    assert!(
        stopped.intake_open,
        "{stopped:?}: the intake closed before the signal"
    );
    assert!(
        stderr.contains(&format!(
            "docket: stopped; job {} is left to resume ({} of {} documents done so far, not all read in): run the same command again to go on, or add --fresh to start over",
            before.job, stopped.outcomes, stopped.documents
        )),
        "{stderr}"
    );
    assert_eq!(stopped.claimed, 0, "nothing left claimed: {stopped:?}");

    let (output, results) = docket_run(
        work.path(),
        &[docs.to_str().unwrap(), "--evaluator", "wordstats"],
    );
    assert!(output.status.success(), "{output:?}");
    let (done, total, recorded) = resumed_line(&stdout(&output), &before.job);
    assert_eq!((done, total), (stopped.outcomes, N));
    assert_eq!(recorded, N - done);
    assert_eq!(results["document_count"], N);
    assert_eq!(results["summary"]["completed_documents"], N);
    let ids: std::collections::HashSet<&str> = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, N);
}

/// `docket serve` killed (SIGKILL) while its processors hold claims, and
/// started again: it releases those claims at once (no visibility timeout
/// waited out), and the batches complete with every document counted once.
/// While it runs, no other process can own its state directory.
#[test]
fn a_restarted_server_releases_the_claims_of_the_killed_one_at_once() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let token = premium_key(&state);
    let server = serve(&state);
    let jobs = upload_three_batches(&server, &token);

    // A second owner is refused, with who holds the directory.
    let second = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["run", "--quiet", "--state"])
        .arg(&state)
        .arg(super::repo().join("examples/plans"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        format!(
            "docket: the state directory {} is in use by process {} (docket serve); stop that process, or give this one another state directory (--state)\n",
            state.display(),
            server.child.id()
        )
    );

    let mut server = server;
    let held = wait_for(&state, &mut server.child, |s| {
        s.claimed > 0 && s.outcomes > 0
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let claimed = seen(&state).unwrap().claimed;
    assert!(claimed > 0, "claims held at the kill: {held:?}");
    drop(server);

    let server = serve(&state);
    expect_completed(&server, &token, &jobs);
    let after = seen(&state).unwrap();
    assert_eq!(after.outcomes, 3_000, "every document counted once");
    drop(server);
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let released: Vec<u64> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "claims of a process that is gone released")
        .filter_map(|line| line["fields"]["released"].as_u64())
        .collect();
    assert_eq!(released, [claimed], "{log}");
}

/// `docket <args>` on the state directory `state`, no server.
fn on_state(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .env_remove("DOCKET_TOKEN")
        .args(args)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap()
}

/// The jobs a killed run left are visible without a server — listed, their
/// status — and the orphan can be cancelled: its intake closes with what it
/// had, the same command then finishes it as cancelled (its remaining
/// items skipped) and its partial results are there.
#[test]
fn an_orphaned_job_is_seen_and_cancelled_on_the_state_directory() {
    const N: u64 = 20_000;
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), N as usize);
    let state = work.path().join("state");
    // wordstats compiled already (as on a state directory used before), so
    // documents are evaluated while the intake still reads: compiled on
    // first use, the intake of the 20,000 files can finish first.
    compiled_in(&state, "wordstats");
    let mut child = start_run(work.path(), &docs, "wordstats");
    wait_for(&state, &mut child, |s| {
        s.intake_open && s.documents >= 1_000 && s.outcomes > 0
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let orphan = seen(&state).unwrap();
    assert!(orphan.intake_open, "{orphan:?}");

    let listed = on_state(&state, &["jobs"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed = stdout(&listed);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&orphan.job))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains(" processing "), "{line}");
    assert!(line.ends_with("wordstats@0.1.0"), "{line}");

    let status = on_state(&state, &["status", &orphan.job]);
    assert!(status.status.success(), "{status:?}");
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["job_id"], orphan.job.as_str());
    assert_eq!(report["status"], "processing");

    let early = on_state(&state, &["results", &orphan.job]);
    assert_eq!(early.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&early.stderr),
        format!(
            "docket: job {} is processing, not finished; a `docket run` of the same inputs (or `docket serve`) on this state directory goes on with it\n",
            orphan.job
        )
    );
    let unknown = on_state(&state, &["status", "job_nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr),
        "docket: no job job_nope of tenant local in this state directory\n"
    );

    let cancelled = on_state(&state, &["cancel", &orphan.job]);
    assert!(cancelled.status.success(), "{cancelled:?}");
    let cancelled: Value = serde_json::from_slice(&cancelled.stdout).unwrap();
    assert_eq!(
        cancelled,
        serde_json::json!({"job_id": orphan.job, "status": "cancelled"})
    );
    let cancelled = seen(&state).unwrap();
    assert_eq!(cancelled.documents, orphan.documents, "{cancelled:?}");

    let (output, results) = docket_run(
        work.path(),
        &[docs.to_str().unwrap(), "--evaluator", "wordstats"],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).starts_with(&format!("resumed job {} (", orphan.job)),
        "{}",
        stdout(&output)
    );
    assert_eq!(results["status"], "cancelled");
    let total = results["document_count"].as_u64().unwrap();
    assert_eq!(
        total, orphan.documents,
        "the documents read in before the kill"
    );
    assert_eq!(
        seen(&state).unwrap().outcomes,
        total,
        "each item recorded once"
    );
    assert!(total < N);

    let csv = on_state(&state, &["results", &orphan.job, "--format", "csv"]);
    assert!(csv.status.success(), "{csv:?}");
    let csv = stdout(&csv);
    assert!(csv.starts_with("id,title,status,"), "{csv}");
    assert_eq!(csv.lines().count() as u64, total + 1);
    // Queried on the state directory as over the API.
    let mut by_status = 0;
    for status in ["completed", "skipped", "failed"] {
        let lines = on_state(
            &state,
            &[
                "results",
                &orphan.job,
                "--format",
                "jsonl",
                "--status",
                status,
            ],
        );
        assert!(lines.status.success(), "{lines:?}");
        for line in stdout(&lines).lines() {
            let document: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(document["status"], status, "{line}");
            by_status += 1;
        }
    }
    assert_eq!(by_status, total, "every document in one state");
    let refused = on_state(&state, &["results", &orphan.job, "--severity", "fatal"]);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "docket: --severity: \"fatal\" is not one of info, warning, violation\n"
    );
    let again = on_state(&state, &["cancel", &orphan.job]);
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!(
            "docket: job {} is cancelled and cannot be cancelled\n",
            orphan.job
        )
    );
}

/// `docket gc` removes finished jobs older than its cutoff — rows,
/// outcomes, stored text and results — and prints what it freed; a job
/// running beside it is not touched and completes. A run started with a
/// short `--retention` removes what expired before it starts.
#[test]
fn gc_removes_finished_jobs_and_leaves_a_running_one_alone() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let small = corpus(&work.path().join("small"), 5);
    let (output, finished) = docket_run(work.path(), &[small.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let old = finished["job_id"].as_str().unwrap().to_owned();
    let blobs = state.join("blobs");
    assert!(blobs.join("results").join(&old).is_dir());

    let big = corpus(&work.path().join("big"), 3_000);
    let mut child = start_run(work.path(), &big, "decalogo");
    // The big job has recorded outcomes (the small one had 5).
    let running = wait_for(&state, &mut child, |s| s.outcomes > 5);
    let gc = on_state(&state, &["gc", "--older-than", "0s"]);
    assert!(gc.status.success(), "{gc:?}");
    let printed = stdout(&gc);
    assert!(
        printed.starts_with("removed 1 finished jobs (5 outcomes) and "),
        "{printed}"
    );
    assert!(
        printed.ends_with(&format!(" from {}\n", state.display())),
        "{printed}"
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let results: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("out/results.json")).unwrap())
            .unwrap();
    assert_eq!(
        results["summary"]["completed_documents"], 3_000,
        "{running:?}"
    );
    let live = results["job_id"].as_str().unwrap().to_owned();
    assert_ne!(live, old);

    let gone = on_state(&state, &["status", &old]);
    assert_eq!(gone.status.code(), Some(2), "{gone:?}");
    for prefix in ["documents", "results"] {
        assert!(
            !blobs.join(prefix).join(&old).exists(),
            "{prefix}/{old} left"
        );
    }
    let status = on_state(&state, &["status", &live]);
    assert!(status.status.success(), "{status:?}");

    // Retention at the start of a run: the finished job goes before the
    // new run's own job is made.
    let (output, _) = docket_run(work.path(), &[small.to_str().unwrap(), "--retention", "0s"]);
    assert!(output.status.success(), "{output:?}");
    let listed = stdout(&on_state(&state, &["jobs"]));
    assert!(!listed.contains(&live), "{listed}");
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("job_")).count(),
        1,
        "{listed}"
    );
    let bad = on_state(&state, &["gc", "--older-than", "30"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("invalid value '30' for '--older-than <OLDER_THAN>': \"30\": give a unit: s, m, h or d (as in 30d)"),
        "{bad:?}"
    );
}

/// An output directory that cannot be made is a clear error after the job
/// finished; the job is kept, and the same run with a usable `--out`
/// writes its results without evaluating anything again.
#[test]
fn an_unusable_out_directory_fails_clearly_and_the_rerun_writes_the_results() {
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), 5);
    let blocked = work.path().join("a-file");
    std::fs::write(&blocked, "not a directory").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_docket"))
        .env("DOCKET_STATE", work.path().join("state"))
        .args(["run", "--quiet", "--out"])
        .arg(blocked.join("out"))
        .arg(&docs)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "docket: creating {}: Not a directory (os error 20)\n",
            blocked.join("out").display()
        )
    );
    let (output, results) = docket_run(work.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("had finished already: nothing evaluated again"),
        "{}",
        stdout(&output)
    );
    assert_eq!(results["summary"]["completed_documents"], 5);
}

/// A state directory that cannot be made (a file in its place) is refused
/// before anything starts, naming it.
#[test]
fn a_state_directory_that_cannot_be_made_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), 2);
    let blocked = work.path().join("a-file");
    std::fs::write(&blocked, "not a directory").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args(["run", "--quiet", "--state"])
        .arg(&blocked)
        .arg(&docs)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "docket: the state directory {} cannot be used: File exists (os error 17)\n",
            blocked.display()
        )
    );
}

/// `--fresh` after a killed run makes a new job and cancels the one left
/// unfinished, so its queued items are skipped rather than evaluated.
#[test]
fn a_fresh_run_cancels_the_job_a_killed_run_left() {
    const N: u64 = 3_000;
    let work = tempfile::tempdir().unwrap();
    let docs = corpus(&work.path().join("corpus"), N as usize);
    let state = work.path().join("state");
    let mut child = start_run(work.path(), &docs, "decalogo");
    wait_for(&state, &mut child, |s| !s.intake_open && s.outcomes > 0);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = seen(&state).unwrap();
    assert!(killed.outcomes < N, "{killed:?}");

    let (output, results) = docket_run(work.path(), &[docs.to_str().unwrap(), "--fresh"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!(
            "docket: cancelled job {}, left unfinished by an earlier run of the same inputs\n",
            killed.job
        )),
        "{output:?}"
    );
    assert_ne!(results["job_id"], killed.job.as_str());
    assert_eq!(results["summary"]["completed_documents"], N);
    let status = on_state(&state, &["status", &killed.job]);
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["status"], "cancelled", "{report}");
}

/// File-size limits under which a run of the test's 3,000 documents meets
/// a full disk: at its first window (a pack is 1 MiB), while reading in,
/// and while processing (the finished state holds a 14 MB database). The
/// test checks that each limit is met while reading in or processing, as it
/// says.
const FULL_DISK_LIMITS_KIB: [(u64, &str); 3] = [
    (512, "reading in"),
    (1536, "reading in"),
    (8192, "processing"),
];

/// `docket run` over `corpus` under a file-size limit of `limit_kib`
/// KiB (`ulimit -f`): past it a write fails as on a full disk.
fn run_limited(work: &Path, corpus: &Path, limit_kib: u64) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -f "$1" && exec "$0" "${@:2}""#)
        .arg(env!("CARGO_BIN_EXE_docket"))
        .arg(limit_kib.to_string())
        .args(["run", "--quiet", "--workers", "1", "--out"])
        .arg(work.join("out"))
        .arg(corpus)
        .current_dir(work)
        .env("DOCKET_STATE", work.join("state"))
        .output()
        .unwrap()
}

/// A full disk — a file-size limit that the state directory's writes
/// cross, met while reading in, while processing or while finalizing —
/// stops `docket run` with a clear error and its job left open, never
/// failed; the same run with room resumes it, and its results are those
/// of a run that never met the limit.
#[test]
fn a_full_disk_stops_the_run_resumable_and_the_rerun_with_room_completes_it() {
    const N: u64 = 3_000;
    let whole = tempfile::tempdir().unwrap();
    let docs = corpus(&whole.path().join("corpus"), N as usize);
    let (output, _) = docket_run(whole.path(), &[docs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let expected = results_text(whole.path());

    for (limit_kib, phase) in FULL_DISK_LIMITS_KIB {
        let work = tempfile::tempdir().unwrap();
        let state = work.path().join("state");
        let output = run_limited(work.path(), &docs, limit_kib);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{limit_kib} KiB: {output:?}");
        let left = seen(&state).unwrap_or_else(|| panic!("{limit_kib} KiB: no job: {stderr}"));
        let message = stderr.lines().last().unwrap_or_default();
        let prefix = format!(
            "docket: the state directory {} has no room left (",
            state.display()
        );
        assert!(message.starts_with(&prefix), "{limit_kib} KiB: {stderr}");
        let (_, told) = message
            .split_once("); job ")
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(
            told.starts_with(&format!("{} is left to resume (", left.job))
                && told.ends_with(": make room and run the same command again"),
            "{limit_kib} KiB: {stderr}"
        );
        assert!(
            left.outcomes < N,
            "{limit_kib} KiB: the run met no limit: {left:?}"
        );
        let met = if left.intake_open {
            "reading in"
        } else {
            "processing"
        };
        assert_eq!(met, phase, "{limit_kib} KiB: {left:?}");
        // Claims are released where a write still works; when the limit is
        // the write-ahead log's, none does, and the next run releases them.
        assert!(
            left.claimed == 0 || stderr.contains("claims not released; the next run releases them"),
            "{limit_kib} KiB: claims neither released nor said to be left: {left:?} {stderr}"
        );
        let status = on_state(&state, &["status", &left.job]);
        let report: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_ne!(report["status"], "failed", "{limit_kib} KiB: {report}");

        let (output, results) = docket_run(work.path(), &[docs.to_str().unwrap()]);
        assert!(output.status.success(), "{limit_kib} KiB: {output:?}");
        let (done, total, recorded) = resumed_line(&stdout(&output), &left.job);
        assert_eq!(total, N);
        assert_eq!(
            recorded,
            N - done,
            "{limit_kib} KiB: only the rest evaluated"
        );
        assert_eq!(results["summary"]["completed_documents"], N);
        assert_eq!(results_text(work.path()), expected, "{limit_kib} KiB");
        assert_eq!(seen(&state).unwrap().claimed, 0, "{limit_kib} KiB");
    }
}

/// SIGTERM to `docket serve` while its processors hold claims: it stops
/// taking work, answers what is in flight, releases its claims and exits
/// 0 (no claim left for a visibility timeout, none released as a dead
/// process's at the next start); started again, it completes the batch
/// with every document counted once. A second signal ends a server that
/// is still answering a request at once, with 130.
#[test]
fn sigterm_stops_the_server_gracefully_and_a_second_signal_at_once() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let token = premium_key(&state);
    let mut server = serve(&state);
    let jobs = upload_three_batches(&server, &token);
    wait_for(&state, &mut server.child, |s| {
        s.claimed > 0 && s.outcomes > 0
    });
    let signal = |child: &Child, name: &str| {
        let sent = Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    signal(&server.child, "-TERM");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    let stopped = seen(&state).unwrap();
    assert_eq!(stopped.claimed, 0, "claims released: {stopped:?}");
    assert!(stopped.outcomes < 3_000, "stopped midway: {stopped:?}");
    drop(server);

    let mut server = serve(&state);
    expect_completed(&server, &token, &jobs);
    assert_eq!(seen(&state).unwrap().outcomes, 3_000, "each counted once");
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let messages: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|line| line["fields"]["message"].clone())
        .collect();
    assert!(
        messages.contains(&Value::from("processors stopped, claims released")),
        "{log}"
    );
    assert!(
        !messages.contains(&Value::from("claims of a process that is gone released")),
        "nothing was left claimed for the next start: {log}"
    );

    // Two signals: the first waits for a request still being read (its
    // body half sent); the second ends the server at once.
    let mut slow = std::net::TcpStream::connect(&server.addr).unwrap();
    std::io::Write::write_all(
        &mut slow,
        format!("POST /api/v1/batch/upload HTTP/1.1\r\nHost: docket\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"documents\": [").as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&server.child, "-TERM");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the first signal waits for the request in flight"
    );
    signal(&server.child, "-INT");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    drop(slow);
}

/// Three batches of 1,000 short documents uploaded to `server`; their jobs.
fn upload_three_batches(server: &super::Server, token: &str) -> Vec<String> {
    (0..3)
        .map(|batch| {
            let documents: Vec<Value> = (0..1_000)
                .map(|n| {
                    serde_json::json!({"id": format!("b{batch}-{n}"), "content": format!("plan de agua potable {n} con metas y presupuesto")})
                })
                .collect();
            let (status, accepted) = http(
                &server.addr,
                token,
                "POST",
                "/api/v1/batch/upload",
                Some(&serde_json::json!({ "documents": documents })),
            );
            assert_eq!(status, 202, "{accepted}");
            accepted["job_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Waits (up to a minute) for each of `jobs` of 1,000 documents to be
/// completed with all of them.
fn expect_completed(server: &super::Server, token: &str, jobs: &[String]) {
    for job in jobs {
        let mut last = Value::Null;
        for _ in 0..1_200 {
            let (code, body) = http(
                &server.addr,
                token,
                "GET",
                &format!("/api/v1/batch/status/{job}"),
                None,
            );
            assert_eq!(code, 200, "{body}");
            last = body;
            if last["status"] == "completed" {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(last["status"], "completed", "{last}");
        assert_eq!(last["progress"]["completed_documents"], 1_000, "{last}");
    }
}
