//! The Candle backend: evaluates graph nodes as Candle tensors, so Candle's autograd can
//! differentiate any node (including explicit gradient nodes) with respect to parameters.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::shape::show;
use super::{Binary, Dim, Graph, GraphError, NodeId, Op, Unary};

/// Tensors bound to a graph's inputs and parameters for one evaluation.
pub struct Bindings<'a> {
    /// Graph inputs by name (`x`, `t`).
    pub inputs: HashMap<String, Tensor>,
    /// Parameters by name; pass `Var`s' tensors so `backward()` reaches them.
    pub params: &'a HashMap<String, Tensor>,
}

/// Evaluates `targets` (and whatever they need) and returns their values in order.
///
/// All tensors are computed in `dtype` on `device`; constants are cast to it.
pub fn eval(
    graph: &Graph,
    bindings: &Bindings<'_>,
    targets: &[NodeId],
    dtype: DType,
    device: &Device,
) -> Result<Vec<Tensor>, GraphError> {
    let Some(last) = targets.iter().map(|t| t.index()).max() else {
        return Ok(vec![]);
    };
    let mut needed = vec![false; last + 1];
    for t in targets {
        needed[t.index()] = true;
    }
    for i in (0..=last).rev() {
        if needed[i] {
            for a in graph.nodes()[i].op.args() {
                needed[a.index()] = true;
            }
        }
    }
    let mut values: Vec<Option<Tensor>> = vec![None; last + 1];
    let mut batch: Option<usize> = None;
    for i in 0..=last {
        if !needed[i] {
            continue;
        }
        let node = &graph.nodes()[i];
        let v = |id: &NodeId| {
            values[id.index()]
                .as_ref()
                .expect("arguments precede their users")
        };
        let value = match &node.op {
            Op::Input(name) => {
                let t = bindings
                    .inputs
                    .get(name)
                    .ok_or_else(|| GraphError::MissingBinding {
                        kind: "input",
                        name: name.clone(),
                    })?;
                check_binding("input", name, t, &node.shape, &mut batch)?;
                t.to_dtype(dtype)?
            }
            Op::Param(name) => {
                let t = bindings
                    .params
                    .get(name)
                    .ok_or_else(|| GraphError::MissingBinding {
                        kind: "parameter",
                        name: name.clone(),
                    })?;
                check_binding("parameter", name, t, &node.shape, &mut batch)?;
                if t.dtype() == dtype {
                    t.clone()
                } else {
                    t.to_dtype(dtype)?
                }
            }
            Op::Const { dims, data } => {
                Tensor::from_vec(data.clone(), dims.as_slice(), device)?.to_dtype(dtype)?
            }
            Op::Unary(f, a) => unary(*f, v(a))?,
            Op::Binary(f, a, b) => {
                let (a, b) = (v(a), v(b));
                match f {
                    Binary::Add => a.broadcast_add(b)?,
                    Binary::Sub => a.broadcast_sub(b)?,
                    Binary::Mul => a.broadcast_mul(b)?,
                    Binary::Div => a.broadcast_div(b)?,
                }
            }
            Op::MatMul(a, b) => {
                let (a, b) = (v(a), v(b));
                match a.matmul(b) {
                    Ok(y) => y,
                    Err(_) => a.contiguous()?.matmul(&b.contiguous()?)?,
                }
            }
            Op::Transpose(a, perm) => v(a).permute(perm.as_slice())?,
            Op::Sum { x, axes, keepdim } => {
                if *keepdim {
                    v(x).sum_keepdim(axes.as_slice())?
                } else {
                    v(x).sum(axes.as_slice())?
                }
            }
            Op::Mean { x, axes, keepdim } => {
                if *keepdim {
                    v(x).mean_keepdim(axes.as_slice())?
                } else {
                    v(x).mean(axes.as_slice())?
                }
            }
            Op::Concat(xs, axis) => {
                let parts: Vec<&Tensor> = xs.iter().map(v).collect();
                Tensor::cat(&parts, *axis)?
            }
            Op::Slice {
                x,
                axis,
                start,
                end,
            } => v(x).narrow(*axis, *start, end - start)?,
            Op::Pad {
                x,
                axis,
                before,
                after,
            } => v(x).pad_with_zeros(*axis, *before, *after)?,
            Op::Reshape(x, shape) => {
                let dims = resolve(shape, v(x).elem_count());
                v(x).reshape(dims)?
            }
            Op::ExpandLike(x, like) => v(x).broadcast_as(v(like).shape())?,
        };
        values[i] = Some(value);
    }
    Ok(targets
        .iter()
        .map(|t| values[t.index()].clone().expect("target evaluated"))
        .collect())
}

fn unary(f: Unary, a: &Tensor) -> Result<Tensor, GraphError> {
    Ok(match f {
        Unary::Neg => a.neg()?,
        Unary::Silu => a.silu()?,
        Unary::Sigmoid => sigmoid(a)?,
        // softplus(a) = max(a, 0) + log(1 + exp(−|a|)), stable for large |a|.
        Unary::Softplus => (a.relu()? + (a.abs()?.neg()?.exp()? + 1.0)?.log()?)?,
        Unary::Tanh => a.tanh()?,
        Unary::Exp => a.exp()?,
        Unary::Log => a.log()?,
        Unary::Sin => a.sin()?,
        Unary::Cos => a.cos()?,
    })
}

/// σ(a) through candle-nn's fused op, whose backward σ(1 − σ)·ḡ is itself built from tensor ops.
fn sigmoid(a: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::sigmoid(a)
}

fn resolve(shape: &[Dim], elems: usize) -> Vec<usize> {
    let fixed: usize = shape
        .iter()
        .map(|d| if let Dim::Fixed(n) = d { *n } else { 1 })
        .product();
    let batch = if fixed == 0 { 0 } else { elems / fixed };
    super::shape::concrete(shape, batch)
}

fn check_binding(
    kind: &'static str,
    name: &str,
    t: &Tensor,
    shape: &[Dim],
    batch: &mut Option<usize>,
) -> Result<(), GraphError> {
    let dims = t.dims();
    let mut ok = dims.len() == shape.len();
    if ok {
        for (&got, want) in dims.iter().zip(shape) {
            match want {
                Dim::Fixed(n) => ok &= got == *n,
                Dim::Batch => match batch {
                    Some(b) => ok &= got == *b,
                    None => *batch = Some(got),
                },
            }
        }
    }
    if ok {
        Ok(())
    } else {
        Err(GraphError::BindingShape {
            kind,
            name: name.to_string(),
            got: dims.to_vec(),
            expected: show(shape),
        })
    }
}
