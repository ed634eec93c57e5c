//! The LoRA family: a frozen base linear map plus up to two low-rank adapter pairs,
//!
//! ```text
//! y = W0·x + b + s_g·B_g·A_g·x + s_l·B_l·A_l·x,      s = α / r,
//! ```
//!
//! named `lora_global.{a,b}` (the pair a federated strategy may share) and `lora_local.{a,b}` (the pair that never
//! leaves its site).
//!
//! - LoRA (Hu et al. 2021, arXiv 2106.09685, §4.1): "We use a random Gaussian initialization for A and zero for B, so
//!   ΔW = BA is zero at the beginning of training"; ΔW is scaled by α/r. We follow the reference implementation
//!   (PEFT `LoraLayer.reset_lora_parameters`) and draw A Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in), from a
//!   seeded stream, so the same seed gives the same adapters.
//! - FFA-LoRA (Sun et al. 2024, arXiv 2403.12313): freezes the randomly initialised A and trains and averages only B,
//!   which makes federated averaging of ΔW exact.
//! - FedSA-LoRA (Guo et al. 2024, arXiv 2410.01463): A learns what is general and B what is client-specific, so only
//!   A is shared and B stays on the client.
//! - Med-DualLoRA (arXiv 2603.10967): both pairs train locally; only the global pair is sent and averaged.
//!
//! [`LoraScheme`] encodes which factor trains and which is shared in each of these; [`ParamRole`] classifies every
//! variable name of a model, so a strategy selects what crosses the client boundary by name only.
//!
//! In a ViT block (issue 7) the adaptable projections are named by [`LoraTarget`] and chosen by [`BlockLora`]; each
//! projection of the block is a [`Projection`]: plain, frozen, or a [`LoraLinear`].

use std::fmt;
use std::str::FromStr;

use candle_core::{Module, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

use crate::layers::{linear, Linear, LinearConfig};

/// Name of the shareable adapter pair inside a [`LoraLinear`].
pub const GLOBAL_ADAPTER: &str = "lora_global";
/// Name of the site-private adapter pair inside a [`LoraLinear`].
pub const LOCAL_ADAPTER: &str = "lora_local";

/// One of the two adapter pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adapter {
    /// `lora_global`: may be shared by a federated strategy.
    Global,
    /// `lora_local`: stays on its site.
    Local,
}

impl Adapter {
    /// The variable-name component of this pair (`lora_global` or `lora_local`).
    pub fn name(self) -> &'static str {
        match self {
            Adapter::Global => GLOBAL_ADAPTER,
            Adapter::Local => LOCAL_ADAPTER,
        }
    }
}

/// One factor of an adapter pair: `A` (r × in, projects down) or `B` (out × r, projects up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Factor {
    /// The down projection, initialised Kaiming-uniform.
    A,
    /// The up projection, initialised to zero.
    B,
}

impl Factor {
    /// The variable-name component of this factor (`a` or `b`).
    pub fn name(self) -> &'static str {
        match self {
            Factor::A => "a",
            Factor::B => "b",
        }
    }
}

/// Rank and scale of one adapter pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdapterConfig {
    /// Rank r of `B·A`. Default 8 (PEFT).
    pub rank: usize,
    /// α in the scaling α / r. Default 8 (PEFT), i.e. scaling 1 at rank 8.
    pub alpha: f64,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self { rank: 8, alpha: 8.0 }
    }
}

impl AdapterConfig {
    /// The scaling s = α / r applied to `B·A·x`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// Configuration of a [`LoraLinear`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraConfig {
    /// The shareable pair `lora_global`. `None`: no global pair. Default: rank 8, α 8.
    pub global: Option<AdapterConfig>,
    /// The site-private pair `lora_local`. `None` (default): plain single-pair LoRA.
    pub local: Option<AdapterConfig>,
    /// Whether the base layer has a bias `b`. Default true.
    pub bias: bool,
    /// Root seed of the A initialisation; each layer draws from the stream named by its variable path, so layers
    /// differ and the result does not depend on construction order. Default 0.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { global: Some(AdapterConfig::default()), local: None, bias: true, seed: 0 }
    }
}

impl LoraConfig {
    /// Both pairs, as Med-DualLoRA, with the same rank and α.
    pub fn dual(adapter: AdapterConfig, seed: u64) -> Self {
        Self { global: Some(adapter), local: Some(adapter), seed, ..Self::default() }
    }
}

