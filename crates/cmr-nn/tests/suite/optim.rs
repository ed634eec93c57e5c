//! Optimisation (issue 3, item 4): AdamW against PyTorch, the warmup + cosine schedule against transformers, gradient
//! clipping against `clip_grad_norm_`, and resuming after a kill to the same result bit for bit.
//!
//! Reference values (scripts/setup-torch.sh --with-text; torch 2.15.0, transformers 5.23.0):
//! ```python
//! import torch
//! from transformers import get_cosine_schedule_with_warmup
//! p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
//! c = torch.tensor([0.3, -1.5, 2.0], dtype=torch.float64)
//! opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.01)
//! for step in range(3):
//!     opt.zero_grad(); (p * c * (step + 1)).sum().backward(); opt.step()
//!     print(step + 1, [f"{v:.12f}" for v in p.tolist()])
//! q = torch.nn.Parameter(torch.zeros(1)); sgd = torch.optim.SGD([q], lr=1.0)
//! s = get_cosine_schedule_with_warmup(sgd, 100, 1000)
//! lrs = []
//! for t in range(1001): lrs.append(s.get_last_lr()[0]); sgd.step(); s.step()
//! print({t: round(lrs[t], 12) for t in [0, 1, 50, 99, 100, 325, 550, 775, 999, 1000]})
//! g = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))]
//! g[0].grad = torch.tensor([3.0, 0.0]); g[1].grad = torch.tensor([4.0])
//! print(float(torch.nn.utils.clip_grad_norm_(g, 1.0)), g[0].grad.tolist(), g[1].grad.tolist())
//! ```

use std::collections::BTreeMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cmr_nn::checkpoint::{self, Checkpoint, LoadMode};
use cmr_nn::layers::{Linear, LinearConfig};
use cmr_nn::lora::{select_vars, AdapterConfig, LoraConfig, LoraLinear, ParamRole};
use cmr_nn::optim::{clip_grad_norm, AdamW, AdamWConfig, Ema, EmaConfig, LrSchedule, OptimError, ParamGroup};
use rand::{Rng, SeedableRng};

#[test]
fn adamw_matches_pytorch() {
    let p = Var::new(&[1.0f64, -2.0, 0.5], &Device::Cpu).unwrap();
    let c = Tensor::new(&[0.3f64, -1.5, 2.0], &Device::Cpu).unwrap();
    let group = ParamGroup::new(vec![("p".into(), p.clone())], 0.1, 0.01);
    let mut opt = AdamW::new(vec![group], AdamWConfig::default()).unwrap();
    let torch = [
        [0.899000003333, -1.898000000667, 0.399500000500],
        [0.801582802782, -1.799583798491, 0.302582298222],
        [0.704981099047, -1.701984092578, 0.206479593736],
    ];
    for (step, want) in torch.iter().enumerate() {
        let loss = p.mul(&c).unwrap().affine(step as f64 + 1.0, 0.).unwrap().sum_all().unwrap();
        let report = opt.step(&mut loss.backward().unwrap()).unwrap();
        assert_eq!(report.updated, 1);
        let got = p.to_vec1::<f64>().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-11, "step {}: got {got:?}, PyTorch {want:?}", step + 1);
        }
    }
    assert_eq!(opt.steps(), 3);
}

/// A weight's gradient is computed from the activations of its step (here the other variable `x`), so candle keeps
/// that step's graph in it; the moments carried to the next step must not, or every step's graph stays in memory
/// (a diffusion training run grew by ~0.7 GB a step before this was fixed).
#[test]
fn moments_do_not_keep_the_graph_of_the_step() {
    let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let x = Var::new(&[0.5f32, 3.0], &Device::Cpu).unwrap();
    let group = ParamGroup::new(vec![("w".into(), w.clone())], 0.1, 0.0);
    let mut opt = AdamW::new(vec![group], AdamWConfig::default()).unwrap();
    let mut grads = (w.as_tensor() * x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&w).unwrap().track_op(), "candle's gradient of w references x: the premise of this test");
    opt.step(&mut grads).unwrap();
    let (m, v) = opt.moments("w").unwrap();
    assert!(!m.track_op() && !v.track_op(), "the moments hold no graph");
}

