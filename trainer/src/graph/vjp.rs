//! Reverse-mode differentiation over the op set. Gradients are appended to the same graph as
//! ordinary ops, so they can be evaluated by any backend and differentiated again.

use std::collections::HashMap;

use super::{Binary, Graph, GraphError, NodeId, Op, Unary};

/// Appends the vector-Jacobian product `seedᵀ · ∂output/∂wrt` for each node in `wrt` and returns the
/// gradient nodes (same shapes as `wrt`).
///
/// With `seed` = ones over a `[N]` output of per-sample values, each row of the result is that
/// sample's own gradient, because samples do not interact.
pub fn vjp(
    g: &mut Graph,
    output: NodeId,
    seed: NodeId,
    wrt: &[NodeId],
) -> Result<Vec<NodeId>, GraphError> {
    if g.shape(seed) != g.shape(output) {
        return Err(GraphError::Shape(format!(
            "vjp seed has shape {:?}, output has {:?}",
            g.shape(seed),
            g.shape(output)
        )));
    }
    // Nodes that depend on some `wrt` node: gradients flow only through them.
    let n = output.0 + 1;
    let mut depends = vec![false; n];
    for &w in wrt {
        if w.0 < n {
            depends[w.0] = true;
        }
    }
    for i in 0..n {
        if !depends[i] && g.nodes()[i].op.args().iter().any(|a| depends[a.0]) {
            depends[i] = true;
        }
    }
    let mut grads: HashMap<NodeId, NodeId> = HashMap::new();
    grads.insert(output, seed);
    for i in (0..n).rev() {
        let id = NodeId(i);
        if !depends[i] {
            continue;
        }
        let Some(&gy) = grads.get(&id) else { continue };
        let op = g.node(id).op.clone();
        for (arg, contribution) in rule(g, id, &op, gy, &depends)? {
            let total = match grads.get(&arg) {
                Some(&prev) => g.add(prev, contribution)?,
                None => contribution,
            };
            grads.insert(arg, total);
        }
    }
    wrt.iter()
        .map(|&w| match grads.get(&w) {
            Some(&gw) => Ok(gw),
            None => g.full_like(0.0, w),
        })
        .collect()
}