/// Which factors train and which cross the client boundary, for each method of the LoRA family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoraScheme {
    /// Plain LoRA averaged by FedAvg: one pair, A and B train and are shared.
    Lora,
    /// FFA-LoRA: one pair, A frozen at its random init, only B trains and is shared.
    FfaLora,
    /// FedSA-LoRA: one pair, A and B train, only A is shared.
    FedSaLora,
    /// Med-DualLoRA: global and local pairs train, only the global pair is shared.
    DualLora,
}

impl LoraScheme {
    /// Whether the scheme uses the `lora_local` pair.
    pub fn uses_local(self) -> bool {
        self == LoraScheme::DualLora
    }

    /// Whether `factor` of `adapter` is trained under this scheme.
    pub fn trains(self, adapter: Adapter, factor: Factor) -> bool {
        match (self, adapter) {
            (LoraScheme::FfaLora, Adapter::Global) => factor == Factor::B,
            (LoraScheme::DualLora, _) | (_, Adapter::Global) => true,
            (_, Adapter::Local) => false,
        }
    }

    /// The adapter roles whose tensors a client sends and the server averages. Base weights and the task head are
    /// the strategy's own decision and are not listed.
    pub fn shared_roles(self) -> &'static [ParamRole] {
        match self {
            LoraScheme::Lora | LoraScheme::DualLora => &[ParamRole::GlobalA, ParamRole::GlobalB],
            LoraScheme::FfaLora => &[ParamRole::GlobalB],
            LoraScheme::FedSaLora => &[ParamRole::GlobalA],
        }
    }
}

/// What a model variable is, read from its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParamRole {
    /// `…lora_global.a`
    GlobalA,
    /// `…lora_global.b`
    GlobalB,
    /// `…lora_local.a`
    LocalA,
    /// `…lora_local.b`
    LocalB,
    /// The task head: every name at or below the head prefix.
    Head,
    /// Everything else: the (pre-trained, usually frozen) backbone.
    Base,
}

impl ParamRole {
    /// Classifies a dotted variable name. `head_prefix` is the module path of the task head (e.g. `head`); a name is
    /// in the head when its leading components equal the prefix's.
    pub fn of(name: &str, head_prefix: &str) -> Self {
        let parts: Vec<&str> = name.split('.').collect();
        for pair in parts.windows(2) {
            match (pair[0], pair[1]) {
                (GLOBAL_ADAPTER, "a") => return ParamRole::GlobalA,
                (GLOBAL_ADAPTER, "b") => return ParamRole::GlobalB,
                (LOCAL_ADAPTER, "a") => return ParamRole::LocalA,
                (LOCAL_ADAPTER, "b") => return ParamRole::LocalB,
                _ => {}
            }
        }
        let head: Vec<&str> = head_prefix.split('.').filter(|p| !p.is_empty()).collect();
        if !head.is_empty() && parts.len() > head.len() && parts[..head.len()] == head[..] {
            ParamRole::Head
        } else {
            ParamRole::Base
        }
    }

    /// The role of `factor` of `adapter`.
    pub fn adapter(adapter: Adapter, factor: Factor) -> Self {
        match (adapter, factor) {
            (Adapter::Global, Factor::A) => ParamRole::GlobalA,
            (Adapter::Global, Factor::B) => ParamRole::GlobalB,
            (Adapter::Local, Factor::A) => ParamRole::LocalA,
            (Adapter::Local, Factor::B) => ParamRole::LocalB,
        }
    }
}

/// The names among `names` whose role is in `roles`, sorted, e.g. everything a [`LoraScheme`] shares:
/// `select_names(names, scheme.shared_roles(), "head")`.
///
/// ```
/// use cmr_nn::lora::{select_names, ParamRole};
/// let names = ["blocks.0.qkv.weight", "blocks.0.qkv.lora_global.a", "blocks.0.qkv.lora_local.b", "head.weight"];
/// let global = select_names(names, &[ParamRole::GlobalA, ParamRole::GlobalB], "head");
/// assert_eq!(global, ["blocks.0.qkv.lora_global.a"]);
/// assert_eq!(select_names(names, &[ParamRole::Head], "head"), ["head.weight"]);
/// ```
pub fn select_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    roles: &[ParamRole],
    head_prefix: &str,
) -> Vec<String> {
    let mut out: Vec<String> =
        names.into_iter().filter(|n| roles.contains(&ParamRole::of(n, head_prefix))).map(str::to_owned).collect();
    out.sort();
    out
}

/// The variables of `varmap` whose role is in `roles`, sorted by name, ready for an optimizer parameter group.
pub fn select_vars(varmap: &VarMap, roles: &[ParamRole], head_prefix: &str) -> Vec<(String, Var)> {
    crate::optim::named_vars(varmap, |name| roles.contains(&ParamRole::of(name, head_prefix)))
}

