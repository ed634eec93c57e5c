//! Federated fine-tuning, model-agnostic: everything here works on named tensors, so the same runtime trains the
//! ViT classifier and the toy model of the tests.
//!
//! - [`strategy`] — the seven strategies and the pure rules of each: what trains, what crosses the boundary;
//! - [`aggregate`] — admissible updates and weighted FedAvg (McMahan et al. 2017, arXiv 1602.05629);
//! - [`message`] — messages as deterministic safetensors bytes; [`moments`] — Adam moments on the wire;
//! - [`client`] — the [`SiteTrainer`] a site implements and the [`ClientRuntime`] that answers the server;
//! - [`transport`] — bytes between server and clients ([`InProcess`] for one process);
//! - [`server`] — rounds, quorum, timeouts, rejection of bad updates, checkpoints and resume;
//! - [`comm`] — round records and communication accounting (`comm.json`).
//!
//! A run, in short:
//!
//! ```text
//! let strategy = StrategyConfig::new("dual-lora".parse()?);
//! let runtimes = sites.map(|(id, trainer)| ClientRuntime::new(id, trainer, strategy.clone(), seed)?.with_checkpoints(run));
//! let initial = strategy.shared(&first_trainer_state);
//! let mut server = Server::new(strategy, ServerConfig { rounds, checkpoint_dir: Some(run), .. }, initial)?;
//! let mut transport = InProcess::new(runtimes)?;
//! server.run(&mut transport, &mut |record| println!("round {} done", record.round))?;
//! server.comm_log().write(&run.join("comm.json"))?;
//! ```

pub mod aggregate;
pub mod checkpoint;
pub mod client;
pub mod comm;
pub mod message;
pub mod moments;
pub mod server;
pub mod strategy;
pub mod transport;

pub use aggregate::{check_update, Aggregation, ClientUpdate};
pub use client::{round_seed, ClientRuntime, FitReport, SiteTrainer};
pub use comm::{ClientRound, CommLog, Failure, FailureKind, RoundRecord, Traffic};
pub use message::{Message, MessageKind, NamedTensors};
pub use moments::Moments;
pub use server::{Server, ServerConfig};
pub use strategy::{Strategy, StrategyConfig, UpdateSpec};
pub use transport::{InProcess, Transport};
