//! The federated runtime on a toy model: a 2-layer classifier `head(tanh(fc1(x)))` whose `fc1` is a
//! `cmr_nn::lora::LoraLinear` (LoRA strategies) or a plain trainable linear layer (full fine-tuning), trained with
//! AdamW on a logistic loss over small synthetic per-client data.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarMap;
use cmr_fed::federated::{
    ClientRuntime, CommLog, FailureKind, FitReport, InProcess, Message, MessageKind, Moments, NamedTensors, Server,
    ServerConfig, SiteTrainer, Strategy, StrategyConfig, Transport,
};
use cmr_fed::{FedError, Result};
use cmr_nn::checkpoint::{self, Checkpoint, LoadMode};
use cmr_nn::layers::{seeded_var_builder, Linear, LinearConfig};
use cmr_nn::lora::{AdapterConfig, LoraConfig, LoraLinear};
use cmr_nn::optim::{named_vars, AdamW, AdamWConfig, ParamGroup};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const MODEL_SEED: u64 = 11;
const ROOT_SEED: u64 = 5;

/// Size of the toy model.
#[derive(Clone, Copy)]
struct Dims {
    input: usize,
    hidden: usize,
    rank: usize,
}

const SMALL: Dims = Dims { input: 6, hidden: 8, rank: 2 };

/// `fc1` either way.
enum Layer {
    Full(Linear),
    Lora(LoraLinear),
}

/// A site: model, optimizer, data.
struct Toy {
    varmap: VarMap,
    fc1: Layer,
    head: Linear,
    optim: AdamW,
    x: Tensor,
    y: Tensor,
}

impl Toy {
    /// Same architecture and initial weights at every site (same model seed); data from the client's own stream.
    fn new(strategy: &StrategyConfig, dims: Dims, client: usize, n: usize) -> Self {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, MODEL_SEED, DType::F32, &Device::Cpu);
        let fc1 = match strategy.strategy.lora_scheme() {
            None => Layer::Full(Linear::new(vb.pp("fc1"), dims.input, dims.hidden, LinearConfig::default()).unwrap()),
            Some(scheme) => {
                let adapter = AdapterConfig { rank: dims.rank, alpha: dims.rank as f64 };
                let cfg = LoraConfig {
                    local: scheme.uses_local().then_some(adapter),
                    ..LoraConfig::dual(adapter, MODEL_SEED)
                };
                let mut layer = LoraLinear::new(vb.pp("fc1"), dims.input, dims.hidden, cfg).unwrap();
                layer.apply_scheme(scheme);
                Layer::Lora(layer)
            }
        };
        let head = Linear::new(vb.pp("head"), dims.hidden, 1, LinearConfig::default()).unwrap();
        let trained = strategy.trained_names(varmap.data().lock().unwrap().keys().map(String::as_str));
        let params = named_vars(&varmap, |name| trained.iter().any(|t| t == name));
        let optim = AdamW::new(vec![ParamGroup::new(params, 0.05, 0.0)], AdamWConfig::default()).unwrap();
        // Labels from a shared rule plus a per-client shift: related but not identical tasks.
        let mut rng = cmr_core::seed::rng(ROOT_SEED, &["toy-data", &client.to_string()]);
        let xs: Vec<f32> = (0..n * dims.input).map(|_| StandardNormal.sample(&mut rng)).collect();
        let ys: Vec<f32> = xs
            .chunks(dims.input)
            .map(|x| f32::from(x[0] - 0.5 * x[1] + 0.3 * x[2] + 0.2 * client as f32 > 0.0))
            .collect();
        let x = Tensor::from_vec(xs, (n, dims.input), &Device::Cpu).unwrap();
        let y = Tensor::from_vec(ys, n, &Device::Cpu).unwrap();
        Self { varmap, fc1, head, optim, x, y }
    }

    /// Mean logistic loss `log(1 + exp(−s·z))`, s = ±1.
    fn loss(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
        let h = match &self.fc1 {
            Layer::Full(l) => l.forward(x)?,
            Layer::Lora(l) => l.forward(x)?,
        };
        let z = self.head.forward(&h.tanh()?)?.squeeze(D::Minus1)?;
        let sign = y.affine(2.0, -1.0)?;
        ((z * sign)?.neg()?.exp()? + 1.0)?.log()?.mean_all()
    }

    /// Writes the optimizer state to a scratch folder and reads it back as a checkpoint (`AdamW` has no accessor
    /// for its moments; see the report).
    fn optim_checkpoint(&self, dir: &Path) -> Result<Checkpoint> {
        let path = dir.join("optim.safetensors");
        self.optim.save_state(&path)?;
        Ok(Checkpoint::load(&path, &Device::Cpu)?)
    }
}