/// One adapter pair and its trainable switches.
#[derive(Debug, Clone)]
struct AdapterPair {
    /// (r, in)
    a: Tensor,
    /// (out, r)
    b: Tensor,
    scaling: f64,
    train_a: bool,
    train_b: bool,
}

impl AdapterPair {
    fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, cfg: AdapterConfig, seed: u64) -> Result<Self> {
        if cfg.rank == 0 {
            candle_core::bail!("LoRA rank of {} must be at least 1", vb.prefix());
        }
        let fresh = !vb.contains_tensor(Factor::A.name());
        let a = vb.get_with_hints((cfg.rank, in_dim), Factor::A.name(), Init::Const(0.))?;
        if fresh {
            // candle's CPU generator cannot be seeded, so the Kaiming-uniform draw comes from the project's seeded
            // stream and is written into the new variable.
            let stream = [vb.prefix(), Factor::A.name().to_owned()].join(".");
            let mut rng = cmr_core::seed::rng(seed, &["lora", stream.as_str()]);
            let bound = 1.0 / (in_dim as f64).sqrt();
            let dist = Uniform::new(-bound, bound).map_err(candle_core::Error::wrap)?;
            let values: Vec<f64> = (0..cfg.rank * in_dim).map(|_| dist.sample(&mut rng)).collect();
            let init = Tensor::from_vec(values, (cfg.rank, in_dim), a.device())?.to_dtype(a.dtype())?;
            a.slice_set(&init, 0, 0)?;
        }
        let b = vb.get_with_hints((out_dim, cfg.rank), Factor::B.name(), Init::Const(0.))?;
        Ok(Self { a, b, scaling: cfg.scaling(), train_a: true, train_b: true })
    }

    /// `B·A` scaled, (out, in), without gradient.
    fn delta(&self) -> Result<Tensor> {
        self.b.detach().matmul(&self.a.detach())?.affine(self.scaling, 0.)
    }

    fn factor(&self, factor: Factor) -> (&Tensor, bool) {
        match factor {
            Factor::A => (&self.a, self.train_a),
            Factor::B => (&self.b, self.train_b),
        }
    }
}

/// A frozen base linear layer `W0·x + b` with up to two LoRA adapter pairs (see the module docs).
///
/// Variables under the layer's prefix: `weight` (out, in) and `bias` (out) — the names of a plain linear layer, so a
/// pre-trained model loads unchanged — and `lora_global.a` (r, in), `lora_global.b` (out, r), `lora_local.a`,
/// `lora_local.b`. The base never receives a gradient; an adapter factor receives one only while it is trainable.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    prefix: String,
    weight: Tensor,
    bias: Option<Tensor>,
    global: Option<AdapterPair>,
    local: Option<AdapterPair>,
    /// `W0 + ΔW` while merged; the forward pass then is a single matmul.
    merged: Option<Tensor>,
}

