//! Convolution as im2col and matrix products, with its own backward pass, for training on
//! the CPU backend.
//!
//! burn-flex computes a convolution's weight gradient as a `conv2d` over a transposed
//! view, which it first copies element by element, and its input gradient as a direct
//! transposed convolution: together 30% of a training step in the profile of docs/results.md. Here
//! the forward pass copies the input's `k*k` shifted windows into columns
//! `[N, C*k*k, H*W]` (im2col) and multiplies them by the weights `[O, C*k*k]`, which gives
//! the output in `[N, O, H, W]` order; the backward pass is two matrix products over the
//! same columns (weight gradient `dY * cols^T`, column gradient `W^T * dY`) and the sum of
//! the column gradient back into the input's pixels (col2im). It is an operation of
//! burn-autodiff over burn-flex ([`Backward`]), so burn's optimisers see ordinary
//! gradients. Other backends, and convolutions with strides, dilation, groups or no bias,
//! run burn's own convolution. Tested against burn's, forward and gradients.

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{TensorData, TensorPrimitive};

use crate::backend::{Cpu, CpuTrain};

/// Whether the environment variable `FMNIST_BURN_CONV` is set (to any value): then
/// training uses burn's own convolution, to compare speed or results.
fn burn_conv_asked() -> bool {
    static ASKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ASKED.get_or_init(|| std::env::var_os("FMNIST_BURN_CONV").is_some())
}

/// Whether [`forward`] runs `conv` as im2col and matrix products: training on the CPU
/// backend, stride 1, dilation 1, one group, explicit padding and a bias, unless
/// `FMNIST_BURN_CONV` is set.
pub fn supported<B: Backend>(conv: &Conv2d<B>) -> bool {
    gemm_parts(conv).is_some()
}

/// The padding and bias of a `conv` that [`supported`] accepts.
fn gemm_parts<B: Backend>(conv: &Conv2d<B>) -> Option<(Padding, &Param<Tensor<B, 1>>)> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return None;
    };
    let accepted = TypeId::of::<B>() == TypeId::of::<CpuTrain>()
        && !burn_conv_asked()
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1;
    if !accepted {
        return None;
    }
    let padding = Padding {
        top,
        left,
        bottom,
        right,
    };
    Some((padding, conv.bias.as_ref()?))
}

/// `conv.forward(x)`: as im2col and matrix products where [`supported`], otherwise burn's.
pub fn forward<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let Some((padding, bias)) = gemm_parts(conv) else {
        return conv.forward(x);
    };
    let out = gemm_conv(
        same_type::<_, Tensor<CpuTrain, 4>>(x),
        same_type(conv.weight.val()),
        same_type(bias.val()),
        padding,
    );
    same_type(out)
}

/// `value` as `U`, which [`gemm_parts`] found to be its own type.
fn same_type<T: 'static, U: 'static>(value: T) -> U {
    match (Box::new(value) as Box<dyn Any>).downcast::<U>() {
        Ok(value) => *value,
        Err(_) => unreachable!("checked by gemm_parts()"),
    }
}

#[derive(Debug, Clone, Copy)]
struct Padding {
    top: usize,
    left: usize,
    bottom: usize,
    right: usize,
}

/// The geometry of one convolution: input `[n, c, h, w]`, kernel `kh x kw`, output
/// `oh x ow`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    padding: Padding,
}

impl Geometry {
    /// The geometry of input `[n, c, h, w]` under weights `[o, c, kh, kw]`.
    fn new([n, c, h, w]: [usize; 4], [_, _, kh, kw]: [usize; 4], padding: Padding) -> Self {
        Geometry {
            n,
            c,
            h,
            w,
            kh,
            kw,
            oh: h + padding.top + padding.bottom + 1 - kh,
            ow: w + padding.left + padding.right + 1 - kw,
            padding,
        }
    }

    /// Rows of the column matrix: `c * kh * kw`.
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// For column-matrix row `(channel, i, j)` and output row `oy`: the input row, and the
    /// output columns `ox` whose input column `ox + j - left` is inside the image.
    fn span(&self, i: usize, j: usize, oy: usize) -> Option<(usize, std::ops::Range<usize>)> {
        let iy = (oy + i)
            .checked_sub(self.padding.top)
            .filter(|&y| y < self.h)?;
        let first = self.padding.left.saturating_sub(j);
        let last = (self.w + self.padding.left).saturating_sub(j).min(self.ow);
        (first < last).then_some((iy, first..last))
    }