impl SiteTrainer for Toy {
    fn state(&self) -> Result<NamedTensors> {
        let data = self.varmap.data().lock().unwrap();
        // `copy`: a clone would share storage with the variable and change with it.
        Ok(data.iter().map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap())).collect())
    }

    fn load(&mut self, tensors: &NamedTensors) -> Result<()> {
        let data = self.varmap.data().lock().unwrap();
        for (name, t) in tensors {
            let var = data.get(name).ok_or_else(|| FedError::message("load", format!("no variable {name}")))?;
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    fn fit(&mut self, _round: usize, seed: u64) -> Result<FitReport> {
        let n = self.x.dim(0)?;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut losses = Vec::new();
        for batch in order.chunks(8) {
            let idx = Tensor::new(batch, &Device::Cpu)?;
            let loss = self.loss(&self.x.index_select(&idx, 0)?, &self.y.index_select(&idx, 0)?)?;
            let mut grads = loss.backward()?;
            self.optim.step(&mut grads)?;
            losses.push(loss.to_scalar::<f32>()? as f64);
        }
        Ok(FitReport { loss: losses.iter().sum::<f64>() / losses.len() as f64, examples: n })
    }

    fn train_size(&self) -> usize {
        self.x.dim(0).unwrap()
    }

    fn save_private(&self, dir: &Path) -> Result<()> {
        checkpoint::save_varmap(&dir.join("model.safetensors"), &self.varmap, &serde_json::json!({}))?;
        self.optim.save_state(&dir.join("optim.safetensors"))?;
        Ok(())
    }

    fn load_private(&mut self, dir: &Path) -> Result<()> {
        Checkpoint::load(&dir.join("model.safetensors"), &Device::Cpu)?.load_into(&self.varmap, LoadMode::Strict)?;
        self.optim.load_state(&dir.join("optim.safetensors"))?;
        Ok(())
    }

    fn moments(&self, names: &[String]) -> Result<Moments> {
        let scratch = tempfile::tempdir().unwrap();
        let ckpt = self.optim_checkpoint(scratch.path())?;
        let state = self.state()?;
        let mut moments = Moments::default();
        for name in names {
            let zero = state[name].zeros_like()?;
            let get = |prefix: &str| ckpt.tensors().get(&format!("{prefix}.{name}")).cloned().unwrap_or(zero.clone());
            moments.first.insert(name.clone(), get("m"));
            moments.second.insert(name.clone(), get("v"));
        }
        Ok(moments)
    }

    fn load_moments(&mut self, moments: &Moments) -> Result<()> {
        let scratch = tempfile::tempdir().unwrap();
        let ckpt = self.optim_checkpoint(scratch.path())?;
        let mut tensors = ckpt.tensors().clone();
        for (prefix, source) in [("m", &moments.first), ("v", &moments.second)] {
            for (name, t) in source {
                // Only parameters that already have state (the saved step counts key the state).
                if let Some(slot) = tensors.get_mut(&format!("{prefix}.{name}")) {
                    *slot = t.clone();
                }
            }
        }
        let path = scratch.path().join("optim.safetensors");
        checkpoint::save(&path, &tensors, &ckpt.config::<serde_json::Value>()?)?;
        self.optim.load_state(&path)?;
        Ok(())
    }
}

/// What a fault-injecting wrapper does in one round.
#[derive(Clone, Copy)]
enum Fault {
    /// `fit` fails (the site dropped out).
    Error,
    /// The state reports NaN everywhere after training.
    NaN,
    /// `fit` takes this long.
    Slow(Duration),
}

/// A trainer that misbehaves in chosen rounds.
struct Faulty {
    inner: Toy,
    faults: Vec<(usize, Fault)>,
    round: usize,
}

impl Faulty {
    fn fault(&self) -> Option<Fault> {
        self.faults.iter().find(|(r, _)| *r == self.round).map(|(_, f)| *f)
    }
}

impl SiteTrainer for Faulty {
    fn state(&self) -> Result<NamedTensors> {
        let state = self.inner.state()?;
        match self.fault() {
            Some(Fault::NaN) => Ok(state.into_iter().map(|(n, t)| (n, t.affine(f64::NAN, 0.).unwrap())).collect()),
            _ => Ok(state),
        }
    }
    fn load(&mut self, tensors: &NamedTensors) -> Result<()> {
        self.inner.load(tensors)
    }
    fn fit(&mut self, round: usize, seed: u64) -> Result<FitReport> {
        self.round = round;
        match self.fault() {
            Some(Fault::Error) => Err(FedError::message("fit", "site went offline")),
            Some(Fault::Slow(d)) => {
                std::thread::sleep(d);
                self.inner.fit(round, seed)
            }
            _ => self.inner.fit(round, seed),
        }
    }
    fn train_size(&self) -> usize {
        self.inner.train_size()
    }
    fn save_private(&self, dir: &Path) -> Result<()> {
        self.inner.save_private(dir)
    }
    fn load_private(&mut self, dir: &Path) -> Result<()> {
        self.inner.load_private(dir)
    }
    fn moments(&self, names: &[String]) -> Result<Moments> {
        self.inner.moments(names)
    }
    fn load_moments(&mut self, moments: &Moments) -> Result<()> {
        self.inner.load_moments(moments)
    }
}

/// One request and its reply as they crossed the wire.
struct Exchange {
    client: String,
    request: Vec<u8>,
    reply: Option<Vec<u8>>,
}

/// An in-process transport that records every message and can truncate one client's replies.
struct Wire {
    inner: InProcess,
    log: Vec<Exchange>,
    truncate: Option<String>,
}

impl Transport for Wire {
    fn clients(&self) -> Vec<String> {
        self.inner.clients()
    }
    fn exchange(&mut self, client: &str, request: &[u8], timeout: Option<Duration>) -> Result<Vec<u8>> {
        let mut reply = self.inner.exchange(client, request, timeout);
        if let (Ok(bytes), Some(bad)) = (&mut reply, &self.truncate) {
            if bad == client {
                bytes.truncate(bytes.len() / 2);
            }
        }
        let recorded = reply.as_ref().ok().cloned();
        self.log.push(Exchange { client: client.into(), request: request.to_vec(), reply: recorded });
        reply
    }
}

impl Wire {
    /// Every message that crossed, decoded.
    fn messages(&self) -> Vec<Message> {
        let bytes = self.log.iter().flat_map(|e| std::iter::once(&e.request).chain(e.reply.as_ref()));
        bytes.map(|b| Message::decode(b, &Device::Cpu).unwrap()).collect()
    }
}

const SIZES: [usize; 3] = [24, 32, 40];

/// Clients `site-0…` with the given faults, each wrapped in [`Faulty`].
fn clients(
    strategy: &StrategyConfig,
    dims: Dims,
    faults: &[(usize, usize, Fault)],
    run: Option<&Path>,
) -> Vec<ClientRuntime> {
    SIZES
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let own = faults.iter().filter(|f| f.0 == k).map(|f| (f.1, f.2)).collect();
            let trainer = Faulty { inner: Toy::new(strategy, dims, k, n), faults: own, round: 0 };
            let rt = ClientRuntime::new(&format!("site-{k}"), Box::new(trainer), strategy.clone(), ROOT_SEED).unwrap();
            match run {
                Some(dir) => rt.with_checkpoints(dir),
                None => rt,
            }
        })
        .collect()
}

