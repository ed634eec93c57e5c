//! The 2D convolution as three candle `CustomOp2`s over the kernels of [`super::winograd`] (3×3, stride 1) and
//! [`super::im2col`] (everything else): the forward convolution and its two adjoints. Each one's backward is built
//! from the three, so gradients of any order flow:
//!
//! ```text
//! Conv       (x, w)  → y     ∂x = GradInput(dy, w)      ∂w = GradWeight(x, dy)
//! GradInput  (dy, w) → dx    ∂dy = Conv(g, w)           ∂w = GradWeight(g, dy)
//! GradWeight (x, dy) → dw    ∂x = GradInput(dy, g)      ∂dy = Conv(x, g)
//! ```
//!
//! (`g` is the incoming gradient; every line follows from `⟨Conv(x, w), dy⟩` being one trilinear form.)
//! A convolution with a bias is a fourth op, [`BiasedConv`] `(x, w, β) → Conv(x, w) + β`, with `β` one value per
//! image and output channel: its gradients are those of `Conv` and, for `β`, the per-image channel sums of `g`.
//!
//! The ops run on CPU only, for f32 and f64, on contiguous tensors; [`super::conv2d`] routes everything else to
//! candle's own convolution.

use super::cpu::{self, Float, Kernel};
use super::im2col::{self, Geometry};
use super::winograd;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// `x ⊛ w [+ bias]` by Winograd's F(2×2, 3×3) where it applies (3×3, stride 1), else by im2col + gemm.
fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    if winograd::applies(g) {
        winograd::forward(g, x, w, bias)
    } else {
        im2col::forward(g, x, w, bias)
    }
}

/// Which member of the convolution family an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `(x, w) → y`.
    Conv,
    /// `(dy, w) → dx`.
    GradInput,
    /// `(x, dy) → dw`.
    GradWeight,
}

/// One member of the convolution family for one fixed geometry.
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    kind: Kind,
    geom: Geometry,
}

impl ConvOp {
    /// Shapes of the op's two operands and its result.
    fn shapes(&self) -> [Shape; 3] {
        let g = &self.geom;
        let x = Shape::from((g.b, g.c_in, g.h, g.w));
        let w = Shape::from((g.c_out, g.c_in / g.groups, g.k_h, g.k_w));
        let y = Shape::from((g.b, g.c_out, g.h_out(), g.w_out()));
        match self.kind {
            Kind::Conv => [x, w, y],
            Kind::GradInput => [y, w, x],
            Kind::GradWeight => [x, y, w],
        }
    }
}

impl Kernel for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Conv => "cmr-conv2d",
            Kind::GradInput => "cmr-conv2d-grad-input",
            Kind::GradWeight => "cmr-conv2d-grad-weight",
        }
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let (a, b) = (operands[0], operands[1]);
        match self.kind {
            Kind::Conv => forward(&self.geom, a, b, None),
            Kind::GradInput if winograd::applies(&self.geom) => winograd::grad_input(&self.geom, a, b),
            Kind::GradInput => im2col::grad_input(&self.geom, a, b),
            Kind::GradWeight if winograd::applies(&self.geom) => winograd::grad_weight(&self.geom, a, b),
            Kind::GradWeight => im2col::grad_weight(&self.geom, a, b),
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let [a, b, out] = self.shapes();
        Ok((cpu::run(self, &[(s1, l1, &a), (s2, l2, &b)])?, out))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        use Kind::*;
        let (ga, gb) = match self.kind {
            Conv => ((GradInput, g, b), (GradWeight, a, g)),
            GradInput => ((Conv, g, b), (GradWeight, g, a)),
            GradWeight => ((GradInput, b, g), (Conv, a, g)),
        };
        let grad = |tracked: &Tensor, (kind, l, r): (Kind, &Tensor, &Tensor)| {
            tracked.track_op().then(|| apply(kind, self.geom, l, r)).transpose()
        };
        Ok((grad(a, ga)?, grad(b, gb)?))
    }
}

/// Applies the op of `kind` for `geom` to `(a, b)`, recording it for backprop; `a` and `b` must be f32 or f64 CPU
/// tensors of one dtype, shaped as `kind` expects for `geom`.
pub(super) fn apply(kind: Kind, geom: Geometry, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, ConvOp { kind, geom })
}

/// `(x, w, β (b, c_out)) → x ⊛ w + β`: the convolution with its bias (and, in a ResNet block, the time embedding)
/// added in the same pass, so the sum is one graph node instead of two or three.
struct BiasedConv(Geometry);

impl Kernel for BiasedConv {
    fn name(&self) -> &'static str {
        "cmr-conv2d-biased"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        forward(&self.0, operands[0], operands[1], Some(operands[2]))
    }
}

impl CustomOp3 for BiasedConv {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [x, w, y] = ConvOp { kind: Kind::Conv, geom: self.0 }.shapes();
        let bias = Shape::from((self.0.b, self.0.c_out));
        Ok((cpu::run(self, &[(s1, l1, &x), (s2, l2, &w), (s3, l3, &bias)])?, y))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = ConvOp { kind: Kind::Conv, geom: self.0 }.bwd(x, w, y, g)?;
        let dbias = bias.track_op().then(|| super::bias::sum_planes(g)).transpose()?;
        Ok((dx, dw, dbias))
    }
}

/// `x ⊛ w + β` for f32/f64 CPU tensors of one dtype shaped for `geom`, `β` `(b, c_out)`, recording it for backprop.
pub(super) fn apply_biased(geom: Geometry, x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, BiasedConv(geom))
}