impl LoraLinear {
    /// Builds the base [`Linear`] and the adapters from `vb` (a fresh `VarMap` initialises them as torch does; a
    /// loaded checkpoint supplies them).
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, cfg: LoraConfig) -> Result<Self> {
        let base = Linear::new(vb.clone(), in_dim, out_dim, LinearConfig { bias: cfg.bias })?;
        Self::with_base(vb, base, cfg)
    }

    /// Wraps an existing (e.g. pre-trained) linear layer; only the adapters come from `vb`. `cfg.bias` is ignored:
    /// the base keeps whatever bias it has.
    pub fn with_base(vb: VarBuilder, base: Linear, cfg: LoraConfig) -> Result<Self> {
        let (out_dim, in_dim) = base.weight().dims2()?;
        let pair = |adapter: Adapter, c: Option<AdapterConfig>| {
            c.map(|c| AdapterPair::new(vb.pp(adapter.name()), in_dim, out_dim, c, cfg.seed)).transpose()
        };
        Ok(Self {
            prefix: vb.prefix(),
            weight: base.weight().clone(),
            bias: base.bias().cloned(),
            global: pair(Adapter::Global, cfg.global)?,
            local: pair(Adapter::Local, cfg.local)?,
            merged: None,
        })
    }

    fn pair(&self, adapter: Adapter) -> Option<&AdapterPair> {
        match adapter {
            Adapter::Global => self.global.as_ref(),
            Adapter::Local => self.local.as_ref(),
        }
    }

    /// Whether the layer has `adapter`.
    pub fn has(&self, adapter: Adapter) -> bool {
        self.pair(adapter).is_some()
    }

    /// Switches training of one factor on or off; a frozen factor is detached in the forward pass, so no gradient
    /// reaches it. Switching a factor of an absent pair does nothing.
    pub fn set_trainable(&mut self, adapter: Adapter, factor: Factor, trainable: bool) {
        let pair = match adapter {
            Adapter::Global => self.global.as_mut(),
            Adapter::Local => self.local.as_mut(),
        };
        if let Some(pair) = pair {
            match factor {
                Factor::A => pair.train_a = trainable,
                Factor::B => pair.train_b = trainable,
            }
        }
    }

    /// Whether `factor` of `adapter` is present and trainable.
    pub fn is_trainable(&self, adapter: Adapter, factor: Factor) -> bool {
        self.pair(adapter).is_some_and(|p| p.factor(factor).1)
    }

    /// Sets every switch as `scheme` prescribes (FFA-LoRA: A frozen; the others: all present factors train).
    pub fn apply_scheme(&mut self, scheme: LoraScheme) {
        for adapter in [Adapter::Global, Adapter::Local] {
            for factor in [Factor::A, Factor::B] {
                self.set_trainable(adapter, factor, scheme.trains(adapter, factor));
            }
        }
    }

    /// The layer's variable names with their roles: base `weight`/`bias` ([`ParamRole::Base`]) and each present
    /// adapter factor.
    pub fn var_names(&self) -> Vec<(String, ParamRole)> {
        let join = |s: &str| if self.prefix.is_empty() { s.to_owned() } else { format!("{}.{s}", self.prefix) };
        let mut out = vec![(join("weight"), ParamRole::Base)];
        if self.bias.is_some() {
            out.push((join("bias"), ParamRole::Base));
        }
        for adapter in [Adapter::Global, Adapter::Local] {
            if self.has(adapter) {
                for factor in [Factor::A, Factor::B] {
                    out.push((
                        join(&format!("{}.{}", adapter.name(), factor.name())),
                        ParamRole::adapter(adapter, factor),
                    ));
                }
            }
        }
        out
    }

    /// Names of the adapter factors that currently train — what an optimizer should be given for this layer.
    pub fn trainable_names(&self) -> Vec<String> {
        self.var_names()
            .into_iter()
            .filter(|(_, role)| match role {
                ParamRole::GlobalA => self.is_trainable(Adapter::Global, Factor::A),
                ParamRole::GlobalB => self.is_trainable(Adapter::Global, Factor::B),
                ParamRole::LocalA => self.is_trainable(Adapter::Local, Factor::A),
                ParamRole::LocalB => self.is_trainable(Adapter::Local, Factor::B),
                ParamRole::Base | ParamRole::Head => false,
            })
            .map(|(name, _)| name)
            .collect()
    }

    /// `W0 + s_g·B_g·A_g + s_l·B_l·A_l`, (out, in): the weight of an equivalent plain linear layer.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let mut w = self.weight.detach();
        for pair in self.global.iter().chain(self.local.iter()) {
            w = (w + pair.delta()?)?;
        }
        Ok(w)
    }

    /// Folds the adapters into the base weight for inference: the forward pass becomes one matmul and records no
    /// gradient for any factor. The unmerged weight is kept, so [`LoraLinear::unmerge`] restores it exactly.
    /// Merging twice recomputes the merged weight from the current adapters.
    pub fn merge(&mut self) -> Result<()> {
        self.merged = Some(self.merged_weight()?);
        Ok(())
    }

    /// Returns to the separate base + adapter forward pass.
    pub fn unmerge(&mut self) {
        self.merged = None;
    }

    /// Whether the adapters are currently merged into the base weight.
    pub fn is_merged(&self) -> bool {
        self.merged.is_some()
    }
}

impl Module for LoraLinear {
    /// (…, in) → (…, out).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let bias = self.bias.as_ref().map(Tensor::detach);
        if let Some(w) = &self.merged {
            return linear(xs, w, bias.as_ref());
        }
        // 1. frozen base
        let mut ys = linear(xs, &self.weight.detach(), bias.as_ref())?;
        // 2. adapters: s · (x Aᵀ) Bᵀ, a rank-r bottleneck, never forming B·A
        for pair in self.global.iter().chain(self.local.iter()) {
            let grad = |factor| {
                let (t, trainable) = pair.factor(factor);
                if trainable {
                    t.clone()
                } else {
                    t.detach()
                }
            };
            let down = linear(xs, &grad(Factor::A), None)?; // (…, r)
            let up = linear(&down, &grad(Factor::B), None)?; // (…, out)
            ys = (ys + up.affine(pair.scaling, 0.)?)?;
        }
        Ok(ys)
    }
}

