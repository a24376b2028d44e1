//! The fault soak of `docket serve`: batches uploaded (each twice, as a
//! client does whose answer was lost) while the server is killed
//! (SIGKILL) and started again on the same state directory, with
//! transient evaluation failures injected: at the end no document lost,
//! none counted twice, every job finalized once and called back.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, premium_key, serve_with, try_http_with};

/// No failures injected.
const CALM: &str = "0%x0";

/// When the soak kills the server.
#[derive(Debug, Clone)]
enum Kills {
    /// Once each of these shares of the documents has an outcome.
    AtShares(Vec<f64>),
    /// Every this long, until every job is called back.
    Every(Duration),
}

/// What a soak does.
#[derive(Debug, Clone)]
struct Plan {
    batches: usize,
    per_batch: usize,
    /// Each document's text is about this long.
    document_bytes: usize,
    kills: Kills,
    /// `DOCKET_INJECT_TRANSIENT`.
    faults: &'static str,
    evaluator: &'static str,
    /// The soak gives up past this.
    within: Duration,
}

/// What a soak saw.
#[derive(Debug)]
struct Figures {
    /// The largest peak RSS of one server process.
    peak_mib: u64,
    documents: u64,
    seconds: f64,
    kills: usize,
    completed: u64,
    failed: u64,
    injected_retries: usize,
    claims_released: u64,
    webhook_deliveries: usize,
    duplicate_webhooks: usize,
}

/// Webhook deliveries received on loopback: (webhook-id, body).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                // A delivery cut short by a kill (its head or body not
                // whole) is not one: only whole requests are kept.
                let (mut id, mut length, mut whole_head) = (String::new(), 0usize, false);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        whole_head = true;
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        match name.to_ascii_lowercase().as_str() {
                            "webhook-id" => id = value.trim().to_owned(),
                            "content-length" => length = value.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; length];
                if !whole_head || reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                kept.lock().unwrap().push((id, body));
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { url, got }
    }
}

/// A free loopback port below the ephemeral range (32768 and up on
/// Linux): the server is started on the same one each time, so clients
/// find it again after a restart, and while it is down no client socket
/// (this soak's retries included) can be handed it as its own port.
fn free_port() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..10_000u16)
        .map(|n| 20_000 + (start - 20_000 + n) % 10_000)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port between 20000 and 29999")
}

