//! Federated fine-tuning strategies and what each lets cross the client boundary. A strategy decides by variable
//! name alone ([`ParamRole`]), so it works for any model whose adapters follow `cmr_nn::lora`'s naming.
//!
//! | strategy      | a client trains                | a client sends (head: if [`StrategyConfig::share_head`]) |
//! |---------------|--------------------------------|-----------------------------------------------------------|
//! | `local`       | base + head, its own data only | nothing                                                   |
//! | `central`     | base + head, pooled data       | nothing                                                   |
//! | `fedavg`      | base + head                    | base (+ head)                                             |
//! | `fedavg-lora` | `lora_global.{a,b}` + head     | `lora_global.{a,b}` (+ head)                              |
//! | `ffa-lora`    | `lora_global.b` + head         | `lora_global.b` (+ head); A frozen at its seeded init     |
//! | `fedsa-lora`  | `lora_global.{a,b}` + head     | `lora_global.a` (+ head); B stays local                   |
//! | `dual-lora`   | `lora_{global,local}.{a,b}` + head | `lora_global.{a,b}` (+ head); `lora_local` never leaves |
//!
//! References: FedAvg, McMahan et al. 2017 (arXiv 1602.05629); FFA-LoRA, Sun et al. 2024 (arXiv 2403.12313);
//! FedSA-LoRA, Guo et al. 2024 (arXiv 2410.01463); Med-DualLoRA (arXiv 2603.10967); Adam moments averaged with the
//! weights, Linardos et al. 2022 (arXiv 2107.03901).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use candle_core::DType;
use cmr_nn::lora::{Adapter, Factor, LoraScheme, ParamRole};

use super::message::NamedTensors;
use super::moments::Moments;
use crate::error::{FedError, Result};

/// A fine-tuning strategy, by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// `local`: each site fine-tunes alone on its own data (lower reference).
    Local,
    /// `central`: one model fine-tuned on the pooled data of all sites (upper reference).
    Central,
    /// `fedavg`: full fine-tuning, every trainable variable averaged by FedAvg.
    FedAvg,
    /// `fedavg-lora`: one LoRA pair, both factors trained and averaged.
    FedAvgLora,
    /// `ffa-lora`: one LoRA pair, A frozen at a shared seeded init, B trained and averaged.
    FfaLora,
    /// `fedsa-lora`: one LoRA pair, both trained, A averaged, B kept local.
    FedSaLora,
    /// `dual-lora`: a global and a local pair, both trained, only the global pair averaged.
    DualLora,
}

impl Strategy {
    /// Every strategy, in the order of the module table.
    pub const ALL: [Strategy; 7] = [
        Strategy::Local,
        Strategy::Central,
        Strategy::FedAvg,
        Strategy::FedAvgLora,
        Strategy::FfaLora,
        Strategy::FedSaLora,
        Strategy::DualLora,
    ];

    /// The command-line name (`dual-lora`, …).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Local => "local",
            Strategy::Central => "central",
            Strategy::FedAvg => "fedavg",
            Strategy::FedAvgLora => "fedavg-lora",
            Strategy::FfaLora => "ffa-lora",
            Strategy::FedSaLora => "fedsa-lora",
            Strategy::DualLora => "dual-lora",
        }
    }

    /// The LoRA scheme the model must be built with; `None`: full fine-tuning, no adapters.
    pub fn lora_scheme(self) -> Option<LoraScheme> {
        match self {
            Strategy::Local | Strategy::Central | Strategy::FedAvg => None,
            Strategy::FedAvgLora => Some(LoraScheme::Lora),
            Strategy::FfaLora => Some(LoraScheme::FfaLora),
            Strategy::FedSaLora => Some(LoraScheme::FedSaLora),
            Strategy::DualLora => Some(LoraScheme::DualLora),
        }
    }

    /// Whether clients exchange messages with a server (false for `local` and `central`).
    pub fn federates(self) -> bool {
        !matches!(self, Strategy::Local | Strategy::Central)
    }

    /// Roles a client trains, the head included.
    fn trained_roles(self) -> Vec<ParamRole> {
        let mut roles = match self.lora_scheme() {
            None => vec![ParamRole::Base],
            Some(scheme) => [Adapter::Global, Adapter::Local]
                .into_iter()
                .flat_map(|a| [Factor::A, Factor::B].map(|f| (a, f)))
                .filter(|&(a, f)| (a == Adapter::Global || scheme.uses_local()) && scheme.trains(a, f))
                .map(|(a, f)| ParamRole::adapter(a, f))
                .collect(),
        };
        roles.push(ParamRole::Head);
        roles
    }

    /// Roles a client sends, the head excluded.
    fn shared_roles(self) -> &'static [ParamRole] {
        match (self.federates(), self.lora_scheme()) {
            (false, _) => &[],
            (true, None) => &[ParamRole::Base],
            (true, Some(scheme)) => scheme.shared_roles(),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = FedError;

    /// Parses a command-line name; an unknown one is an error listing the valid names.
    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| {
            let valid: Vec<&str> = Strategy::ALL.iter().map(|st| st.name()).collect();
            FedError::option("strategy", format!("unknown strategy {s:?}; expected one of {}", valid.join(", ")))
        })
    }
}

