//! The op set. Each op has a shape rule (builder.rs), a VJP rule (vjp.rs), a Candle lowering
//! (candle_eval.rs) and an ONNX lowering (onnx.rs); adding an op means adding it to all four.

use super::{NodeId, Shape};

/// Element-wise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Neg,
    Silu,
    Sigmoid,
    Softplus,
    Tanh,
    Exp,
    Log,
    Sin,
    Cos,
    /// 1/√a (GroupNorm's inverse standard deviation).
    Rsqrt,
}

/// Element-wise functions of two tensors, with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// One node's operation. Arguments refer to earlier nodes, so node ids are a topological order.
#[derive(Clone, Debug)]
pub enum Op {
    /// A graph input bound at evaluation time (`x`, `t`).
    Input(String),
    /// A trainable parameter, bound by name (the safetensors key).
    Param(String),
    /// A constant with fixed shape, stored in f64 and cast to the evaluation type.
    Const {
        dims: Vec<usize>,
        data: Vec<f64>,
    },
    Unary(Unary, NodeId),
    Binary(Binary, NodeId, NodeId),
    /// Matrix product over the last two axes; leading axes must agree.
    MatMul(NodeId, NodeId),
    /// Axis permutation.
    Transpose(NodeId, Vec<usize>),
    /// Sum over the listed axes (sorted, unique).
    Sum {
        x: NodeId,
        axes: Vec<usize>,
        keepdim: bool,
    },
    /// Mean over the listed fixed-size axes.
    Mean {
        x: NodeId,
        axes: Vec<usize>,
        keepdim: bool,
    },
    /// Concatenation along a fixed-size axis.
    Concat(Vec<NodeId>, usize),
    /// `x[.., start..end, ..]` along one fixed-size axis.
    Slice {
        x: NodeId,
        axis: usize,
        start: usize,
        end: usize,
    },
    /// Zero padding along one axis (the VJP of `Slice`).
    Pad {
        x: NodeId,
        axis: usize,
        before: usize,
        after: usize,
    },
    /// Reshape to a shape with at most one batch dimension.
    Reshape(NodeId, Shape),
    /// Broadcast the first argument to the shape of the second (whose values are not used).
    ExpandLike(NodeId, NodeId),
    /// 2-D cross-correlation of `x` `[N, C, H, W]` with a kernel `w` `[O, C, k, k]`: square kernel,
    /// equal stride and zero padding on both spatial axes.
    Conv2d {
        x: NodeId,
        w: NodeId,
        stride: usize,
        pad: usize,
    },
    /// The adjoint of [`Op::Conv2d`] in `x`: `x` `[N, C, H, W]`, kernel `w` `[C, O, k, k]`; output
    /// extent `(H − 1)·stride − 2·pad + k + out_pad`.
    ConvTranspose2d {
        x: NodeId,
        w: NodeId,
        stride: usize,
        pad: usize,
        out_pad: usize,
    },
    /// The gradient of a stride-1 [`Op::Conv2d`] in its kernel: `Σ_{n,i,j} g[n,o,i,j]·x̃[n,c,i+a,j+b]`
    /// for `x` `[N, C, H, W]` zero-padded by `pad` into x̃ and `g` `[N, O, H', W']`; output
    /// `[O, C, k, k]`. With `transposed`, the gradient of the `[C, O, k, k]` kernel of the stride-1
    /// [`Op::ConvTranspose2d`] that reads `x` (a convolution of `x` with that kernel flipped in space and
    /// its channel axes swapped, padded by `pad`): the same sum, flipped and swapped back. Only
    /// training's parameter gradient uses it; it is not exported.
    Conv2dKernelGrad {
        x: NodeId,
        g: NodeId,
        pad: usize,
        k: usize,
        transposed: bool,
    },
}

impl Op {
    /// The nodes this op reads.
    pub fn args(&self) -> Vec<NodeId> {
        match self {
            Op::Input(_) | Op::Param(_) | Op::Const { .. } => vec![],
            Op::Unary(_, a) | Op::Transpose(a, _) | Op::Reshape(a, _) => vec![*a],
            Op::Sum { x, .. } | Op::Mean { x, .. } | Op::Slice { x, .. } | Op::Pad { x, .. } => {
                vec![*x]
            }
            Op::Binary(_, a, b) | Op::MatMul(a, b) | Op::ExpandLike(a, b) => vec![*a, *b],
            Op::Conv2d { x, w, .. } | Op::ConvTranspose2d { x, w, .. } => vec![*x, *w],
            Op::Conv2dKernelGrad { x, g, .. } => vec![*x, *g],
            Op::Concat(xs, _) => xs.clone(),
        }
    }

    /// This op with every argument `a` replaced by `f(a)`.
    pub fn map_args(&self, f: impl Fn(NodeId) -> NodeId) -> Op {
        let mut op = self.clone();
        match &mut op {
            Op::Input(_) | Op::Param(_) | Op::Const { .. } => {}
            Op::Unary(_, a) | Op::Transpose(a, _) | Op::Reshape(a, _) => *a = f(*a),
            Op::Sum { x, .. } | Op::Mean { x, .. } | Op::Slice { x, .. } | Op::Pad { x, .. } => {
                *x = f(*x)
            }
            Op::Binary(_, a, b) | Op::MatMul(a, b) | Op::ExpandLike(a, b) => {
                *a = f(*a);
                *b = f(*b);
            }
            Op::Conv2d { x, w, .. } | Op::ConvTranspose2d { x, w, .. } => {
                *x = f(*x);
                *w = f(*w);
            }
            Op::Conv2dKernelGrad { x, g, .. } => {
                *x = f(*x);
                *g = f(*g);
            }
            Op::Concat(xs, _) => xs.iter_mut().for_each(|a| *a = f(*a)),
        }
        op
    }
}