/// A federated run of `rounds` rounds; returns the server and the recording transport.
fn federate(strategy: &StrategyConfig, dims: Dims, rounds: usize, faults: &[(usize, usize, Fault)]) -> (Server, Wire) {
    federate_with(strategy, dims, ServerConfig { rounds, ..Default::default() }, faults, None)
}

fn federate_with(
    strategy: &StrategyConfig,
    dims: Dims,
    config: ServerConfig,
    faults: &[(usize, usize, Fault)],
    truncate: Option<&str>,
) -> (Server, Wire) {
    let runtimes = clients(strategy, dims, faults, config.checkpoint_dir.as_deref());
    let initial = strategy.shared(&runtimes[0].trainer().state().unwrap());
    let mut server = Server::new(strategy.clone(), config, initial).unwrap();
    let mut wire =
        Wire { inner: InProcess::new(runtimes).unwrap(), log: Vec::new(), truncate: truncate.map(Into::into) };
    server.run(&mut wire, &mut |_| {}).unwrap();
    (server, wire)
}

fn config(name: &str) -> StrategyConfig {
    StrategyConfig::new(name.parse().unwrap())
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn unknown_strategy_name_lists_the_valid_ones() {
    let err = "fedprox".parse::<Strategy>().unwrap_err().to_string();
    assert!(err.contains("fedprox"), "{err}");
    for s in Strategy::ALL {
        assert!(err.contains(s.name()), "{err} lacks {s}");
        assert_eq!(s.name().parse::<Strategy>().unwrap(), s);
    }
}

#[test]
fn messages_encode_deterministically_and_corrupt_bytes_are_errors() {
    let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
    let tensors: NamedTensors = [("b".to_owned(), t(&[1.0, 2.0])), ("a".to_owned(), t(&[3.0]))].into();
    let message = Message::update(4, "site-1", 17, 0.25, tensors);
    let bytes = message.encode().unwrap();
    assert_eq!(bytes, message.encode().unwrap());
    let back = Message::decode(&bytes, &Device::Cpu).unwrap();
    assert_eq!(back.kind, MessageKind::Update { examples: 17, loss: 0.25 });
    assert_eq!((back.round, back.client.as_str()), (4, "site-1"));
    assert_eq!(values(&back.tensors["b"]), [1.0, 2.0]);

    for corrupt in [&bytes[..bytes.len() - 3], &bytes[..5], b"not a message at all".as_slice()] {
        let err = Message::decode(corrupt, &Device::Cpu).unwrap_err();
        assert!(matches!(err, FedError::Message { .. }), "{err}");
    }
    // A plain safetensors file without our metadata is refused, naming the key.
    let plain = safetensors::serialize([("x", t(&[1.0]))], None).unwrap();
    let err = Message::decode(&plain, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("format"), "{err}");
}

#[test]
fn every_strategy_learns() {
    for strategy in Strategy::ALL {
        let cfg = StrategyConfig::new(strategy);
        let server = if strategy.federates() {
            federate(&cfg, SMALL, 4, &[]).0
        } else {
            let mut runtimes = clients(&cfg, SMALL, &[], None);
            if strategy == Strategy::Central {
                // Pooled data: one client over all sites' examples.
                let pooled = Faulty { inner: Toy::new(&cfg, SMALL, 0, SIZES.iter().sum()), faults: vec![], round: 0 };
                runtimes = vec![ClientRuntime::new("pooled", Box::new(pooled), cfg.clone(), ROOT_SEED).unwrap()];
            }
            let mut server =
                Server::new(cfg.clone(), ServerConfig { rounds: 4, ..Default::default() }, NamedTensors::new())
                    .unwrap();
            server.run_isolated(&mut runtimes, &mut |_| {}).unwrap();
            server
        };
        let losses: Vec<f64> = server.records().iter().map(|r| r.mean_loss().unwrap()).collect();
        assert_eq!(losses.len(), 4);
        assert!(losses[3] < 0.8 * losses[0], "{strategy}: losses {losses:?}");
    }
}

#[test]
fn each_strategy_sends_only_what_it_shares() {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let head = ["head.bias", "head.weight"];
    let expected = [
        ("fedavg", names(&["fc1.bias", "fc1.weight", head[0], head[1]])),
        ("fedavg-lora", names(&["fc1.lora_global.a", "fc1.lora_global.b", head[0], head[1]])),
        ("ffa-lora", names(&["fc1.lora_global.b", head[0], head[1]])),
        ("fedsa-lora", names(&["fc1.lora_global.a", head[0], head[1]])),
        ("dual-lora", names(&["fc1.lora_global.a", "fc1.lora_global.b", head[0], head[1]])),
    ];
    for (name, shared) in expected {
        let (_, wire) = federate(&config(name), SMALL, 2, &[]);
        let messages = wire.messages();
        assert_eq!(messages.len(), 2 * 2 * SIZES.len(), "{name}");
        for m in &messages {
            let sent: BTreeSet<String> = m.tensors.keys().cloned().collect();
            assert_eq!(sent, shared, "{name}: {}", m.label());
            assert!(sent.iter().all(|n| !n.contains("lora_local")), "{name}: {}", m.label());
        }
    }
    // Without the head: dual-lora sends the global pair alone, never the frozen base.
    let cfg = StrategyConfig { share_head: false, ..config("dual-lora") };
    let (_, wire) = federate(&cfg, SMALL, 2, &[]);
    for m in wire.messages() {
        let sent: BTreeSet<String> = m.tensors.keys().cloned().collect();
        assert_eq!(sent, names(&["fc1.lora_global.a", "fc1.lora_global.b"]), "{}", m.label());
    }
    // local and central exchange nothing: no transport, zero bytes.
    for name in ["local", "central"] {
        let cfg = config(name);
        let mut runtimes = clients(&cfg, SMALL, &[], None);
        let mut server =
            Server::new(cfg.clone(), ServerConfig { rounds: 1, ..Default::default() }, NamedTensors::new()).unwrap();
        server.run_isolated(&mut runtimes, &mut |_| {}).unwrap();
        let log = server.comm_log();
        assert_eq!((log.bytes_down, log.bytes_up), (0, 0), "{name}");
        let err =
            Server::new(cfg.clone(), ServerConfig::default(), cfg.shared(&runtimes[0].trainer().state().unwrap()))
                .unwrap()
                .run(&mut InProcess::new(vec![]).unwrap(), &mut |_| {})
                .unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn byte_counts_equal_message_lengths_and_dual_lora_uploads_far_less_than_fedavg() {
    let dims = Dims { input: 64, hidden: 64, rank: 1 };
    let mut up_per_round = Vec::new();
    for name in ["fedavg", "dual-lora"] {
        let (server, wire) = federate(&config(name), dims, 2, &[]);
        let log = server.comm_log();
        let down: usize = wire.log.iter().map(|e| e.request.len()).sum();
        let up: usize = wire.log.iter().filter_map(|e| e.reply.as_ref()).map(Vec::len).sum();
        assert_eq!((log.bytes_down, log.bytes_up), (down as u64, up as u64), "{name}");
        for record in server.records() {
            for c in &record.clients {
                let e = wire
                    .log
                    .iter()
                    .find(|e| {
                        e.client == c.client && Message::decode(&e.request, &Device::Cpu).unwrap().round == record.round
                    })
                    .unwrap();
                assert_eq!(c.bytes_down, e.request.len() as u64);
                assert_eq!(c.bytes_up, e.reply.as_ref().unwrap().len() as u64);
            }
        }
        assert_eq!(log.clients.values().map(|t| t.bytes_up).sum::<u64>(), log.bytes_up);
        up_per_round.push(log.bytes_up / 2);
    }
    assert!(
        up_per_round[1] * 10 < up_per_round[0],
        "dual-lora {} B vs fedavg {} B per round",
        up_per_round[1],
        up_per_round[0]
    );
}

#[test]
fn failed_and_nan_clients_are_recorded_and_the_rest_aggregated() {
    // Round 2: site-1 drops out, site-2 sends NaN; site-0 alone makes the new global.
    let faults = [(1, 2, Fault::Error), (2, 2, Fault::NaN)];
    let (server, wire) = federate(&config("dual-lora"), SMALL, 2, &faults);
    let round2 = &server.records()[1];
    let kinds: Vec<(&str, FailureKind)> = round2.failures.iter().map(|f| (f.client.as_str(), f.kind)).collect();
    assert_eq!(kinds, [("site-1", FailureKind::Error), ("site-2", FailureKind::Rejected)]);
    assert!(round2.failures[0].detail.contains("offline"), "{:?}", round2.failures[0]);
    assert!(round2.failures[1].detail.contains("NaN"), "{:?}", round2.failures[1]);
    assert!(round2.kept.is_none());
    assert!(server.records()[0].failures.is_empty());
    let update = wire
        .messages()
        .into_iter()
        .find(|m| m.round == 2 && m.client == "site-0" && m.kind != MessageKind::Global)
        .unwrap();
    for (name, t) in server.global() {
        assert_eq!(values(t), values(&update.tensors[name]), "{name}");
    }
}

#[test]
fn below_quorum_the_previous_global_is_kept() {
    let cfg = StrategyConfig { min_clients: 3, ..config("fedavg-lora") };
    let (server, wire) = federate(&cfg, SMALL, 2, &[(0, 2, Fault::Error)]);
    let kept = server.records()[1].kept.as_deref().unwrap();
    assert!(kept.contains("quorum is 3") && kept.contains("site-0"), "{kept}");
    assert!(server.records()[0].kept.is_none());
    let sent = wire.messages().into_iter().find(|m| m.round == 2 && m.kind == MessageKind::Global).unwrap();
    for (name, t) in server.global() {
        assert_eq!(values(t), values(&sent.tensors[name]), "{name}");
    }
}

#[test]
fn late_and_corrupt_replies_do_not_count() {
    let config_with_timeout =
        ServerConfig { rounds: 1, round_timeout: Some(Duration::from_millis(400)), ..Default::default() };
    let slow = [(0, 1, Fault::Slow(Duration::from_millis(600)))];
    let (server, _) = federate_with(&config("ffa-lora"), SMALL, config_with_timeout, &slow, Some("site-2"));
    let record = &server.records()[0];
    let kinds: Vec<(&str, FailureKind)> = record.failures.iter().map(|f| (f.client.as_str(), f.kind)).collect();
    assert_eq!(kinds, [("site-0", FailureKind::Timeout), ("site-2", FailureKind::Rejected)]);
    assert!(record.failures[0].detail.contains("limit 0.400 s"), "{:?}", record.failures[0]);
    // The late reply crossed the wire, so its bytes count.
    assert!(record.clients[0].bytes_up > 0);
    assert!(record.kept.is_none());
}

#[test]
fn a_resumed_run_ends_bit_for_bit_like_an_uninterrupted_one() {
    for name in ["dual-lora", "local"] {
        let cfg = config(name);
        let run = |dir: &Path, rounds: usize| -> (NamedTensors, Vec<NamedTensors>, CommLog) {
            let server_cfg = ServerConfig { rounds, checkpoint_dir: Some(dir.into()), ..Default::default() };
            let runtimes = clients(&cfg, SMALL, &[(1, 2, Fault::Error)], Some(dir));
            let initial = if cfg.strategy.federates() {
                cfg.shared(&runtimes[0].trainer().state().unwrap())
            } else {
                NamedTensors::new()
            };
            let mut server = Server::new(cfg.clone(), server_cfg, initial).unwrap();
            let mut transport = InProcess::new(runtimes).unwrap();
            if cfg.strategy.federates() {
                server.run(&mut transport, &mut |_| {}).unwrap();
            } else {
                server.run_isolated(transport.runtimes_mut(), &mut |_| {}).unwrap();
            }
            let states = transport.runtimes().iter().map(|rt| rt.trainer().state().unwrap()).collect();
            (server.global().clone(), states, server.comm_log())
        };
        let whole = tempfile::tempdir().unwrap();
        let (global_a, states_a, log_a) = run(whole.path(), 3);
        let killed = tempfile::tempdir().unwrap();
        let (_, _, log_2) = run(killed.path(), 2); // everything in memory is dropped here
        assert_eq!(log_2.rounds.len(), 2);
        // Killed after the clients saved round 2 but before the server did: the server resumes from round 1 and
        // the clients from their round-1 state.
        let torn = tempfile::tempdir().unwrap();
        run(torn.path(), 2);
        std::fs::remove_dir_all(torn.path().join("server/round-0002")).unwrap();
        for dir in [killed.path(), torn.path()] {
            let (global_b, states_b, log_b) = run(dir, 3);
            assert_eq!(log_a, log_b, "{name}");
            assert_eq!(global_a.keys().collect::<Vec<_>>(), global_b.keys().collect::<Vec<_>>());
            for (n, t) in &global_a {
                assert_eq!(values(t), values(&global_b[n]), "{name}: global {n}");
            }
            for (a, b) in states_a.iter().zip(&states_b) {
                for (n, t) in a {
                    assert_eq!(values(t), values(&b[n]), "{name}: client tensor {n}");
                }
            }
        }
        // A fresh run differs from round 1 on, so the equality above is not vacuous.
        let fresh = tempfile::tempdir().unwrap();
        let (_, states_1, _) = run(fresh.path(), 1);
        assert_ne!(values(&states_1[0]["head.weight"]), values(&states_a[0]["head.weight"]), "{name}");
    }
}

#[test]
fn averaged_adam_moments_travel_with_fedavg_updates() {
    let cfg = StrategyConfig { average_moments: true, ..config("fedavg") };
    let (server, wire) = federate(&cfg, SMALL, 2, &[]);
    assert!(server.records().iter().all(|r| r.failures.is_empty()), "{:?}", server.records());
    let messages = wire.messages();
    let updates: Vec<&Message> = messages.iter().filter(|m| m.round == 1 && m.kind != MessageKind::Global).collect();
    assert_eq!(updates.len(), SIZES.len());
    let (params, moments) = Moments::split(&updates[0].tensors);
    assert_eq!(moments.first.keys().collect::<Vec<_>>(), params.keys().collect::<Vec<_>>());
    assert_eq!(moments.second.keys().collect::<Vec<_>>(), params.keys().collect::<Vec<_>>());
    // The round-2 global holds the size-weighted mean of the round-1 moments.
    let global2 = messages.iter().find(|m| m.round == 2 && m.kind == MessageKind::Global).unwrap();
    let total: f32 = SIZES.iter().sum::<usize>() as f32;
    for wire_name in Moments::wire_names(params.keys().map(String::as_str)) {
        let mut expected = vec![0f32; values(&global2.tensors[&wire_name]).len()];
        for (u, &n) in updates.iter().zip(&SIZES) {
            for (e, v) in expected.iter_mut().zip(values(&u.tensors[&wire_name])) {
                *e += v * n as f32 / total;
            }
        }
        for (e, g) in expected.iter().zip(values(&global2.tensors[&wire_name])) {
            assert!((e - g).abs() <= 1e-6 * (1.0 + e.abs()), "{wire_name}: {e} vs {g}");
        }
    }
}

#[test]
fn a_client_refuses_a_global_holding_its_private_tensors() {
    let cfg = config("dual-lora");
    let mut runtime = clients(&cfg, SMALL, &[], None).remove(0);
    let state = runtime.trainer().state().unwrap();
    let mut global = cfg.shared(&state);
    global.insert("fc1.lora_local.a".into(), state["fc1.lora_local.a"].clone());
    let err = runtime.handle(&Message::global(1, "site-0", global).encode().unwrap()).unwrap_err().to_string();
    assert!(err.contains("fc1.lora_local.a") && err.contains("dual-lora"), "{err}");
    let err = runtime.handle(&Message::global(1, "site-9", NamedTensors::new()).encode().unwrap()).unwrap_err();
    assert!(err.to_string().contains("site-0"), "{err}");
}

#[test]
fn aggregation_is_a_size_weighted_mean_and_respects_the_quorum() {
    use cmr_fed::federated::{check_update, Aggregation, ClientUpdate, Failure};
    // Prepare
    let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
    let update = |client: &str, examples, v: &[f32]| ClientUpdate {
        client: client.into(),
        examples,
        tensors: [("head.weight".to_owned(), t(v))].into(),
    };
    let updates = [update("a", 1, &[0.0, 8.0]), update("b", 3, &[4.0, 0.0])];
    let cfg = config("fedavg");
    // Execute
    let Aggregation::Updated(global) = cfg.aggregate(&updates, &[]).unwrap() else { panic!("kept") };
    // Assert: (1·0 + 3·4) / 4 = 3, (1·8 + 3·0) / 4 = 2
    assert_eq!(values(&global["head.weight"]), [3.0, 2.0]);

    let failure = Failure { client: "c".into(), kind: FailureKind::Timeout, detail: "slow".into() };
    let strict = StrategyConfig { min_clients: 3, ..cfg.clone() };
    let Aggregation::Kept(reason) = strict.aggregate(&updates, &[failure]).unwrap() else { panic!("aggregated") };
    assert!(reason.contains("2 valid") && reason.contains("c (timeout)"), "{reason}");

    let spec = cfg.update_spec(&global);
    assert_eq!(check_update(&spec, &updates[0].tensors).unwrap(), None);
    let wrong_shape: NamedTensors = [("head.weight".to_owned(), t(&[1.0]))].into();
    assert!(check_update(&spec, &wrong_shape).unwrap().unwrap().contains("head.weight"));
    let extra: NamedTensors =
        [("head.weight".to_owned(), t(&[1.0, 2.0])), ("fc1.lora_local.a".to_owned(), t(&[1.0]))].into();
    assert!(check_update(&spec, &extra).unwrap().unwrap().contains("fc1.lora_local.a"));
    let inf: NamedTensors = [("head.weight".to_owned(), t(&[1.0, f32::INFINITY]))].into();
    assert!(check_update(&spec, &inf).unwrap().unwrap().contains("inf"));
}

#[test]
fn strategy_rules_by_name() {
    let dual = config("dual-lora");
    assert!(dual.trains("blocks.5.attn.q.lora_local.b") && !dual.shares("blocks.5.attn.q.lora_local.b"));
    assert!(dual.shares("blocks.5.attn.q.lora_global.a") && !dual.trains("blocks.5.attn.q.weight"));
    let ffa = config("ffa-lora");
    assert!(!ffa.trains("fc1.lora_global.a") && ffa.trains("fc1.lora_global.b") && ffa.shares("head.weight"));
    let fedsa = config("fedsa-lora");
    assert!(
        fedsa.trains("fc1.lora_global.b") && !fedsa.shares("fc1.lora_global.b") && fedsa.shares("fc1.lora_global.a")
    );
    let local = config("local");
    assert!(local.trains("fc1.weight") && !local.shares("head.weight"));
    let err = StrategyConfig { average_moments: true, ..local }.validate().unwrap_err().to_string();
    assert!(err.contains("average-moments"), "{err}");
    let err = StrategyConfig { min_clients: 0, ..dual }.validate().unwrap_err().to_string();
    assert!(err.contains("min-clients"), "{err}");
}

#[test]
fn comm_log_round_trips_through_comm_json() {
    let (server, _) = federate(&config("dual-lora"), SMALL, 2, &[(2, 1, Fault::Error)]);
    let log = server.comm_log();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("comm.json");
    log.write(&path).unwrap();
    let back: CommLog = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, log);
    let summary = log.summary();
    assert!(summary.starts_with("dual-lora: 2 round(s), 3 client(s)") && summary.contains("1 failure(s)"), "{summary}");
}
