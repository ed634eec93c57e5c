//! The server's rounds (McMahan et al. 2017, arXiv 1602.05629, Algorithm 1, with every client selected):
//!
//! ```text
//! for round r = 1..R:
//!     for each client k (transport order):  send global (bytes) → receive update (bytes) or a failure
//!         late reply → timeout; undecodable, mis-named, mis-shaped or non-finite update → rejected
//!     global ← weighted mean of the valid updates, or kept when fewer than min_clients are valid
//!     checkpoint (global, records)
//! ```
//!
//! Without federation (`local`, `central`) the same loop trains every client alone and nothing is exchanged. A
//! server given a checkpoint folder resumes from the newest round saved there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::aggregate::{check_update, Aggregation, ClientUpdate};
use super::checkpoint::RoundStore;
use super::client::ClientRuntime;
use super::comm::{ClientRound, CommLog, Failure, FailureKind, RoundRecord};
use super::message::{Message, MessageKind, NamedTensors};
use super::moments::Moments;
use super::strategy::{StrategyConfig, UpdateSpec};
use super::transport::Transport;
use crate::error::{FedError, Result};

/// Format tag of the server's saved state.
const STATE_FORMAT: &str = "cmr-fed.server.v1";
/// File of the global tensors in a round folder (its state is the JSON sidecar).
const GLOBAL_FILE: &str = "global.safetensors";

/// How the server runs rounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerConfig {
    /// Rounds to run in total (a resumed run continues up to this round).
    pub rounds: usize,
    /// Longest a client may take to answer; a later reply counts as a timeout. `None` (default): no limit.
    pub round_timeout: Option<Duration>,
    /// Run folder: the server saves each round under `server/`, clients their private state under `clients/`.
    /// `None` (default): no checkpoints, no resume.
    pub checkpoint_dir: Option<PathBuf>,
}

/// What the server saves after each round, beside the global tensors.
#[derive(Debug, Serialize, Deserialize)]
struct ServerState {
    format: String,
    strategy: String,
    records: Vec<RoundRecord>,
}

/// The federated server: the global model, the round records and the checkpoints.
#[derive(Debug)]
pub struct Server {
    strategy: StrategyConfig,
    config: ServerConfig,
    global: NamedTensors,
    records: Vec<RoundRecord>,
    store: Option<RoundStore>,
}

impl Server {
    /// A server starting from `initial_global` (for a federating strategy, [`StrategyConfig::shared`] of a
    /// client's initial state; empty otherwise), or from the newest round in `config.checkpoint_dir`.
    ///
    /// # Errors
    /// [`FedError::Option`] for invalid strategy options or an initial tensor the strategy does not share; errors
    /// reading a checkpoint, or one saved by another strategy.
    pub fn new(strategy: StrategyConfig, config: ServerConfig, initial_global: NamedTensors) -> Result<Self> {
        strategy.validate()?;
        let (params, _) = Moments::split(&initial_global);
        if let Some(name) = params.keys().find(|n| !strategy.shares(n)) {
            return Err(FedError::option(
                "initial-global",
                format!("tensor {name} is not shared by {}; build it with StrategyConfig::shared", strategy.strategy),
            ));
        }
        let store = config.checkpoint_dir.as_ref().map(|dir| RoundStore::new(dir.join("server")));
        let mut server = Self { strategy, config, global: initial_global, records: Vec::new(), store };
        server.resume()?;
        Ok(server)
    }

    /// Rounds completed (including those restored from a checkpoint).
    pub fn completed_rounds(&self) -> usize {
        self.records.len()
    }

    /// The current global tensors.
    pub fn global(&self) -> &NamedTensors {
        &self.global
    }

    /// The records of the completed rounds.
    pub fn records(&self) -> &[RoundRecord] {
        &self.records
    }

    /// The communication log of the completed rounds (`comm.json`).
    pub fn comm_log(&self) -> CommLog {
        CommLog::new(self.strategy.strategy.name(), &self.records)
    }

    /// Runs the remaining rounds of a federating strategy over `transport`, calling `on_round` with each finished
    /// round's record (progress).
    ///
    /// # Errors
    /// [`FedError::Option`] when the strategy does not federate; encoding, aggregation or checkpoint errors.
    /// Client failures are not errors: they are recorded.
    pub fn run(&mut self, transport: &mut dyn Transport, on_round: &mut dyn FnMut(&RoundRecord)) -> Result<()> {
        if !self.strategy.strategy.federates() {
            return Err(FedError::option(
                "strategy",
                format!("{} exchanges nothing; use Server::run_isolated", self.strategy.strategy),
            ));
        }
        while self.completed_rounds() < self.config.rounds {
            let round = self.completed_rounds() + 1;
            let record = self.federated_round(round, transport)?;
            self.finish_round(record)?;
            on_round(self.records.last().expect("just pushed"));
        }
        Ok(())
    }

    /// Runs the remaining rounds of `local` or `central`: every client trains alone, nothing crosses; `on_round` as
    /// in [`Server::run`].
    ///
    /// # Errors
    /// [`FedError::Option`] when the strategy federates; checkpoint errors.
    pub fn run_isolated(
        &mut self,
        clients: &mut [ClientRuntime],
        on_round: &mut dyn FnMut(&RoundRecord),
    ) -> Result<()> {
        if self.strategy.strategy.federates() {
            return Err(FedError::option(
                "strategy",
                format!("{} federates; use Server::run with a transport", self.strategy.strategy),
            ));
        }
        while self.completed_rounds() < self.config.rounds {
            let round = self.completed_rounds() + 1;
            let mut record = RoundRecord { round, kept: None, clients: Vec::new(), failures: Vec::new() };
            for client in clients.iter_mut() {
                let mut entry = ClientRound {
                    client: client.id().to_owned(),
                    bytes_down: 0,
                    bytes_up: 0,
                    examples: None,
                    loss: None,
                };
                match client.train_alone(round) {
                    Ok(report) => {
                        entry.examples = Some(client.trainer().train_size());
                        entry.loss = Some(report.loss).filter(|l| l.is_finite());
                    }
                    Err(e) => record.failures.push(failure(client.id(), FailureKind::Error, e.to_string())),
                }
                record.clients.push(entry);
            }
            self.finish_round(record)?;
            on_round(self.records.last().expect("just pushed"));
        }
        Ok(())
    }