/// The VJP rule of one node: the gradient contributions to those of its arguments that need one.
fn rule(
    g: &mut Graph,
    y: NodeId,
    op: &Op,
    gy: NodeId,
    depends: &[bool],
) -> Result<Vec<(NodeId, NodeId)>, GraphError> {
    let needs = |a: NodeId| depends[a.0];
    let mut out = Vec::new();
    match op {
        Op::Input(_) | Op::Param(_) | Op::Const { .. } => {}
        Op::Unary(f, a) => {
            let a = *a;
            let local = match f {
                Unary::Neg => {
                    out.push((a, g.neg(gy)));
                    return Ok(out);
                }
                Unary::Silu => {
                    // σ(a)·(1 + a·(1 − σ(a))) = σ + y − y·σ with y = a·σ(a) the node's own value.
                    let s = g.sigmoid(a);
                    let ys = g.mul(y, s)?;
                    let y_minus_ys = g.sub(y, ys)?;
                    g.add(s, y_minus_ys)?
                }
                Unary::Sigmoid => {
                    let one = g.scalar(1.0);
                    let oms = g.sub(one, y)?;
                    g.mul(y, oms)?
                }
                Unary::Softplus => g.sigmoid(a),
                Unary::Tanh => {
                    let one = g.scalar(1.0);
                    let y2 = g.mul(y, y)?;
                    g.sub(one, y2)?
                }
                Unary::Exp => y,
                Unary::Log => {
                    out.push((a, g.div(gy, a)?));
                    return Ok(out);
                }
                Unary::Sin => g.cos(a),
                Unary::Cos => {
                    let s = g.sin(a);
                    g.neg(s)
                }
                Unary::Rsqrt => {
                    // d(a^{-1/2})/da = −½·a^{-3/2} = −½·y³
                    let y2 = g.mul(y, y)?;
                    let y3 = g.mul(y2, y)?;
                    g.scale(y3, -0.5)?
                }
            };
            out.push((a, g.mul(gy, local)?));
        }
        Op::Binary(f, a, b) => {
            let (a, b) = (*a, *b);
            let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
            if needs(a) {
                let ga = match f {
                    Binary::Add | Binary::Sub => gy,
                    Binary::Mul => g.mul(gy, b)?,
                    Binary::Div => g.div(gy, b)?,
                };
                out.push((a, g.sum_to(ga, &sa)?));
            }
            if needs(b) {
                let gb = match f {
                    Binary::Add => gy,
                    Binary::Sub => g.neg(gy),
                    Binary::Mul => g.mul(gy, a)?,
                    Binary::Div => {
                        // −gy · a / b²  =  −gy · y / b
                        let q = g.div(y, b)?;
                        let t = g.mul(gy, q)?;
                        g.neg(t)
                    }
                };
                out.push((b, g.sum_to(gb, &sb)?));
            }
        }
        Op::MatMul(a, b) => {
            let (a, b) = (*a, *b);
            if needs(a) {
                let bt = g.transpose_last2(b)?;
                out.push((a, g.matmul(gy, bt)?));
            }
            if needs(b) {
                let at = g.transpose_last2(a)?;
                out.push((b, g.matmul(at, gy)?));
            }
        }
        Op::Transpose(a, perm) => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out.push((*a, g.transpose(gy, &inverse)?));
        }
        Op::Sum { x, axes, keepdim } | Op::Mean { x, axes, keepdim } => {
            let x = *x;
            let kept = if *keepdim {
                gy
            } else {
                let mut s = g.shape(x).clone();
                for &ax in axes {
                    s[ax] = super::Dim::Fixed(1);
                }
                g.reshape(gy, s)?
            };
            let mut gx = g.expand_like(kept, x)?;
            if matches!(op, Op::Mean { .. }) {
                let count: usize = axes
                    .iter()
                    .map(|&ax| match g.shape(x)[ax] {
                        super::Dim::Fixed(n) => Ok(n),
                        super::Dim::Batch => {
                            Err(GraphError::NotDifferentiable("mean over batch".into()))
                        }
                    })
                    .product::<Result<usize, _>>()?;
                gx = g.scale(gx, 1.0 / count as f64)?;
            }
            out.push((x, gx));
        }
        Op::Concat(xs, axis) => {
            let mut offset = 0;
            for &x in xs {
                let width = match g.shape(x)[*axis] {
                    super::Dim::Fixed(n) => n,
                    super::Dim::Batch => unreachable!("concat axes are fixed-size by construction"),
                };
                if needs(x) {
                    out.push((x, g.slice(gy, *axis, offset, offset + width)?));
                }
                offset += width;
            }
        }
        Op::Slice {
            x,
            axis,
            start,
            end,
        } => {
            let total = match g.shape(*x)[*axis] {
                super::Dim::Fixed(n) => n,
                super::Dim::Batch => unreachable!("slice axes are fixed-size by construction"),
            };
            out.push((*x, g.pad(gy, *axis, *start, total - end)?));
        }
        Op::Pad {
            x, axis, before, ..
        } => {
            let width = match g.shape(*x)[*axis] {
                super::Dim::Fixed(n) => n,
                super::Dim::Batch => unreachable!("pad axes are fixed-size by construction"),
            };
            out.push((*x, g.slice(gy, *axis, *before, before + width)?));
        }
        Op::Reshape(x, _) => {
            let s = g.shape(*x).clone();
            out.push((*x, g.reshape(gy, s)?));
        }
        Op::ExpandLike(x, _like) => {
            // `like` contributes only its shape: no gradient flows to it.
            let s = g.shape(*x).clone();
            out.push((*x, g.sum_to(gy, &s)?));
        }
        Op::Conv2d { x, w, stride, pad } => {
            let k = fixed(g.shape(*w)[2]);
            if needs(*w) {
                if *stride != 1 {
                    return Err(kernel_not_differentiable("conv2d with stride > 1"));
                }
                out.push((*w, g.conv2d_kernel_grad(*x, gy, *pad, k, false)?));
            }
            if needs(*x) {
                // The transposed convolution restores the input extent; rows that the strided
                // forward pass never read come back through the output padding.
                let h = fixed(g.shape(*x)[2]);
                let ho = fixed(g.shape(y)[2]);
                let out_pad = h + 2 * pad - ((ho - 1) * stride + k);
                out.push((*x, g.conv_transpose2d(gy, *w, *stride, *pad, out_pad)?));
            }
        }
        Op::ConvTranspose2d {
            x,
            w,
            stride,
            pad,
            out_pad,
        } => {
            if needs(*w) {
                let k = fixed(g.shape(*w)[2]);
                if *stride != 1 || *out_pad != 0 || pad + 1 > k {
                    return Err(kernel_not_differentiable(
                        "conv_transpose2d with stride > 1, output padding or padding ≥ the kernel",
                    ));
                }
                // Differentiated in its convolution form: x against the kernel flipped and swapped,
                // padded by k − 1 − pad (what the evaluation computes, so its patches are shared).
                out.push((*w, g.conv2d_kernel_grad(*x, gy, k - 1 - pad, k, true)?));
            }
            if needs(*x) {
                out.push((*x, g.conv2d(gy, *w, *stride, *pad)?));
            }
        }
        Op::Conv2dKernelGrad { .. } => {
            return Err(GraphError::NotDifferentiable(
                "conv2d_kernel_grad (a parameter gradient) is not differentiated again".into(),
            ));
        }
    }
    Ok(out.into_iter().filter(|(a, _)| needs(*a)).collect())
}

/// Kernel gradients exist for the stride-1 convolutions that the networks use.
fn kernel_not_differentiable(op: &str) -> GraphError {
    GraphError::NotDifferentiable(format!("the kernel of {op}"))
}

/// The size of a spatial or channel axis.
fn fixed(d: super::Dim) -> usize {
    match d {
        super::Dim::Fixed(n) => n,
        super::Dim::Batch => unreachable!("spatial axes are fixed-size by construction"),
    }
}
