//! LoraLinear (issue 3, item 3): identity at init, merge equivalence, gradients only where trainable, finite-difference
//! gradients in f64, seeded initialisation, and the role/selector API strategies use.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cmr_nn::grad_check::{check, randomize, GradCheckConfig};
use cmr_nn::layers::{Linear, LinearConfig};
use cmr_nn::lora::{
    select_names, select_vars, Adapter, AdapterConfig, Factor, LoraConfig, LoraLinear, LoraScheme, ParamRole,
};
use rand::{Rng, SeedableRng};

const IN: usize = 6;
const OUT: usize = 5;

fn dual(rank: usize) -> LoraConfig {
    LoraConfig::dual(AdapterConfig { rank, alpha: 2.0 * rank as f64 }, 11)
}

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// Gives every B a non-zero value, as after some training.
fn train_b(varmap: &VarMap, seed: u64) {
    let vars = cmr_nn::optim::named_vars(varmap, |n| n.ends_with(".b"));
    for (i, (_, var)) in vars.iter().enumerate() {
        var.set(&randn(var.dims(), seed + i as u64, var.dtype())).unwrap();
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn layer(varmap: &VarMap, dtype: DType, cfg: LoraConfig) -> LoraLinear {
    let vb = VarBuilder::from_varmap(varmap, dtype, &Device::Cpu);
    LoraLinear::new(vb.pp("blocks.0.attn.qkv"), IN, OUT, cfg).unwrap()
}

#[test]
fn at_init_the_output_equals_the_base_exactly() {
    let varmap = VarMap::new();
    let lora = layer(&varmap, DType::F32, dual(4));
    // the plain layer over the same variables
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let base = Linear::new(vb.pp("blocks.0.attn.qkv"), IN, OUT, LinearConfig::default()).unwrap();
    let data = varmap.data().lock().unwrap();
    // A is random, B is zero
    assert!(data["blocks.0.attn.qkv.lora_global.a"].abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.);
    assert_eq!(
        data["blocks.0.attn.qkv.lora_local.b"].abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(),
        0.
    );
    drop(data);
    let x = randn(&[7, IN], 1, DType::F32);
    let want = base.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    let got = lora.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(got, want);
}

#[test]
fn merged_equals_unmerged_and_unmerge_restores() {
    let varmap = VarMap::new();
    let mut lora = layer(&varmap, DType::F32, dual(3));
    train_b(&varmap, 5);
    let x = randn(&[2, 4, IN], 2, DType::F32); // leading dims (b, tokens)
    let unmerged = lora.forward(&x).unwrap();
    lora.merge().unwrap();
    assert!(lora.is_merged());
    let merged = lora.forward(&x).unwrap();
    assert_eq!(merged.dims(), &[2, 4, OUT]);
    let diff = max_abs_diff(&merged, &unmerged);
    assert!(diff < 1e-6, "merged vs unmerged differ by {diff}");
    // the adapters changed the output, so the comparison is not vacuous
    lora.unmerge();
    let again = lora.forward(&x).unwrap();
    assert_eq!(
        again.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        unmerged.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let plain = Linear::new(vb.pp("blocks.0.attn.qkv"), IN, OUT, LinearConfig::default()).unwrap();
    assert!(max_abs_diff(&plain.forward(&x).unwrap(), &unmerged) > 1e-3);
}

fn grad_names(lora: &LoraLinear, varmap: &VarMap) -> Vec<String> {
    let x = randn(&[3, IN], 3, DType::F32);
    let loss = lora.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<String> = data.iter().filter(|(_, v)| grads.get(v).is_some()).map(|(n, _)| n.clone()).collect();
    names.sort();
    names
}

#[test]
fn gradients_reach_only_the_trainable_adapters() {
    let varmap = VarMap::new();
    let mut lora = layer(&varmap, DType::F32, dual(2));
    train_b(&varmap, 7);
    let p = |s: &str| format!("blocks.0.attn.qkv.{s}");
    let cases = [
        (LoraScheme::DualLora, vec![p("lora_global.a"), p("lora_global.b"), p("lora_local.a"), p("lora_local.b")]),
        (LoraScheme::Lora, vec![p("lora_global.a"), p("lora_global.b")]),
        (LoraScheme::FfaLora, vec![p("lora_global.b")]),
        (LoraScheme::FedSaLora, vec![p("lora_global.a"), p("lora_global.b")]),
    ];
    for (scheme, want) in cases {
        lora.apply_scheme(scheme);
        assert_eq!(lora.trainable_names(), want, "{scheme:?}: trainable names");
        assert_eq!(grad_names(&lora, &varmap), want, "{scheme:?}: variables with a gradient");
    }
    // a single switch; the base (weight, bias) never gets a gradient
    lora.apply_scheme(LoraScheme::DualLora);
    lora.set_trainable(Adapter::Local, Factor::A, false);
    assert_eq!(grad_names(&lora, &varmap), [p("lora_global.a"), p("lora_global.b"), p("lora_local.b")]);
    // merged: inference only, nothing trains
    lora.merge().unwrap();
    assert!(grad_names(&lora, &varmap).is_empty());
}

#[test]
fn finite_difference_gradients_f64() {
    let varmap = VarMap::new();
    let lora = layer(&varmap, DType::F64, dual(2));
    randomize(&varmap, 9, 0.5).unwrap(); // B non-zero, so A's gradient is not trivially zero
    let x = randn(&[2, 3, IN], 4, DType::F64); // leading dims (b, tokens)
    let report = check(&[x], &varmap, &GradCheckConfig::default(), |xs| lora.forward(&xs[0])).unwrap();
    let p = |s: &str| format!("blocks.0.attn.qkv.{s}");
    for name in ["input.0".to_string(), p("lora_global.a"), p("lora_global.b"), p("lora_local.a"), p("lora_local.b")] {
        let t = report.get(&name).unwrap();
        assert!(t.passed && !t.analytic_missing, "{name}:\n{report}");
    }
    // the base is frozen by construction: the output depends on it, but no gradient is recorded
    for name in [p("weight"), p("bias")] {
        let t = report.get(&name).unwrap();
        assert!(t.analytic_missing && t.max_abs_numeric > 0.0, "{name}:\n{report}");
    }
}

#[test]
fn a_is_seeded_kaiming_uniform_and_existing_variables_are_kept() {
    let a_of = |varmap: &VarMap, name: &str| {
        varmap.data().lock().unwrap()[name].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let (m1, m2) = (VarMap::new(), VarMap::new());
    layer(&m1, DType::F32, dual(4));
    layer(&m2, DType::F32, dual(4));
    let g = a_of(&m1, "blocks.0.attn.qkv.lora_global.a");
    assert_eq!(g, a_of(&m2, "blocks.0.attn.qkv.lora_global.a"), "same seed, same A");
    assert_ne!(g, a_of(&m1, "blocks.0.attn.qkv.lora_local.a"), "each pair has its own stream");
    let bound = 1.0 / (IN as f32).sqrt();
    assert!(g.iter().all(|v| v.abs() <= bound));
    let m3 = VarMap::new();
    layer(&m3, DType::F32, LoraConfig { seed: 12, ..dual(4) });
    assert_ne!(g, a_of(&m3, "blocks.0.attn.qkv.lora_global.a"), "another seed, another A");

    // building again over a VarMap that already holds the adapters (a resumed model) keeps their values
    train_b(&m1, 3);
    let trained = a_of(&m1, "blocks.0.attn.qkv.lora_global.b");
    m1.data().lock().unwrap()["blocks.0.attn.qkv.lora_global.a"]
        .set(&Tensor::ones((4, IN), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    layer(&m1, DType::F32, dual(4));
    assert_eq!(a_of(&m1, "blocks.0.attn.qkv.lora_global.a"), vec![1.0; 4 * IN]);
    assert_eq!(a_of(&m1, "blocks.0.attn.qkv.lora_global.b"), trained);
}

#[test]
fn roles_select_what_each_scheme_shares() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = dual(2);
    let lora = LoraLinear::new(vb.pp("blocks.1.mlp.fc1"), IN, OUT, cfg).unwrap();
    Linear::new(vb.pp("head"), OUT, 2, LinearConfig::default()).unwrap();
    Linear::new(vb.pp("patch_embed"), IN, IN, LinearConfig::default()).unwrap();

    let roles: Vec<ParamRole> = lora.var_names().iter().map(|(_, r)| *r).collect();
    assert_eq!(
        roles,
        [
            ParamRole::Base,
            ParamRole::Base,
            ParamRole::GlobalA,
            ParamRole::GlobalB,
            ParamRole::LocalA,
            ParamRole::LocalB
        ]
    );
    for (name, role) in lora.var_names() {
        assert_eq!(ParamRole::of(&name, "head"), role, "{name}");
    }
    assert_eq!(ParamRole::of("head.weight", "head"), ParamRole::Head);
    assert_eq!(ParamRole::of("header.weight", "head"), ParamRole::Base, "prefix match is by component");
    assert_eq!(ParamRole::of("cls.head.weight", "cls.head"), ParamRole::Head);

    let names: Vec<String> =
        select_vars(&varmap, &[ParamRole::Base, ParamRole::Head], "head").into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "blocks.1.mlp.fc1.bias",
            "blocks.1.mlp.fc1.weight",
            "head.bias",
            "head.weight",
            "patch_embed.bias",
            "patch_embed.weight"
        ]
    );

    let all: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    let shared = |s: LoraScheme| select_names(all.iter().map(String::as_str), s.shared_roles(), "head");
    let p = |s: &str| format!("blocks.1.mlp.fc1.{s}");
    assert_eq!(shared(LoraScheme::DualLora), [p("lora_global.a"), p("lora_global.b")]);
    assert_eq!(shared(LoraScheme::Lora), [p("lora_global.a"), p("lora_global.b")]);
    assert_eq!(shared(LoraScheme::FfaLora), [p("lora_global.b")]);
    assert_eq!(shared(LoraScheme::FedSaLora), [p("lora_global.a")]);
    assert!(LoraScheme::DualLora.uses_local() && !LoraScheme::FedSaLora.uses_local());
}

#[test]
fn wrapping_a_pretrained_linear_keeps_its_names_and_output() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let base = Linear::new(vb.pp("proj"), IN, OUT, LinearConfig { bias: false }).unwrap();
    let lora = LoraLinear::with_base(vb.pp("proj"), base.clone(), LoraConfig::default()).unwrap();
    let names: Vec<String> = lora.var_names().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["proj.weight", "proj.lora_global.a", "proj.lora_global.b"]);
    assert!(!lora.has(Adapter::Local));
    let x = randn(&[2, IN], 8, DType::F32);
    assert_eq!(
        lora.forward(&x).unwrap().to_vec2::<f32>().unwrap(),
        base.forward(&x).unwrap().to_vec2::<f32>().unwrap()
    );
    assert!(LoraLinear::new(
        vb.pp("bad"),
        IN,
        OUT,
        LoraConfig { global: Some(AdapterConfig { rank: 0, alpha: 1.0 }), ..LoraConfig::default() }
    )
    .is_err());
}