/// Counts read from the state directory's database (the server may be
/// down): outcomes in all, and jobs finished.
fn progress(state: &Path) -> (u64, u64) {
    let Ok(connection) = rusqlite::Connection::open_with_flags(
        state.join("docket.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return (0, 0);
    };
    let _ = connection.busy_timeout(Duration::from_secs(5));
    let count = |sql: &str| {
        connection
            .query_row(sql, [], |row| row.get::<_, i64>(0))
            .map_or(0, |n| n as u64)
    };
    (
        count("SELECT COUNT(*) FROM outcomes"),
        count("SELECT COUNT(*) FROM jobs WHERE json_extract(body, '$.finished_at') IS NOT NULL"),
    )
}

/// The server under soak: started again after each kill on the same port.
struct Soaked {
    state: PathBuf,
    port: u16,
    plan: Plan,
    server: Mutex<Option<Server>>,
    /// The largest peak RSS of a server process so far, KiB.
    peak_kib: std::sync::atomic::AtomicU64,
}

impl Soaked {
    fn start(&self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let server = serve_with(
            &self.state,
            &[
                "--addr",
                &addr,
                "--workers",
                "2",
                "--webhook-allow",
                "loopback",
                "--webhook-backoff-ms",
                "200",
                "--evaluator",
                self.plan.evaluator,
            ],
            &[("DOCKET_INJECT_TRANSIENT", self.plan.faults)],
        );
        *self.server.lock().unwrap() = Some(server);
    }

    /// Notes the running server's peak RSS (`VmHWM`).
    fn note_peak(&self, server: &Server) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()));
        let kib = status.ok().and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        });
        if let Some(kib) = kib {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
    }

    /// SIGKILL, then started again (a start that fails — its port not
    /// free again yet — is tried again, for up to 10 s).
    fn kill_and_restart(&self) {
        if let Some(mut server) = self.server.lock().unwrap().take() {
            self.note_peak(&server);
            server.child.kill().unwrap();
            server.child.wait().unwrap();
        }
        for attempt in 0.. {
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start()));
            if started.is_ok() || attempt == 100 {
                started.unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Uploads `body` under `key` until the server answers 202 (it may be
/// down, killed mid-request or refusing for the key's rate); returns the
/// job id.
fn upload(soaked: &Soaked, token: &str, key: &str, body: &Value, deadline: Instant) -> String {
    loop {
        assert!(Instant::now() < deadline, "upload {key} never accepted");
        let answer = try_http_with(
            &soaked.addr(),
            token,
            "POST",
            "/api/v1/batch/upload",
            Some(body),
            &format!("Idempotency-Key: {key}\r\n"),
        );
        match answer {
            Ok((202, _, accepted)) => return accepted["job_id"].as_str().unwrap().to_owned(),
            // Down mid-request, or the key's upload rate reached.
            Ok((status, _, answer)) if status >= 500 || status == 429 => {
                eprintln!("upload {key}: {status} {answer}; retried");
            }
            Ok((status, _, answer)) => panic!("upload {key}: {status} {answer}"),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A GET of the API, retried until the server answers.
fn get(soaked: &Soaked, token: &str, path: &str, deadline: Instant) -> Value {
    loop {
        assert!(Instant::now() < deadline, "GET {path} never answered");
        if let Ok((200, _, body)) = try_http_with(&soaked.addr(), token, "GET", path, None, "") {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `plan` and checks what the soak promises; returns its figures.
fn soak(plan: Plan) -> Figures {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let token = premium_key(&state);
    let receiver = Receiver::start();
    let soaked = Arc::new(Soaked {
        state: state.clone(),
        port: free_port(),
        plan: plan.clone(),
        server: Mutex::new(None),
        peak_kib: std::sync::atomic::AtomicU64::new(0),
    });
    soaked.start();
    let started = Instant::now();
    let deadline = started + plan.within;
    let total = (plan.batches * plan.per_batch) as u64;

    // The killer: SIGKILL at the plan's points, the server started again
    // at once, until every job is finished and called back.
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let soaked = Arc::clone(&soaked);
        let done = Arc::clone(&done);
        let kills = plan.kills.clone();
        std::thread::spawn(move || {
            let mut made = 0;
            let mut last = Instant::now();
            let mut shares = match &kills {
                Kills::AtShares(shares) => shares.clone().into_iter(),
                Kills::Every(_) => Vec::new().into_iter(),
            };
            let mut next_share = shares.next();
            while !done.load(Ordering::Relaxed) {
                let due = match (&kills, next_share) {
                    (Kills::Every(every), _) => last.elapsed() >= *every,
                    (Kills::AtShares(_), Some(share)) => {
                        progress(&soaked.state).0 as f64 >= share * total as f64
                    }
                    (Kills::AtShares(_), None) => false,
                };
                if due {
                    soaked.kill_and_restart();
                    made += 1;
                    last = Instant::now();
                    next_share = shares.next();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            made
        })
    };

    // Every batch uploaded twice under its key: one job each.
    let mut jobs = BTreeMap::new();
    for batch in 0..plan.batches {
        let documents: Vec<Value> = (0..plan.per_batch)
            .map(|n| {
                let line = format!(
                    "plan de agua potable {n} con metas, indicadores y presupuesto del lote {batch}. "
                );
                let content = line.repeat(plan.document_bytes.div_ceil(line.len()));
                serde_json::json!({"id": format!("b{batch:03}-d{n:05}"), "content": content})
            })
            .collect();
        let body = serde_json::json!({
            "documents": documents,
            "options": {"webhook_url": receiver.url},
        });
        let key = format!("soak-{batch}");
        let job = upload(&soaked, &token, &key, &body, deadline);
        let again = upload(&soaked, &token, &key, &body, deadline);
        assert_eq!(job, again, "the same key is the same job");
        jobs.insert(job, batch);
    }

    // Until every job is finished and called back.
    loop {
        let called: BTreeSet<String> = receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        let finished = progress(&state).1;
        if finished == jobs.len() as u64
            && jobs.keys().all(|j| called.contains(&format!("msg_{j}")))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{finished} of {} jobs finished, {} called back after {:?}",
            jobs.len(),
            called.len(),
            plan.within
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();

    // Every document counted once, in its own job, no job more.
    let (outcomes, finished) = progress(&state);
    assert_eq!(outcomes, total, "one outcome per document");
    assert_eq!(finished, jobs.len() as u64, "no job but the uploaded ones");
    let (mut completed, mut failed) = (0, 0);
    for (job, batch) in &jobs {
        let status = get(
            &soaked,
            &token,
            &format!("/api/v1/batch/status/{job}"),
            deadline,
        );
        assert_eq!(status["status"], "completed", "{status}");
        let progress = &status["progress"];
        let done = progress["completed_documents"].as_u64().unwrap();
        let failures = progress["failed_documents"].as_u64().unwrap();
        assert_eq!(done + failures, plan.per_batch as u64, "{status}");
        completed += done;
        failed += failures;
        let lines = get(
            &soaked,
            &token,
            &format!("/api/v1/batch/results/{job}?format=jsonl"),
            deadline,
        );
        let lines = lines.as_str().unwrap_or_default().to_owned();
        let mut ids = Vec::new();
        for line in lines.lines().filter(|l| !l.is_empty()) {
            let document: Value = serde_json::from_str(line).unwrap();
            if document["status"] == "failed" {
                assert_eq!(
                    document["error"]["category"], "TRANSIENT",
                    "only injected failures: {document}"
                );
            }
            ids.push(document["id"].as_str().unwrap().to_owned());
        }
        let expected: Vec<String> = (0..plan.per_batch)
            .map(|n| format!("b{batch:03}-d{n:05}"))
            .collect();
        assert_eq!(ids, expected, "each document once, in order");
    }

    // Finalized once; called back with the final counts (a delivery
    // again only when a kill fell between answer and record: the same
    // message, which receivers drop by its id).
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap_or("").to_owned();
    for job in jobs.keys() {
        let finalized = lines
            .iter()
            .filter(|l| message(l) == "job finalized" && l["fields"]["job_id"] == job.as_str())
            .count();
        assert!(finalized <= 1, "job {job} finalized {finalized} times");
    }
    let injected_retries = lines
        .iter()
        .filter(|l| {
            message(l) == "retrying work item"
                && l["fields"]["failure"]
                    .as_str()
                    .is_some_and(|f| f.contains("injected transient failure"))
        })
        .count();
    let claims_released = lines
        .iter()
        .filter(|l| message(l) == "claims of a process that is gone released")
        .filter_map(|l| l["fields"]["released"].as_u64())
        .sum();
    let got = receiver.got.lock().unwrap().clone();
    for (id, body) in &got {
        let job = id.strip_prefix("msg_").unwrap();
        assert!(jobs.contains_key(job), "a callback of an unknown job {id}");
        assert_eq!(body["job_id"], job);
        assert_eq!(body["status"], "completed", "{body}");
        assert_eq!(
            body["completed_documents"].as_u64().unwrap()
                + body["failed_documents"].as_u64().unwrap(),
            plan.per_batch as u64,
            "{body}"
        );
    }
    let distinct: BTreeSet<&String> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), jobs.len(), "one callback message per job");
    if plan.faults != CALM {
        assert!(injected_retries > 0, "no injected failure was retried");
    }
    if let Some(server) = soaked.server.lock().unwrap().as_ref() {
        soaked.note_peak(server);
    }
    let peak_mib = soaked.peak_kib.load(Ordering::Relaxed) / 1024;
    drop(soaked);
    Figures {
        peak_mib,
        documents: total,
        seconds,
        kills,
        completed,
        failed,
        injected_retries,
        claims_released,
        webhook_deliveries: got.len(),
        duplicate_webhooks: got.len() - distinct.len(),
    }
}

fn print(figures: &Figures) {
    println!(
        "| documents | seconds | docs/s | server peak RSS MiB | SIGKILLs | completed | failed | injected retries | claims released at restart | callbacks (again) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {} | {} ({}) |",
        figures.documents,
        figures.seconds,
        figures.documents as f64 / figures.seconds,
        figures.peak_mib,
        figures.kills,
        figures.completed,
        figures.failed,
        figures.injected_retries,
        figures.claims_released,
        figures.webhook_deliveries,
        figures.duplicate_webhooks
    );
}

/// The soak at CI size: 5,000 documents in 10 batches, three kills while
/// they are processed, 10 % of documents failing twice first.
#[test]
fn a_server_killed_three_times_loses_nothing_and_counts_nothing_twice() {
    let figures = soak(Plan {
        batches: 10,
        per_batch: 500,
        document_bytes: 80,
        kills: Kills::AtShares(vec![0.2, 0.45, 0.7]),
        faults: "10%x2",
        evaluator: "wordstats",
        within: Duration::from_secs(600),
    });
    print(&figures);
    assert_eq!(figures.kills, 3, "{figures:?}");
}

/// The full soak (figures in docs/benchmarks.md): 100,000 documents of
/// 5 KB in 100 batches, the server killed every 5 s. With
/// `DOCKET_SOAK_CALM=1` the same batches with no kill and no fault, to
/// compare.
#[test]
#[ignore = "a soak: minutes; run with --ignored"]
fn soak_100k_documents_with_a_kill_every_5_seconds() {
    let calm = std::env::var("DOCKET_SOAK_CALM").is_ok_and(|v| v == "1");
    let figures = soak(Plan {
        batches: 100,
        per_batch: 1_000,
        document_bytes: 5_000,
        kills: if calm {
            Kills::AtShares(Vec::new())
        } else {
            Kills::Every(Duration::from_secs(5))
        },
        faults: if calm { CALM } else { "10%x2" },
        evaluator: "decalogo",
        within: Duration::from_secs(3_600),
    });
    print(&figures);
    assert!(calm || figures.kills > 0, "{figures:?}");
}