    /// Calls `copy(column_row_offset, input_offset, len)` for every contiguous run of the
    /// column matrix of image `b` that comes from the input, in order.
    fn runs(&self, b: usize, mut copy: impl FnMut(usize, usize, usize)) {
        let hw = self.oh * self.ow;
        for ch in 0..self.c {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = (b * self.rows() + (ch * self.kh + i) * self.kw + j) * hw;
                    for oy in 0..self.oh {
                        if let Some((iy, xs)) = self.span(i, j, oy) {
                            let ix = xs.start + j - self.padding.left;
                            let input = ((b * self.c + ch) * self.h + iy) * self.w + ix;
                            copy(row + oy * self.ow + xs.start, input, xs.len());
                        }
                    }
                }
            }
        }
    }
}

fn floats<const D: usize>(tensor: Tensor<Cpu, D>) -> Vec<f32> {
    tensor
        .into_data()
        .into_vec::<f32>()
        .unwrap_or_else(|e| unreachable!("the trainer's tensors are f32: {e:?}"))
}

/// im2col: `[n, c, h, w]` -> `[n, c*kh*kw, oh*ow]`, zeros where a window leaves the image.
fn columns(x: Tensor<Cpu, 4>, g: &Geometry) -> Tensor<Cpu, 3> {
    let device = x.device();
    let input = floats(x);
    let mut cols = vec![0f32; g.n * g.rows() * g.oh * g.ow];
    for b in 0..g.n {
        g.runs(b, |to, from, len| {
            cols[to..to + len].copy_from_slice(&input[from..from + len])
        });
    }
    Tensor::from_data(TensorData::new(cols, [g.n, g.rows(), g.oh * g.ow]), &device)
}

/// col2im: the column gradient `[n, c*kh*kw, oh*ow]` summed back into `[n, c, h, w]`.
fn uncolumns(cols: Tensor<Cpu, 3>, g: &Geometry) -> Tensor<Cpu, 4> {
    let device = cols.device();
    let cols = floats(cols);
    let mut input = vec![0f32; g.n * g.c * g.h * g.w];
    for b in 0..g.n {
        g.runs(b, |from, to, len| {
            for (x, c) in input[to..to + len].iter_mut().zip(&cols[from..from + len]) {
                *x += c;
            }
        });
    }
    Tensor::from_data(TensorData::new(input, [g.n, g.c, g.h, g.w]), &device)
}

/// The backward step: the columns and weights of the forward pass.
#[derive(Debug)]
struct GemmConv;

impl Backward<Cpu, 3> for GemmConv {
    type State = (FloatTensor<Cpu>, FloatTensor<Cpu>, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let (cols, weight, g) = ops.state;
        let cols = Tensor::<Cpu, 3>::from_primitive(TensorPrimitive::Float(cols));
        let weight = Tensor::<Cpu, 4>::from_primitive(TensorPrimitive::Float(weight));
        let o = weight.dims()[0];
        let out_grad = Tensor::<Cpu, 4>::from_primitive(TensorPrimitive::Float(
            grads.consume::<Cpu>(&ops.node),
        ))
        .reshape([g.n, o, g.oh * g.ow]);
        let primitive = |t: Tensor<Cpu, 4>| t.into_primitive().tensor();
        if let Some(node) = node_bias {
            let grad = out_grad.clone().sum_dim(2).sum_dim(0).reshape([o]);
            grads.register::<Cpu>(node.id, grad.into_primitive().tensor());
        }
        if let Some(node) = node_weight {
            let grad = out_grad
                .clone()
                .matmul(cols.swap_dims(1, 2))
                .sum_dim(0)
                .reshape([o, g.c, g.kh, g.kw]);
            grads.register::<Cpu>(node.id, primitive(grad));
        }
        if let Some(node) = node_x {
            let col_grad = weight
                .reshape([1, o, g.rows()])
                .swap_dims(1, 2)
                .matmul(out_grad);
            grads.register::<Cpu>(node.id, primitive(uncolumns(col_grad, &g)));
        }
    }
}