/// What a valid update holds: tensor name → (shape, dtype).
pub type UpdateSpec = BTreeMap<String, (Vec<usize>, DType)>;

/// A strategy with its options: the pure rules of what trains, what is sent and how updates are combined
/// (aggregation: [`StrategyConfig::aggregate`]).
///
/// ```
/// use cmr_fed::federated::StrategyConfig;
/// let dual = StrategyConfig::new("dual-lora".parse()?);
/// assert!(dual.trains("blocks.5.attn.q.lora_global.a") && dual.shares("blocks.5.attn.q.lora_global.a"));
/// assert!(dual.trains("blocks.5.attn.q.lora_local.a") && !dual.shares("blocks.5.attn.q.lora_local.a"));
/// assert!(!dual.trains("blocks.5.attn.q.weight") && !dual.shares("blocks.5.attn.q.weight"));
/// assert!(dual.shares("head.weight"));
/// # Ok::<(), cmr_fed::FedError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Whether the task head is sent and averaged with the strategy's shared variables. Default true.
    pub share_head: bool,
    /// Whether updates carry the Adam moments of the shared variables and the server averages them too
    /// (Linardos et al. 2022, for FedAvg; see [`Moments`]). Needs a trainer that exports its moments. Default false.
    pub average_moments: bool,
    /// Fewest valid updates a round needs to change the global model; with fewer the previous global is kept.
    /// Default 1.
    pub min_clients: usize,
    /// Module path of the task head; every variable at or below it has [`ParamRole::Head`]. Default `head`.
    pub head_prefix: String,
}

impl StrategyConfig {
    /// `strategy` with the default options.
    pub fn new(strategy: Strategy) -> Self {
        Self { strategy, share_head: true, average_moments: false, min_clients: 1, head_prefix: "head".into() }
    }

    /// Checks that the options fit together.
    ///
    /// # Errors
    /// [`FedError::Option`] for `min_clients` 0 and for `average_moments` with a strategy that does not federate.
    pub fn validate(&self) -> Result<()> {
        if self.min_clients == 0 {
            return Err(FedError::option("min-clients", "must be at least 1"));
        }
        if self.average_moments && !self.strategy.federates() {
            return Err(FedError::option(
                "average-moments",
                format!("{} exchanges nothing, so there are no moments to average", self.strategy),
            ));
        }
        Ok(())
    }

    /// Whether a client trains the variable `name`.
    pub fn trains(&self, name: &str) -> bool {
        self.strategy.trained_roles().contains(&self.role(name))
    }

    /// Whether the variable `name` crosses the client boundary.
    pub fn shares(&self, name: &str) -> bool {
        let role = self.role(name);
        self.strategy.shared_roles().contains(&role)
            || (role == ParamRole::Head && self.share_head && self.strategy.federates())
    }

    /// The names among `names` a client trains, sorted — what its optimizer gets.
    pub fn trained_names<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = names.into_iter().filter(|n| self.trains(n)).map(str::to_owned).collect();
        out.sort();
        out
    }

    /// The part of `state` that crosses the boundary; from a client's initial state, the initial global model.
    pub fn shared(&self, state: &NamedTensors) -> NamedTensors {
        state.iter().filter(|(n, _)| self.shares(n)).map(|(n, t)| (n.clone(), t.clone())).collect()
    }

    /// What a valid update must hold, given the current global: every shared variable, plus both Adam moments of
    /// each when moments are averaged, each with the variable's shape and dtype.
    pub fn update_spec(&self, global: &NamedTensors) -> UpdateSpec {
        let (params, _) = Moments::split(global);
        let mut spec = UpdateSpec::new();
        for (name, tensor) in &params {
            let shape = (tensor.dims().to_vec(), tensor.dtype());
            if self.average_moments {
                for wire in Moments::wire_names([name.as_str()]) {
                    spec.insert(wire, shape.clone());
                }
            }
            spec.insert(name.clone(), shape);
        }
        spec
    }

    fn role(&self, name: &str) -> ParamRole {
        ParamRole::of(name, &self.head_prefix)
    }
}
