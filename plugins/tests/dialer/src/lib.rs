//! A test evaluator that tries to open a network connection: its component
//! imports `wasi:sockets`, which docket refuses to publish.

use docket_sdk::{Document, Evaluation, Evaluator, PluginError};
use serde_json::{Value, json};

/// The evaluator.
pub struct Dialer;

impl Evaluator for Dialer {
    fn evaluate(_document: Document, _config: Value) -> Result<Evaluation, PluginError> {
        let connected = std::net::TcpStream::connect("127.0.0.1:9").is_ok();
        Ok(Evaluation {
            data: json!({ "connected": connected }),
            ..Evaluation::default()
        })
    }
}

docket_sdk::export_evaluator!(Dialer);
