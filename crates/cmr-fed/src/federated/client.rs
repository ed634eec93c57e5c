//! The client side: [`SiteTrainer`], what a site's model and optimizer offer the runtime, and [`ClientRuntime`],
//! which turns a global message into an update message. The runtime sees only named tensors; it never knows the
//! model. It loads only what the strategy shares, sends only what the strategy shares, derives the round's seed from
//! the run's root seed, and checkpoints the site's private state after every round.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::checkpoint::RoundStore;
use super::message::{Message, MessageKind, NamedTensors};
use super::moments::Moments;
use super::strategy::StrategyConfig;
use crate::error::{FedError, Result};

/// What one round of local training did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitReport {
    /// Mean training loss over the round.
    pub loss: f64,
    /// Examples processed in the round (all local epochs together).
    pub examples: usize,
}

/// A site's trainer: its model variables, its optimizer and its data. Implemented by the classifier trainer (and
/// by the toy model of the tests); the federated runtime uses nothing else.
pub trait SiteTrainer {
    /// Every variable of the model by name — trainable or frozen, shared or private.
    fn state(&self) -> Result<NamedTensors>;

    /// Assigns each of `tensors` (a subset of [`SiteTrainer::state`]'s names) to the variable of that name,
    /// converting to the variable's device and dtype. An unknown name or another shape is an error naming it.
    fn load(&mut self, tensors: &NamedTensors) -> Result<()>;

    /// Trains for one round (the configured local epochs). All randomness (shuffling, augmentation, dropout) must
    /// come from `seed`, so a resumed run repeats an uninterrupted one.
    fn fit(&mut self, round: usize, seed: u64) -> Result<FitReport>;

    /// Training examples of the site: its weight `n_k` in FedAvg.
    fn train_size(&self) -> usize;

    /// Writes everything needed to continue after a kill into the (existing, empty) folder `dir`: private
    /// variables (all variables is simplest: shared ones are overwritten by the next global), optimizer state,
    /// any other state that changes across rounds.
    fn save_private(&self, dir: &Path) -> Result<()>;

    /// Restores what [`SiteTrainer::save_private`] wrote.
    fn load_private(&mut self, dir: &Path) -> Result<()>;

    /// The Adam moments of `names`, for [`StrategyConfig::average_moments`]; a variable not yet updated has zero
    /// moments. Default: unsupported (an error).
    fn moments(&self, names: &[String]) -> Result<Moments> {
        let _ = names;
        Err(moments_unsupported())
    }

    /// Replaces the Adam moments of the variables in `moments` by the given ones. Default: unsupported.
    fn load_moments(&mut self, moments: &Moments) -> Result<()> {
        let _ = moments;
        Err(moments_unsupported())
    }
}

fn moments_unsupported() -> FedError {
    FedError::option("average-moments", "this trainer cannot export or import its optimizer moments")
}

/// The seed of `client`'s local training in `round`, derived from the run's root seed.
pub fn round_seed(root_seed: u64, client: &str, round: usize) -> u64 {
    cmr_core::seed::derive(root_seed, &["fed", client, &round.to_string()])
}

/// One site: its trainer, the strategy's rules and its private checkpoints.
pub struct ClientRuntime {
    id: String,
    trainer: Box<dyn SiteTrainer>,
    strategy: StrategyConfig,
    root_seed: u64,
    store: Option<RoundStore>,
    /// Whether the private state was already restored from (or checked against) the checkpoints.
    restored: bool,
}

impl std::fmt::Debug for ClientRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRuntime").field("id", &self.id).field("strategy", &self.strategy.strategy).finish()
    }
}

impl ClientRuntime {
    /// A client named `id` (letters, digits, `.`, `_`, `-`: it names a folder) training with `trainer`.
    ///
    /// # Errors
    /// [`FedError::Option`] for an empty or unsafe id.
    pub fn new(id: &str, trainer: Box<dyn SiteTrainer>, strategy: StrategyConfig, root_seed: u64) -> Result<Self> {
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.starts_with('.') || !id.chars().all(safe) {
            return Err(FedError::option(
                "client",
                format!("client id {id:?} must be non-empty letters, digits, '.', '_' or '-', not starting with '.'"),
            ));
        }
        Ok(Self { id: id.to_owned(), trainer, strategy, root_seed, store: None, restored: false })
    }

