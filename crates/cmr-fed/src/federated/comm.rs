//! Records of rounds and communication accounting: what each client sent and received (bytes, as they crossed the
//! transport), what it reported and why a client did not count. [`CommLog`] is `RUN_DIR/comm.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Why a client's update did not count in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The client or the transport reported an error (the client dropped out, its training failed, …).
    Error,
    /// The reply came later than the round timeout.
    Timeout,
    /// The reply arrived but is not an admissible update (corrupt bytes, wrong tensors, NaN/Inf, …).
    Rejected,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Error => "error",
            FailureKind::Timeout => "timeout",
            FailureKind::Rejected => "rejected",
        })
    }
}

/// A client whose update did not count in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The client.
    pub client: String,
    /// What went wrong.
    pub kind: FailureKind,
    /// The error or the reason for rejection.
    pub detail: String,
}

/// One client in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRound {
    /// The client.
    pub client: String,
    /// Bytes the server sent it (the global message).
    pub bytes_down: u64,
    /// Bytes it sent back (0 when no reply came; counted also for a reply that was then rejected or late).
    pub bytes_up: u64,
    /// Training examples it reported. `None`: no decodable update.
    pub examples: Option<usize>,
    /// Mean training loss it reported. `None`: no decodable update, or a loss that is not finite.
    pub loss: Option<f64>,
}

/// One round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The round, from 1.
    pub round: usize,
    /// Why the previous global model was kept. `None`: the round produced a new global model (or, without
    /// federation, every client trained on its own).
    pub kept: Option<String>,
    /// Every client the round addressed, in transport order.
    pub clients: Vec<ClientRound>,
    /// The clients that did not count, in transport order.
    pub failures: Vec<Failure>,
}

impl RoundRecord {
    /// Bytes sent to all clients in this round.
    pub fn bytes_down(&self) -> u64 {
        self.clients.iter().map(|c| c.bytes_down).sum()
    }

    /// Bytes received from all clients in this round.
    pub fn bytes_up(&self) -> u64 {
        self.clients.iter().map(|c| c.bytes_up).sum()
    }

    /// Mean reported loss over the clients that reported a finite one, weighted by their examples.
    pub fn mean_loss(&self) -> Option<f64> {
        let pairs: Vec<(f64, f64)> = self.clients.iter().filter_map(|c| Some((c.loss?, c.examples? as f64))).collect();
        let total: f64 = pairs.iter().map(|p| p.1).sum();
        (total > 0.0).then(|| pairs.iter().map(|(l, n)| l * n).sum::<f64>() / total)
    }
}

/// Bytes one client sent and received over a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Bytes received from the server.
    pub bytes_down: u64,
    /// Bytes sent to the server.
    pub bytes_up: u64,
}

/// The communication record of a run (`comm.json`): every round, totals per client and overall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommLog {
    /// Strategy name.
    pub strategy: String,
    /// Every round in order.
    pub rounds: Vec<RoundRecord>,
    /// Totals per client.
    pub clients: BTreeMap<String, Traffic>,
    /// Total bytes sent by the server.
    pub bytes_down: u64,
    /// Total bytes received by the server.
    pub bytes_up: u64,
}

impl CommLog {
    /// The log of `rounds` of a `strategy` run.
    pub fn new(strategy: &str, rounds: &[RoundRecord]) -> Self {
        let mut clients: BTreeMap<String, Traffic> = BTreeMap::new();
        for c in rounds.iter().flat_map(|r| &r.clients) {
            let t = clients.entry(c.client.clone()).or_default();
            t.bytes_down += c.bytes_down;
            t.bytes_up += c.bytes_up;
        }
        Self {
            strategy: strategy.to_owned(),
            bytes_down: rounds.iter().map(RoundRecord::bytes_down).sum(),
            bytes_up: rounds.iter().map(RoundRecord::bytes_up).sum(),
            rounds: rounds.to_vec(),
            clients,
        }
    }

    /// Writes the log as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(cmr_core::atomic::write_json(path, self)?)
    }

    /// One line for people, e.g. `dual-lora: 3 rounds, 4 clients, 61.2 KiB down, 48.0 KiB up (16.0 KiB up per
    /// round), 1 failure`.
    pub fn summary(&self) -> String {
        let rounds = self.rounds.len();
        let failures: usize = self.rounds.iter().map(|r| r.failures.len()).sum();
        let per_round = if rounds == 0 { 0 } else { self.bytes_up / rounds as u64 };
        format!(
            "{}: {rounds} round(s), {} client(s), {} down, {} up ({} up per round), {failures} failure(s)",
            self.strategy,
            self.clients.len(),
            human_bytes(self.bytes_down),
            human_bytes(self.bytes_up),
            human_bytes(per_round)
        )
    }
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
