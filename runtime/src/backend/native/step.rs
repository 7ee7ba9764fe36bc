//! One planned operation: operands resolved to constants or buffers, shapes and loops fixed.

use std::sync::Arc;

use super::elementwise::{binary, unary, Binary, Unary};
use super::fused::{Fused, MAX_LEAVES};
use super::linear::{Conv2d, MatMul};
use super::reduce::{reduce, Reduce};
use super::walk::{copy, Walk};

/// Where a step reads a tensor: a constant of the plan, or a buffer of the run.
#[derive(Clone, Debug)]
pub(super) enum Operand {
    Konst(Arc<Vec<f32>>),
    Buffer(usize),
}

/// A planned operation writing one buffer.
#[derive(Clone, Debug)]
pub(super) enum Step {
    Unary {
        op: Unary,
        a: Operand,
    },
    Binary {
        op: Binary,
        a: Operand,
        b: Operand,
        walk: Walk<3>,
    },
    /// Copies of several sources into the output (transpose, slice, expand, pad, concat,
    /// gather); `fill` sets every output value first (pad).
    Copy {
        parts: Vec<(Operand, Walk<2>)>,
        fill: Option<f32>,
    },
    MatMul {
        a: Operand,
        b: Operand,
        plan: MatMul,
    },
    Conv {
        x: Operand,
        kernel: Operand,
        bias: Option<Operand>,
        geometry: Conv2d,
    },
    ConvTranspose {
        x: Operand,
        kernel: Operand,
        bias: Option<Operand>,
        geometry: Conv2d,
    },
    /// A 3×3 "same" convolution by Winograd's F(2×2, 3×3); `kernel` is the constant kernel
    /// already transformed ([`Conv2d::winograd_kernel`]).
    Winograd {
        x: Operand,
        kernel: Operand,
        bias: Option<Operand>,
        geometry: Conv2d,
    },
    /// A chain of elementwise operators in one pass, writing one buffer per value read outside
    /// the chain.
    Fused {
        leaves: Vec<Operand>,
        kernel: Fused,
    },
    /// A reduction, after an optional transpose of the input into the workspace.
    Reduce {
        op: Reduce,
        a: Operand,
        gather: Option<Walk<2>>,
        dims: (usize, usize, usize),
    },
}

/// The operands of a step, by shared or mutable reference (`iter`/`as_ref` or
/// `iter_mut`/`as_mut`): one list of which field holds what, for both.
macro_rules! operands {
    ($step:expr, $iter:ident, $as:ident) => {
        match $step {
            Step::Unary { a, .. } | Step::Reduce { a, .. } => vec![a],
            Step::Binary { a, b, .. } | Step::MatMul { a, b, .. } => vec![a, b],
            Step::Copy { parts, .. } => parts.$iter().map(|(o, _)| o).collect(),
            Step::Fused { leaves, .. } => leaves.$iter().collect(),
            Step::Conv {
                x, kernel, bias, ..
            }
            | Step::ConvTranspose {
                x, kernel, bias, ..
            }
            | Step::Winograd {
                x, kernel, bias, ..
            } => {
                let mut v = vec![x, kernel];
                v.extend(bias.$as());
                v
            }
        }
    };
}

impl Step {
    /// Every operand the step reads.
    pub fn operands(&self) -> Vec<&Operand> {
        operands!(self, iter, as_ref)
    }

    /// Every operand the step reads, to rename buffers.
    pub fn operands_mut(&mut self) -> Vec<&mut Operand> {
        operands!(self, iter_mut, as_mut)
    }

    /// Workspace floats the step needs besides its output.
    pub fn workspace(&self) -> usize {
        match self {
            Step::Conv { geometry, .. } => geometry.workspace(),
            Step::Winograd { geometry, .. } => geometry.winograd_workspace(),
            Step::ConvTranspose { geometry, .. } => {
                geometry.patch_rows() * geometry.ho * geometry.wo
            }
            Step::Reduce {
                gather: Some(w), ..
            } => w.len(),
            Step::Fused { kernel, .. } => kernel.workspace(),
            _ => 0,
        }
    }

    /// Computes the outputs (one, but for [`Step::Fused`]); `read` resolves operands.
    pub fn run<'a>(
        &'a self,
        read: &impl Fn(&'a Operand) -> &'a [f32],
        outs: &mut [Vec<f32>],
        work: &mut [f32],
    ) {
        if let Step::Fused { leaves, kernel } = self {
            let mut at: [&[f32]; MAX_LEAVES] = [&[]; MAX_LEAVES];
            for (slot, leaf) in at.iter_mut().zip(leaves) {
                *slot = read(leaf);
            }
            return kernel.run(&at[..leaves.len()], outs, work);
        }
        let out = outs[0].as_mut_slice();
        match self {
            Step::Fused { .. } => unreachable!("run above"),
            Step::Unary { op, a } => unary(*op, read(a), out),
            Step::Binary { op, a, b, walk } => binary(*op, walk, read(a), read(b), out),
            Step::Copy { parts, fill } => {
                if let Some(value) = fill {
                    out.fill(*value);
                }
                for (src, walk) in parts {
                    copy(walk, read(src), out);
                }
            }
            Step::MatMul { a, b, plan } => plan.run(read(a), read(b), out),
            Step::Conv {
                x,
                kernel,
                bias,
                geometry,
            } => geometry.forward(read(x), read(kernel), bias.as_ref().map(read), out, work),
            Step::ConvTranspose {
                x,
                kernel,
                bias,
                geometry,
            } => geometry.transpose(read(x), read(kernel), bias.as_ref().map(read), out, work),
            Step::Winograd {
                x,
                kernel,
                bias,
                geometry,
            } => geometry.winograd(read(x), read(kernel), bias.as_ref().map(read), out, work),
            Step::Reduce {
                op,
                a,
                gather,
                dims,
            } => match gather {
                None => reduce(*op, *dims, read(a), out),
                Some(walk) => {
                    let moved = &mut work[..walk.len()];
                    copy(walk, read(a), moved);
                    reduce(*op, *dims, moved, out);
                }
            },
        }
    }
}