#[test]
fn warmup_cosine_matches_transformers_at_key_steps() {
    let s = LrSchedule::WarmupCosine { warmup: 100, total: 1000, min_ratio: 0.0 };
    let transformers = [
        (0, 0.0),
        (1, 0.01),
        (50, 0.5),
        (99, 0.99),
        (100, 1.0),
        (325, 0.853553390593),
        (550, 0.5),
        (775, 0.146446609407),
        (999, 3.046171e-06),
        (1000, 0.0),
    ];
    for (t, want) in transformers {
        assert!((s.factor(t) - want).abs() < 1e-11, "step {t}: {} vs {want}", s.factor(t));
    }
    assert_eq!(s.factor(5000), 0.0, "held at the floor after the end");
    let floored = LrSchedule::WarmupCosine { warmup: 100, total: 1000, min_ratio: 0.1 };
    assert!((floored.factor(550) - 0.55).abs() < 1e-12);
    assert!((floored.factor(1000) - 0.1).abs() < 1e-12);
    assert_eq!(LrSchedule::Constant.factor(123), 1.0);

    // the optimizer applies the factor of the steps already taken
    let p = Var::new(&[0.0f32], &Device::Cpu).unwrap();
    let cfg = AdamWConfig { schedule: s, ..Default::default() };
    let mut opt = AdamW::new(vec![ParamGroup::new(vec![("p".into(), p.clone())], 2e-3, 0.0)], cfg).unwrap();
    assert_eq!(opt.lr(0), 0.0);
    for _ in 0..50 {
        opt.step(&mut p.sum_all().unwrap().backward().unwrap()).unwrap();
    }
    assert!((opt.lr(0) - 1e-3).abs() < 1e-15);
}

#[test]
fn clipping_matches_clip_grad_norm() {
    let a = Var::new(&[0.0f32, 0.0], &Device::Cpu).unwrap();
    let b = Var::new(&[0.0f32], &Device::Cpu).unwrap();
    let (ca, cb) = (Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap(), Tensor::new(&[4.0f32], &Device::Cpu).unwrap());
    let loss = (a.mul(&ca).unwrap().sum_all().unwrap() + b.mul(&cb).unwrap().sum_all().unwrap()).unwrap();
    let mut grads = loss.backward().unwrap();
    let norm = clip_grad_norm(&mut grads, [&a, &b], 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-12);
    let ga = grads.get(&a).unwrap().to_vec1::<f32>().unwrap();
    let gb = grads.get(&b).unwrap().to_vec1::<f32>().unwrap();
    assert!((ga[0] - 0.599_999_9).abs() < 1e-7 && ga[1] == 0.0, "{ga:?}");
    assert!((gb[0] - 0.799_999_83).abs() < 1e-7, "{gb:?}");
    // under the limit: untouched
    let norm = clip_grad_norm(&mut grads, [&a, &b], 10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-5);
    assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>().unwrap(), gb);
}

#[test]
fn parameters_without_gradient_are_not_updated_and_names_are_unique() {
    let (p, q) = (Var::new(&[1.0f32], &Device::Cpu).unwrap(), Var::new(&[1.0f32], &Device::Cpu).unwrap());
    let groups = vec![ParamGroup::new(vec![("p".into(), p.clone()), ("q".into(), q.clone())], 0.1, 0.1)];
    let mut opt = AdamW::new(groups, AdamWConfig::default()).unwrap();
    let report = opt.step(&mut p.sum_all().unwrap().backward().unwrap()).unwrap();
    assert_eq!(report.updated, 1);
    assert_eq!(q.to_vec1::<f32>().unwrap(), [1.0], "no gradient, no decay either (PyTorch)");
    assert_ne!(p.to_vec1::<f32>().unwrap(), [1.0]);

    let dup = vec![
        ParamGroup::new(vec![("p".into(), p.clone())], 0.1, 0.0),
        ParamGroup::new(vec![("p".into(), q)], 0.1, 0.0),
    ];
    let err = AdamW::new(dup, AdamWConfig::default()).unwrap_err();
    assert!(matches!(err, OptimError::DuplicateParam { ref name } if name == "p"), "{err}");
}

/// A tiny LoRA-adapted model: `head(tanh(lora(x)))`.
struct Model {
    lora: LoraLinear,
    head: Linear,
}

