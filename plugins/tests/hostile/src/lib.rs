//! `hostile`: a test evaluator that misbehaves on request, so the host's
//! limits can be shown to hold. A document whose content starts with one of
//! these commands triggers it; any other document gets a normal evaluation
//! (score `ok` 1 of 1).
//!
//! - `hostile:loop` — spins forever (stopped by fuel).
//! - `hostile:alloc` — grows memory without end (stopped by the memory cap).
//! - `hostile:panic` — panics with a message.
//! - `hostile:trap` — executes `unreachable` in a helper (a bare trap).
//! - `hostile:huge` — returns 8 MiB of labels (refused by the output cap).
//! - `hostile:invalid` — reports the document invalid (a plugin error).
//! - `hostile:ambient` — tries the filesystem, environment, clocks and
//!   randomness and reports what it saw.

use docket_sdk::{Document, Evaluation, Evaluator, PluginError, Score};
use serde_json::{Value, json};

/// The evaluator.
pub struct Hostile;

impl Evaluator for Hostile {
    fn evaluate(document: Document, _config: Value) -> Result<Evaluation, PluginError> {
        let command = document.content.split_whitespace().next().unwrap_or("");
        match command {
            "hostile:loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "hostile:alloc" => {
                // Reserve without filling, so the memory cap (not fuel) stops it.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = Vec::with_capacity(1 << 20);
                    block.push(1u8);
                    hoard.push(std::hint::black_box(block));
                }
            }
            "hostile:panic" => panic!("the hostile plugin panicked on purpose"),
            "hostile:trap" => trap_in_a_helper(),
            "hostile:huge" => Ok(Evaluation {
                labels: vec!["x".repeat(1 << 10); 8 << 10],
                ..ok()
            }),
            "hostile:invalid" => Err(PluginError::InvalidDocument(
                "this document is invalid on purpose".into(),
            )),
            "hostile:ambient" => Ok(Evaluation {
                data: ambient(),
                ..ok()
            }),
            _ => Ok(ok()),
        }
    }
}

docket_sdk::export_evaluator!(Hostile);

/// A trap with no panic message: what the host can say is where it was.
#[inline(never)]
fn trap_in_a_helper() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn ok() -> Evaluation {
    Evaluation {
        scores: vec![Score::new("ok", 1.0, 1.0)],
        ..Evaluation::default()
    }
}

/// What the ambient world looks like from inside.
fn ambient() -> Value {
    let file = std::fs::read_to_string("/etc/hostname")
        .map(|_| "read".to_owned())
        .unwrap_or_else(|e| e.to_string());
    let dir = std::fs::read_dir(".")
        .map(|_| "listed".to_owned())
        .unwrap_or_else(|e| e.to_string());
    let network = std::net::TcpStream::connect("127.0.0.1:80")
        .map(|_| "connected".to_owned())
        .unwrap_or_else(|e| e.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    let mut random = std::collections::hash_map::RandomState::new();
    let _ = &mut random;
    json!({
        "file": file,
        "dir": dir,
        "network": network,
        "env": std::env::vars().count(),
        "args": std::env::args().count(),
        "unix_seconds": now,
    })
}