    /// One exchange with every client, then aggregation.
    fn federated_round(&mut self, round: usize, transport: &mut dyn Transport) -> Result<RoundRecord> {
        let spec = self.strategy.update_spec(&self.global);
        let mut record = RoundRecord { round, kept: None, clients: Vec::new(), failures: Vec::new() };
        let mut updates = Vec::new();
        for client in transport.clients() {
            let request = Message::global(round, &client, self.global.clone()).encode()?;
            let started = Instant::now();
            let reply = transport.exchange(&client, &request, self.config.round_timeout);
            let elapsed = started.elapsed();
            let mut entry = ClientRound {
                client: client.clone(),
                bytes_down: request.len() as u64,
                bytes_up: 0,
                examples: None,
                loss: None,
            };
            let outcome = match reply {
                Err(e) => Err((FailureKind::Error, e.to_string())),
                Ok(bytes) => {
                    entry.bytes_up = bytes.len() as u64;
                    match self.config.round_timeout.filter(|limit| elapsed > *limit) {
                        Some(limit) => Err((
                            FailureKind::Timeout,
                            format!("replied after {:.3} s, limit {:.3} s", elapsed.as_secs_f64(), limit.as_secs_f64()),
                        )),
                        None => admit(round, &client, &bytes, &spec, &mut entry),
                    }
                }
            };
            match outcome {
                Ok(update) => updates.push(update),
                Err((kind, detail)) => {
                    tracing::warn!(client = %client, round, %kind, %detail, "update not counted");
                    record.failures.push(failure(&client, kind, detail));
                }
            }
            record.clients.push(entry);
        }
        match self.strategy.aggregate(&updates, &record.failures)? {
            Aggregation::Updated(global) => self.global = global,
            Aggregation::Kept(reason) => {
                tracing::warn!(round, %reason, "keeping the previous global model");
                record.kept = Some(reason);
            }
        }
        Ok(record)
    }

    /// Appends the record and checkpoints the round.
    fn finish_round(&mut self, record: RoundRecord) -> Result<()> {
        tracing::debug!(round = record.round, loss = ?record.mean_loss(), failures = record.failures.len(), "round done");
        self.records.push(record);
        let Some(store) = &self.store else { return Ok(()) };
        let state = ServerState {
            format: STATE_FORMAT.into(),
            strategy: self.strategy.strategy.name().into(),
            records: self.records.clone(),
        };
        store.save(self.records.len(), |dir| {
            cmr_nn::checkpoint::save(&dir.join(GLOBAL_FILE), &self.global, &state)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Loads the newest saved round, if any.
    fn resume(&mut self) -> Result<()> {
        let Some((round, dir)) = self.store.as_ref().map(|s| s.latest(usize::MAX)).transpose()?.flatten() else {
            return Ok(());
        };
        let ckpt = cmr_nn::checkpoint::Checkpoint::load(&dir.join(GLOBAL_FILE), &Device::Cpu)?;
        let state: ServerState = ckpt.config()?;
        let bad = |message: String| FedError::input(&dir, message);
        if state.format != STATE_FORMAT {
            return Err(bad(format!("format {:?}, expected {STATE_FORMAT:?}", state.format)));
        }
        if state.strategy != self.strategy.strategy.name() {
            return Err(bad(format!(
                "saved by strategy {}, not {}; use another run folder",
                state.strategy, self.strategy.strategy
            )));
        }
        if state.records.len() != round {
            return Err(bad(format!("holds {} round records for round {round}", state.records.len())));
        }
        tracing::info!(round, "resuming the server");
        self.global = ckpt.tensors().clone();
        self.records = state.records;
        Ok(())
    }
}

fn failure(client: &str, kind: FailureKind, detail: String) -> Failure {
    Failure { client: client.to_owned(), kind, detail }
}

/// Decodes and checks one reply; fills what the client reported into `entry`.
fn admit(
    round: usize,
    client: &str,
    bytes: &[u8],
    spec: &UpdateSpec,
    entry: &mut ClientRound,
) -> std::result::Result<ClientUpdate, (FailureKind, String)> {
    let reject = |detail: String| (FailureKind::Rejected, detail);
    let message = Message::decode(bytes, &Device::Cpu).map_err(|e| reject(e.to_string()))?;
    let MessageKind::Update { examples, loss } = message.kind else {
        return Err(reject(format!("{} is not an update", message.label())));
    };
    entry.examples = Some(examples);
    entry.loss = Some(loss).filter(|l| l.is_finite());
    if message.round != round || message.client != client {
        return Err(reject(format!("{} answers a request for round {round} to {client}", message.label())));
    }
    if examples == 0 {
        return Err(reject("reports 0 training examples".into()));
    }
    match check_update(spec, &message.tensors) {
        Ok(None) => Ok(ClientUpdate { client: client.to_owned(), examples, tensors: message.tensors }),
        Ok(Some(reason)) => Err(reject(reason)),
        Err(e) => Err(reject(e.to_string())),
    }
}