impl Model {
    fn new(varmap: &VarMap, seed: u64) -> Self {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
        let cfg = LoraConfig::dual(AdapterConfig { rank: 2, alpha: 4.0 }, seed);
        let lora = LoraLinear::new(vb.pp("enc"), 8, 6, cfg).unwrap();
        let head = Linear::new(vb.pp("head"), 6, 3, LinearConfig::default()).unwrap();
        Self { lora, head }
    }

    fn loss(&self, step: usize) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + step as u64);
        let x: Vec<f32> = (0..4 * 8).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = (0..4 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = Tensor::from_vec(x, (4, 8), &Device::Cpu).unwrap();
        let y = Tensor::from_vec(y, (4, 3), &Device::Cpu).unwrap();
        let out = self.head.forward(&self.lora.forward(&x).unwrap().tanh().unwrap()).unwrap();
        (out - y).unwrap().sqr().unwrap().mean_all().unwrap()
    }
}

struct Run {
    varmap: VarMap,
    model: Model,
    opt: AdamW,
    ema: Ema,
}

fn start(init_seed: u64) -> Run {
    let varmap = VarMap::new();
    // base and head stand for pre-trained weights, the same in every run (fresh ones come from candle's unseeded RNG); the
    // adapters keep their seeded init
    let model = Model::new(&varmap, init_seed);
    for (name, var) in cmr_nn::optim::named_vars(&varmap, |n| !n.contains("lora_")) {
        let n = var.elem_count();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7 + name.len()) % 13) as f32 / 13.0 - 0.5).collect();
        var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap()).unwrap();
    }
    let adapters =
        select_vars(&varmap, &[ParamRole::GlobalA, ParamRole::GlobalB, ParamRole::LocalA, ParamRole::LocalB], "head");
    let head = select_vars(&varmap, &[ParamRole::Head], "head");
    let trainable: Vec<(String, Var)> = adapters.iter().chain(&head).cloned().collect();
    let cfg = AdamWConfig {
        max_grad_norm: Some(0.5),
        schedule: LrSchedule::WarmupCosine { warmup: 2, total: 8, min_ratio: 0.1 },
        ..Default::default()
    };
    let opt = AdamW::new(vec![ParamGroup::new(adapters, 3e-2, 0.0), ParamGroup::new(head, 1e-2, 0.05)], cfg).unwrap();
    let ema = Ema::new(&trainable, EmaConfig { decay: 0.9 }).unwrap();
    Run { varmap, model, opt, ema }
}

impl Run {
    fn train(&mut self, from: usize, to: usize) {
        let trainable: Vec<(String, Var)> = self.opt.groups().iter().flat_map(|g| g.params.clone()).collect();
        for step in from..to {
            let mut grads = self.model.loss(step).backward().unwrap();
            self.opt.step(&mut grads).unwrap();
            self.ema.update(&trainable).unwrap();
        }
    }

    fn snapshot(&self) -> BTreeMap<String, Vec<u32>> {
        let bits =
            |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
        let mut out: BTreeMap<String, Vec<u32>> =
            cmr_nn::optim::named_vars(&self.varmap, |_| true).iter().map(|(n, v)| (n.clone(), bits(v))).collect();
        out.extend(self.ema.weights().iter().map(|(n, t)| (format!("ema.{n}"), bits(t))));
        out
    }
}

#[test]
fn resume_after_kill_equals_uninterrupted_run_bit_for_bit() {
    let (k, n) = (3, 8);
    let mut straight = start(1);
    straight.train(0, n);

    let dir = tempfile::tempdir().unwrap();
    let (model_file, opt_file, ema_file) = (
        dir.path().join("model.safetensors"),
        dir.path().join("adamw.safetensors"),
        dir.path().join("ema.safetensors"),
    );
    {
        let mut killed = start(1);
        killed.train(0, k);
        checkpoint::save_varmap(&model_file, &killed.varmap, &serde_json::json!({ "step": k })).unwrap();
        killed.opt.save_state(&opt_file).unwrap();
        killed.ema.save(&ema_file).unwrap();
    } // the process dies here

    // a fresh process: different adapter init, fresh optimizer and EMA, then everything restored from disk
    let mut resumed = start(99);
    let report =
        Checkpoint::load(&model_file, &Device::Cpu).unwrap().load_into(&resumed.varmap, LoadMode::Strict).unwrap();
    assert_eq!(report.loaded.len(), 8);
    resumed.opt.load_state(&opt_file).unwrap();
    resumed.ema.load(&ema_file).unwrap();
    assert_eq!(resumed.opt.steps(), k);
    resumed.train(k, n);

    let (want, got) = (straight.snapshot(), resumed.snapshot());
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
    for (name, w) in &want {
        assert_eq!(&got[name], w, "{name} differs from the uninterrupted run");
    }
    // and training moved the weights at all
    assert_ne!(start(1).snapshot()["head.weight"], want["head.weight"]);
}

