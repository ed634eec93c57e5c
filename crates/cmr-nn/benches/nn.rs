//! CPU benchmark of the operations the UNet trains on (issue 3, item 2): forward and forward+backward of 3×3 conv2d,
//! attention, GroupNorm and a UNet-like block stack, each with candle 0.11.1's own kernels ("candle") and with
//! `cmr_nn::ops` ("cmr-nn"), f32, on candle's thread count (`RAYON_NUM_THREADS`, default: the physical cores), with
//! glibc told to keep freed memory (`ops::retain_freed_memory`).
//!
//! `cargo bench -p cmr-nn --bench nn [-- NAME…]` prints a table of median milliseconds (of the cases whose name
//! contains one of the NAMEs, if given). With `-- --json` it prints one JSON
//! object instead, which carries the case list (names and shapes) as well, so that `scripts/bench_nn_torch.py` runs
//! exactly the same cases in PyTorch; `scripts/bench-nn.sh` joins the two into a ratio table.

use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Device, Module, Result, Tensor, Var};
use cmr_nn::ops::{self, ConvParams};
use std::time::{Duration, Instant};

/// One benchmarked shape; serialised for the PyTorch twin, which dispatches on `op`.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// 3×3 conv, stride 1, padding 1, `c → c` channels, on `(b, c, s, s)`.
    Conv { b: usize, c: usize, s: usize },
    /// `softmax(q kᵀ / √d) v` on `(bh, t, d)` each.
    Attention { bh: usize, t: usize, d: usize },
    /// GroupNorm with `groups` groups and affine parameters on `(b, c, s, s)`.
    GroupNorm { b: usize, c: usize, s: usize, groups: usize },
    /// Two residual blocks `x + conv(silu(gn(conv(silu(gn(x))))))` (3×3 convs with bias, 32 groups) on `(b, c, s, s)`.
    Blocks { b: usize, c: usize, s: usize },
}

const CASES: [Case; 5] = [
    Case::Conv { b: 4, c: 64, s: 64 },
    Case::Conv { b: 8, c: 128, s: 32 },
    Case::Attention { bh: 8, t: 1024, d: 64 },
    Case::GroupNorm { b: 4, c: 64, s: 64, groups: 32 },
    Case::Blocks { b: 4, c: 64, s: 64 },
];

impl Case {
    fn name(&self) -> String {
        match *self {
            Case::Conv { b, c, s } => format!("conv2d 3x3 B{b} C{c} {s}x{s}"),
            Case::Attention { bh, t, d } => format!("attention BH{bh} T{t} D{d}"),
            Case::GroupNorm { b, c, s, groups } => format!("group_norm G{groups} B{b} C{c} {s}x{s}"),
            Case::Blocks { b, c, s } => format!("2 resblocks B{b} C{c} {s}x{s}"),
        }
    }