    /// Checkpoints the private state after each round under `run_dir/clients/{id}/round-NNNN/`, and, when the first
    /// message of this runtime is for a round r > 1, restores the newest saved round before r first (resume).
    pub fn with_checkpoints(mut self, run_dir: &Path) -> Self {
        self.store = Some(RoundStore::new(Self::private_dir(run_dir, &self.id)));
        self
    }

    /// Where a client's private checkpoints live under a run folder.
    pub fn private_dir(run_dir: &Path, id: &str) -> PathBuf {
        run_dir.join("clients").join(id)
    }

    /// The client's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The trainer (e.g. to evaluate it after the run).
    pub fn trainer(&self) -> &dyn SiteTrainer {
        self.trainer.as_ref()
    }

    /// Answers a global message with an update message: decode, load the shared tensors (and moments), train,
    /// select what the strategy shares, encode.
    ///
    /// # Errors
    /// [`FedError::Message`] when `request` is not a global message for this client or holds a tensor the strategy
    /// does not share; any error of the trainer.
    pub fn handle(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        // 1. decode and check the envelope
        let message = Message::decode(request, &Device::Cpu)?;
        let name = message.label();
        if message.kind != MessageKind::Global || message.client != self.id || message.round == 0 {
            return Err(FedError::message(name, format!("expected a global message of a round ≥ 1 for {}", self.id)));
        }
        let (params, moments) = Moments::split(&message.tensors);
        // A server must not overwrite what stays on the site (e.g. `lora_local`).
        if let Some(private) = params.keys().find(|n| !self.strategy.shares(n)) {
            return Err(FedError::message(
                name,
                format!("holds {private}, which {} keeps local", self.strategy.strategy),
            ));
        }
        // 2. private state of an interrupted run, then the global tensors on top
        self.restore_before(message.round)?;
        self.trainer.load(&params)?;
        if !moments.is_empty() {
            self.trainer.load_moments(&moments)?;
        }
        // 3. train
        let report = self.fit_round(message.round)?;
        // 4. send only what the strategy shares
        let mut shared = self.strategy.shared(&self.trainer.state()?);
        if self.strategy.average_moments {
            let names: Vec<String> = shared.keys().cloned().collect();
            shared.extend(self.trainer.moments(&names)?.to_wire());
        }
        Message::update(message.round, &self.id, self.trainer.train_size(), report.loss, shared).encode()
    }

    /// Trains round `round` without any exchange (`local`, `central`), restoring and checkpointing as
    /// [`ClientRuntime::handle`] does.
    pub fn train_alone(&mut self, round: usize) -> Result<FitReport> {
        self.restore_before(round)?;
        self.fit_round(round)
    }

    /// On this runtime's first round r, loads the newest private checkpoint before r, if any.
    fn restore_before(&mut self, round: usize) -> Result<()> {
        if std::mem::replace(&mut self.restored, true) {
            return Ok(());
        }
        if let Some((saved, dir)) =
            self.store.as_ref().map(|s| s.latest(round.saturating_sub(1))).transpose()?.flatten()
        {
            tracing::debug!(client = %self.id, round = saved, "restoring private state");
            self.trainer.load_private(&dir)?;
        }
        Ok(())
    }

    /// Fits with the round's derived seed and checkpoints the private state.
    fn fit_round(&mut self, round: usize) -> Result<FitReport> {
        let report = self.trainer.fit(round, round_seed(self.root_seed, &self.id, round))?;
        tracing::debug!(client = %self.id, round, loss = report.loss, examples = report.examples, "fitted");
        if let Some(store) = &self.store {
            let trainer = &self.trainer;
            store.save(round, |dir| trainer.save_private(dir))?;
        }
        Ok(report)
    }
}