#[test]
fn optimizer_state_for_other_parameters_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adamw.safetensors");
    let p = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let mut opt = AdamW::new(
        vec![ParamGroup::new(vec![("enc.lora_global.b".into(), p.clone())], 0.1, 0.0)],
        AdamWConfig::default(),
    )
    .unwrap();
    opt.step(&mut p.sum_all().unwrap().backward().unwrap()).unwrap();
    opt.save_state(&file).unwrap();

    let wide = Var::new(&[1.0f32, 2.0, 3.0], &Device::Cpu).unwrap();
    let mut other =
        AdamW::new(vec![ParamGroup::new(vec![("enc.lora_global.b".into(), wide)], 0.1, 0.0)], AdamWConfig::default())
            .unwrap();
    let err = other.load_state(&file).unwrap_err().to_string();
    assert!(err.contains("m.enc.lora_global.b (expected [3], got [2])"), "{err}");

    let renamed = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let mut other =
        AdamW::new(vec![ParamGroup::new(vec![("head.weight".into(), renamed)], 0.1, 0.0)], AdamWConfig::default())
            .unwrap();
    let err = other.load_state(&file).unwrap_err().to_string();
    assert!(err.contains("enc.lora_global.b, which is not a parameter"), "{err}");
}

#[test]
fn moments_set_from_another_optimizer_continue_its_trajectory() {
    // X steps with g1; Y (same start) steps with another gradient, then takes X's moments and value: the next step
    // with g2 must then give both the same parameters, as a federated client that loads averaged moments expects.
    let start = [0.4f64, -1.0, 2.0];
    let grad = |values: [f64; 3], p: &Var| {
        let c = Tensor::new(&values, &Device::Cpu).unwrap();
        (p.as_tensor() * c).unwrap().sum_all().unwrap().backward().unwrap()
    };
    let make = || {
        let p = Var::new(&start, &Device::Cpu).unwrap();
        let opt = AdamW::new(vec![ParamGroup::new(vec![("p".into(), p.clone())], 0.05, 0.01)], AdamWConfig::default());
        (p, opt.unwrap())
    };
    let (px, mut x) = make();
    let (py, mut y) = make();
    let (m0, v0) = y.moments("p").unwrap();
    assert_eq!(m0.to_vec1::<f64>().unwrap(), [0.0; 3], "zeros before the first update");
    assert_eq!(v0.to_vec1::<f64>().unwrap(), [0.0; 3]);
    x.step(&mut grad([1.0, -2.0, 0.5], &px)).unwrap();
    y.step(&mut grad([-3.0, 0.2, 1.0], &py)).unwrap();
    assert_ne!(
        x.moments("p").unwrap().0.to_vec1::<f64>().unwrap(),
        y.moments("p").unwrap().0.to_vec1::<f64>().unwrap()
    );
    let (m, v) = x.moments("p").unwrap();
    y.set_moments("p", m, v).unwrap();
    py.set(px.as_tensor()).unwrap();
    x.step(&mut grad([0.7, 0.7, -1.2], &px)).unwrap();
    y.step(&mut grad([0.7, 0.7, -1.2], &py)).unwrap();
    assert_eq!(px.as_tensor().to_vec1::<f64>().unwrap(), py.as_tensor().to_vec1::<f64>().unwrap());
    // unknown names and wrong shapes are refused, naming the parameter
    assert!(y.moments("q").unwrap_err().to_string().contains("q is not a parameter"));
    let wrong = Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap();
    assert!(y.set_moments("p", wrong.clone(), wrong).unwrap_err().to_string().contains("moments of p"));
}