/// A projection of a ViT block that LoRA can adapt, named as the block's tensors (`attn.q`, `attn.kv`, `attn.proj`,
/// `mlp.fc1`, `mlp.fc2`) and as the `--lora-targets` option (`q,kv,proj,fc1,fc2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraTarget {
    /// `attn.q`, the query projection.
    Q,
    /// `attn.kv`, the fused key and value projection.
    Kv,
    /// `attn.proj`, the attention output projection.
    Proj,
    /// `mlp.fc1`, the MLP's first layer.
    Fc1,
    /// `mlp.fc2`, the MLP's second layer.
    Fc2,
}

impl LoraTarget {
    /// Every target, in block order.
    pub const ALL: [LoraTarget; 5] = [Self::Q, Self::Kv, Self::Proj, Self::Fc1, Self::Fc2];

    /// The target's name (the last component of its tensor path).
    pub fn name(self) -> &'static str {
        match self {
            Self::Q => "q",
            Self::Kv => "kv",
            Self::Proj => "proj",
            Self::Fc1 => "fc1",
            Self::Fc2 => "fc2",
        }
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LoraTarget {
    type Err = String;

    /// ```
    /// use cmr_nn::lora::LoraTarget;
    /// assert_eq!("kv".parse::<LoraTarget>(), Ok(LoraTarget::Kv));
    /// let err = "qkv".parse::<LoraTarget>().unwrap_err();
    /// assert_eq!(err, "unknown LoRA target `qkv`; expected one of q, kv, proj, fc1, fc2");
    /// ```
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
            format!("unknown LoRA target `{s}`; expected one of {}", names.join(", "))
        })
    }
}

/// LoRA in one ViT block: the adapters' configuration and the projections that get them. A block with LoRA trains
/// only its adapters: every other parameter of the block (norms, projections not in `targets`, the adapted layers'
/// base weights) is frozen, as LoRA freezes the pre-trained weights (Hu et al., arXiv 2106.09685, §4.1).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockLora {
    /// Ranks, scales and seed of the adapters (`bias` is ignored: each projection keeps its own).
    pub config: LoraConfig,
    /// The adapted projections.
    pub targets: Vec<LoraTarget>,
}

impl BlockLora {
    /// Whether `target` is adapted.
    pub fn adapts(&self, target: LoraTarget) -> bool {
        self.targets.contains(&target)
    }
}

/// One linear projection of a block: trainable, frozen (a LoRA block's non-target projections), or LoRA-adapted.
/// All three use the tensor names of a plain linear layer (`weight`, `bias`), so a checkpoint without adapters loads.
#[derive(Debug, Clone)]
pub enum Projection {
    /// A trainable linear layer.
    Linear(Linear),
    /// A linear layer run on detached weights: no gradient reaches it.
    Frozen(Linear),
    /// A frozen base with adapters.
    Lora(LoraLinear),
}

impl Projection {
    /// Builds projection `target` of a block `in_dim → out_dim` under `vb`: a [`LoraLinear`] when `lora` adapts it, a
    /// frozen layer when the block has LoRA on other targets only, a trainable [`Linear`] when it has none.
    pub fn new(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        cfg: LinearConfig,
        target: LoraTarget,
        lora: Option<&BlockLora>,
    ) -> Result<Self> {
        Ok(match lora {
            Some(l) if l.adapts(target) => {
                Self::Lora(LoraLinear::new(vb, in_dim, out_dim, LoraConfig { bias: cfg.bias, ..l.config })?)
            }
            Some(_) => Self::Frozen(Linear::new(vb, in_dim, out_dim, cfg)?),
            None => Self::Linear(Linear::new(vb, in_dim, out_dim, cfg)?),
        })
    }

    /// The LoRA layer, if the projection is adapted.
    pub fn adapter(&self) -> Option<&LoraLinear> {
        match self {
            Self::Lora(l) => Some(l),
            Self::Linear(_) | Self::Frozen(_) => None,
        }
    }

    /// The LoRA layer, mutably (to switch its factors), if the projection is adapted.
    pub fn adapter_mut(&mut self) -> Option<&mut LoraLinear> {
        match self {
            Self::Lora(l) => Some(l),
            Self::Linear(_) | Self::Frozen(_) => None,
        }
    }
}

impl Module for Projection {
    /// (…, in) → (…, out).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Linear(l) => l.forward(xs),
            Self::Frozen(l) => linear(xs, &l.weight().detach(), l.bias().map(Tensor::detach).as_ref()),
            Self::Lora(l) => l.forward(xs),
        }
    }
}