/// The convolution on the training backend, recorded for [`GemmConv`]'s backward pass.
fn gemm_conv(
    x: Tensor<CpuTrain, 4>,
    weight: Tensor<CpuTrain, 4>,
    bias: Tensor<CpuTrain, 1>,
    padding: Padding,
) -> Tensor<CpuTrain, 4> {
    let g = Geometry::new(x.dims(), weight.dims(), padding);
    let o = weight.dims()[0];
    let (x, weight, bias) = (
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    );
    let inner = |t: FloatTensor<Cpu>| Tensor::<Cpu, 4>::from_primitive(TensorPrimitive::Float(t));
    let weight_inner = inner(weight.primitive.clone());
    let bias_inner =
        Tensor::<Cpu, 1>::from_primitive(TensorPrimitive::Float(bias.primitive.clone()));
    let cols = columns(inner(x.primitive.clone()), &g);
    let out = weight_inner
        .clone()
        .reshape([1, o, g.rows()])
        .matmul(cols.clone())
        .reshape([g.n, o, g.oh, g.ow])
        // `[N, O, 1, 1]`: the per-channel broadcast burn-flex runs on its fast path.
        + bias_inner.reshape([1, o, 1, 1]).repeat_dim(0, g.n);
    let out = out.into_primitive().tensor();
    let result = match GemmConv
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            (
                cols.into_primitive().tensor(),
                weight_inner.into_primitive().tensor(),
                g,
            ),
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    fn max_difference<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    fn max_abs<const D: usize>(a: Tensor<Flex, D>) -> f32 {
        a.abs().max().into_scalar()
    }

    /// Forward, input gradient, weight gradient and bias gradient of both convolutions on
    /// the same random input, with the loss weighted by a random tensor so that every
    /// output element's gradient differs.
    fn compare(channels: [usize; 2], kernel: usize, padding: usize, bias: bool, side: usize) {
        let device = Default::default();
        let conv: Conv2d<B> = Conv2dConfig::new(channels, [kernel, kernel])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(bias)
            .init(&device);
        assert_eq!(supported(&conv), bias);
        let input = Tensor::<Flex, 4>::random(
            [3, channels[0], side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let side_out = side + 2 * padding + 1 - kernel;
        let loss_weights = Tensor::<Flex, 4>::random(
            [3, channels[1], side_out, side_out],
            Distribution::Uniform(-1.0, 1.0),
            &device,
        );
        let run = |ours: bool| {
            let x = Tensor::<B, 4>::from_inner(input.clone()).require_grad();
            let out = if ours {
                forward(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            let loss = (out.clone() * Tensor::from_inner(loss_weights.clone())).sum();
            let grads = loss.backward();
            let input_grad = x.grad(&grads).expect("input gradient");
            let weight_grad = conv.weight.grad(&grads).expect("weight gradient");
            let bias_grad = conv
                .bias
                .as_ref()
                .map(|b| b.grad(&grads).expect("bias gradient"));
            (out.inner(), input_grad, weight_grad, bias_grad)
        };
        let theirs = run(false);
        let ours = run(true);
        assert_eq!(ours.0.dims(), theirs.0.dims());
        let scale = max_abs(theirs.0.clone());
        let checks = [
            ("output", max_difference(ours.0, theirs.0), scale),
            (
                "input gradient",
                max_difference(ours.1, theirs.1.clone()),
                max_abs(theirs.1),
            ),
            (
                "weight gradient",
                max_difference(ours.2, theirs.2.clone()),
                max_abs(theirs.2),
            ),
        ];
        for (what, difference, scale) in checks {
            assert!(
                difference <= 1e-5 * scale.max(1.0),
                "{channels:?} k{kernel} p{padding}: {what} differs by {difference} (scale {scale})"
            );
        }
        if let (Some(ours), Some(theirs)) = (ours.3, theirs.3) {
            let scale = max_abs(theirs.clone());
            let difference = max_difference(ours, theirs);
            assert!(
                difference <= 1e-5 * scale.max(1.0),
                "bias gradient differs by {difference}"
            );
        }
    }

    #[test]
    fn the_gemm_convolution_equals_burns_forward_and_gradients() {
        // edge's first and a middle layer, the notebook CNN's unpadded 5x5 layers, and an
        // odd shape without bias.
        compare([1, 16], 3, 1, true, 28);
        compare([32, 32], 3, 1, true, 14);
        compare([1, 10], 5, 0, true, 28);
        compare([10, 20], 5, 0, true, 24);
        compare([3, 5], 3, 2, true, 9);
    }

    #[test]
    fn other_convolutions_are_left_to_burn() {
        let device = Default::default();
        compare([3, 4], 3, 1, false, 7);
        let strided: Conv2d<B> = Conv2dConfig::new([2, 4], [3, 3])
            .with_stride([2, 2])
            .init(&device);
        assert!(!supported(&strided));
        let unpadded: Conv2d<Flex> = Conv2dConfig::new([2, 4], [3, 3]).init(&device);
        assert!(!supported(&unpadded));
        let x = Tensor::<B, 4>::random([1, 2, 9, 9], Distribution::Normal(0.0, 1.0), &device);
        let difference = max_difference(
            forward(&strided, x.clone()).inner(),
            strided.forward(x).inner(),
        );
        assert_eq!(difference, 0.0);
    }
}