    fn json(&self) -> String {
        let fields = match *self {
            Case::Conv { b, c, s } => format!(r#""op":"conv2d","b":{b},"c":{c},"s":{s}"#),
            Case::Attention { bh, t, d } => format!(r#""op":"attention","bh":{bh},"t":{t},"d":{d}"#),
            Case::GroupNorm { b, c, s, groups } => {
                format!(r#""op":"group_norm","b":{b},"c":{c},"s":{s},"groups":{groups}"#)
            }
            Case::Blocks { b, c, s } => format!(r#""op":"blocks","b":{b},"c":{c},"s":{s}"#),
        };
        format!(r#"{{"name":"{}",{fields}}}"#, self.name())
    }
}

/// Which kernels a network is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    Candle,
    Cmr,
}

fn randn(shape: &[usize], std: f64) -> Result<Var> {
    Var::from_tensor(&Tensor::randn(0f32, std as f32, shape, &Device::Cpu)?)
}

fn conv(k: Kernels, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    match k {
        Kernels::Candle => x.conv2d(w, 1, 1, 1, 1),
        Kernels::Cmr => ops::conv2d(x, w, ConvParams { stride: 1, padding: 1, groups: 1 }),
    }
}

fn group_norm(k: Kernels, x: &Tensor, groups: usize, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    match k {
        Kernels::Candle => candle_nn::GroupNorm::new(weight.clone(), bias.clone(), x.dim(1)?, groups, 1e-5)?.forward(x),
        Kernels::Cmr => ops::group_norm(x, groups, weight, bias, 1e-5),
    }
}

fn attention(k: Kernels, q: &Tensor, kk: &Tensor, v: &Tensor) -> Result<Tensor> {
    match k {
        Kernels::Candle => {
            // Scaling q rather than the scores touches t·d elements instead of t².
            let scores = (q * (1.0 / (q.dim(2)? as f64).sqrt()))?.matmul(&kk.t()?)?;
            candle_nn::ops::softmax(&scores, 2)?.matmul(v)
        }
        // One head of d channels per (b·h) row: the fused op, forward and backward.
        Kernels::Cmr => ops::attention(q, kk, v, 1, None),
    }
}

/// Parameters of one residual block: two (GroupNorm weight, bias, conv weight, conv bias).
struct Block {
    layers: [(Var, Var, Var, Var); 2],
}

impl Block {
    fn new(c: usize) -> Result<Self> {
        let layer = || -> Result<_> {
            let std = (1.0 / (9 * c) as f64).sqrt();
            Ok((randn(&[c], 0.1)?, randn(&[c], 0.1)?, randn(&[c, c, 3, 3], std)?, randn(&[c], 0.1)?))
        };
        Ok(Self { layers: [layer()?, layer()?] })
    }

    fn forward(&self, k: Kernels, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (gn_w, gn_b, w, b) in &self.layers {
            h = match k {
                Kernels::Candle => {
                    let normed = group_norm(k, &h, 32, gn_w, gn_b)?.silu()?;
                    conv(k, &normed, w)?.broadcast_add(&b.reshape((1, (), 1, 1))?)?
                }
                Kernels::Cmr => {
                    let normed = ops::group_norm_silu(&h, 32, gn_w, gn_b, 1e-5)?;
                    ops::conv2d_biased(&normed, w, b, ConvParams { stride: 1, padding: 1, groups: 1 })?
                }
            };
        }
        x + h
    }
}

/// A forward pass over a case's inputs and parameters.
type Forward = Box<dyn Fn(&[Var]) -> Result<Tensor>>;

/// A case built with one set of kernels: inputs and parameters (all trainable) and the forward pass.
struct Net {
    vars: Vec<Var>,
    forward: Forward,
}

impl Net {
    fn new(case: Case, k: Kernels) -> Result<Self> {
        let net = match case {
            Case::Conv { b, c, s } => Net {
                vars: vec![randn(&[b, c, s, s], 1.0)?, randn(&[c, c, 3, 3], (1.0 / (9 * c) as f64).sqrt())?],
                forward: Box::new(move |v| conv(k, &v[0], &v[1])),
            },
            Case::Attention { bh, t, d } => Net {
                vars: vec![randn(&[bh, t, d], 1.0)?, randn(&[bh, t, d], 1.0)?, randn(&[bh, t, d], 1.0)?],
                forward: Box::new(move |v| attention(k, &v[0], &v[1], &v[2])),
            },
            Case::GroupNorm { b, c, s, groups } => Net {
                vars: vec![randn(&[b, c, s, s], 1.0)?, randn(&[c], 0.1)?, randn(&[c], 0.1)?],
                forward: Box::new(move |v| group_norm(k, &v[0], groups, &v[1], &v[2])),
            },
            Case::Blocks { b, c, s } => {
                let blocks = [Block::new(c)?, Block::new(c)?];
                let mut vars = vec![randn(&[b, c, s, s], 1.0)?];
                for block in &blocks {
                    for (a, b, c, d) in &block.layers {
                        vars.extend([a.clone(), b.clone(), c.clone(), d.clone()]);
                    }
                }
                Net {
                    vars,
                    forward: Box::new(move |v| {
                        blocks.iter().try_fold(v[0].as_tensor().clone(), |h, b| b.forward(k, &h))
                    }),
                }
            }
        };
        Ok(net)
    }

    fn forward(&self) -> Result<Tensor> {
        (self.forward)(&self.vars)
    }

    fn forward_backward(&self) -> Result<GradStore> {
        self.forward()?.sum_all()?.backward()
    }
}

/// Median wall time of `f` in milliseconds: one warm-up call, then at least 5 calls and up to 1 s or 50 calls.
fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let (start, mut samples) = (Instant::now(), Vec::new());
    while samples.len() < 5 || (start.elapsed() < Duration::from_secs(1) && samples.len() < 50) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

fn main() -> Result<()> {
    // As a training process would (`cmr_nn::ops::retain_freed_memory`); scripts/bench-nn.sh gives PyTorch the same.
    ops::retain_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    // `cargo bench` passes `--bench`; any other word filters cases by name, as test harnesses do.
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let cases: Vec<Case> = CASES
        .into_iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name().contains(f.as_str())))
        .collect();
    let threads = candle_core::utils::get_num_threads();
    let mut rows = Vec::new();
    for &case in &cases {
        let nets = [Net::new(case, Kernels::Candle)?, Net::new(case, Kernels::Cmr)?];
        for net in &nets {
            let grads = net.forward_backward()?;
            if net.vars.iter().any(|v| grads.get(v).is_none()) {
                bail!("{}: a parameter got no gradient", case.name());
            }
        }
        for pass in ["fwd", "fwd+bwd"] {
            let mut ms = [0.0; 2];
            for (slot, net) in ms.iter_mut().zip(&nets) {
                *slot = match pass {
                    "fwd" => median_ms(|| net.forward().map(drop))?,
                    _ => median_ms(|| net.forward_backward().map(drop))?,
                };
            }
            if !json {
                println!("{:<34} {:<8} candle {:>9.2} ms   cmr-nn {:>9.2} ms", case.name(), pass, ms[0], ms[1]);
            }
            rows.push(format!(
                r#"{{"name":"{}","pass":"{pass}","candle_ms":{},"cmr_ms":{}}}"#,
                case.name(),
                ms[0],
                ms[1]
            ));
        }
    }
    if json {
        let cases: Vec<String> = cases.iter().map(Case::json).collect();
        println!(r#"{{"threads":{threads},"cases":[{}],"results":[{}]}}"#, cases.join(","), rows.join(","));
    } else {
        println!("threads: {threads}; dtype: {:?}", DType::F32);
    }
    Ok(())
}
