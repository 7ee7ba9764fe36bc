//! The Candle backend: evaluates graph nodes as Candle tensors, so Candle's autograd can
//! differentiate any node (including explicit gradient nodes) with respect to parameters.

// Index loops here walk several arrays (or a matrix's rows and columns) in step.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::candle_conv::Patches;
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
    let (values, _) = eval_then(
        graph,
        bindings,
        targets,
        |_| Ok(HashMap::new()),
        &[],
        dtype,
        device,
    )?;
    Ok(values)
}

/// Evaluates `first`; then `more_inputs` turns their values into the graph inputs that `bindings`
/// left unbound; then evaluates `then`, which may read those inputs.
///
/// One evaluation in two stages: values of the first stage that the second reads are kept rather
/// than recomputed (a training step computes ψ and its gradients, derives the loss's cotangents from
/// them, and then the parameter gradients, which read the first stage's activations). Every value is
/// dropped after its last reader.
pub fn eval_then(
    graph: &Graph,
    bindings: &Bindings<'_>,
    first: &[NodeId],
    more_inputs: impl FnOnce(&[Tensor]) -> Result<HashMap<String, Tensor>, GraphError>,
    then: &[NodeId],
    dtype: DType,
    device: &Device,
) -> Result<(Vec<Tensor>, Vec<Tensor>), GraphError> {
    let Some(last) = first.iter().chain(then).map(|t| t.index()).max() else {
        return Ok((vec![], vec![]));
    };
    let nodes = graph.nodes();
    let mut needed = vec![false; last + 1];
    for t in first.iter().chain(then) {
        needed[t.index()] = true;
    }
    for i in (0..=last).rev() {
        if needed[i] {
            for a in nodes[i].op.args() {
                needed[a.index()] = true;
            }
        }
    }
    // Nodes that read an input the first stage does not have belong to the second stage.
    let mut late = vec![false; last + 1];
    for i in 0..=last {
        late[i] = match &nodes[i].op {
            Op::Input(name) => !bindings.inputs.contains_key(name),
            op => op.args().iter().any(|a| late[a.index()]),
        };
    }
    if let Some(t) = first.iter().find(|t| late[t.index()]) {
        let name = (0..=t.index())
            .find_map(|i| match &nodes[i].op {
                Op::Input(name) if late[i] => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        return Err(GraphError::MissingBinding {
            kind: "input",
            name,
        });
    }
    let order: Vec<usize> = (0..=last)
        .filter(|&i| needed[i] && !late[i])
        .chain((0..=last).filter(|&i| needed[i] && late[i]))
        .collect();
    // Drop each value after its last reader, so evaluation without autograd (sampling, scoring,
    // calibration of image models, parameter gradients) holds only the live tensors.
    let mut last_use = vec![0usize; last + 1];
    for (pos, &i) in order.iter().enumerate() {
        last_use[i] = last_use[i].max(pos);
        for a in nodes[i].op.args() {
            last_use[a.index()] = pos;
        }
    }
    for t in first.iter().chain(then) {
        last_use[t.index()] = usize::MAX;
    }
    let mut values: Vec<Option<Tensor>> = vec![None; last + 1];
    let mut batch: Option<usize> = None;
    let mut patches = Patches::plan(graph, &order);
    let mut inputs_late: Option<HashMap<String, Tensor>> = None;
    let mut more_inputs = Some(more_inputs);
    let mut first_values = vec![];
    for (pos, &i) in order.iter().enumerate() {
        if late[i] && inputs_late.is_none() {
            first_values = collect(&values, first);
            let more = more_inputs.take().expect("called once")(&first_values)?;
            inputs_late = Some(more);
        }
        let inputs = match &inputs_late {
            Some(more) if late[i] => more,
            _ => &bindings.inputs,
        };
        let value = node_value(
            graph,
            NodeId(i),
            &values,
            inputs,
            bindings.params,
            dtype,
            device,
            &mut batch,
            &mut patches,
        )?;
        values[i] = Some(value);
        for a in nodes[i].op.args() {
            if last_use[a.index()] == pos {
                values[a.index()] = None;
            }
        }
    }
    if inputs_late.is_none() {
        first_values = collect(&values, first);
    }
    Ok((first_values, collect(&values, then)))
}

fn collect(values: &[Option<Tensor>], targets: &[NodeId]) -> Vec<Tensor> {
    targets
        .iter()
        .map(|t| values[t.index()].clone().expect("target evaluated"))
        .collect()
}

/// The value of node `id` from its arguments' values.
#[allow(clippy::too_many_arguments)]
fn node_value(
    graph: &Graph,
    id: NodeId,
    values: &[Option<Tensor>],
    inputs: &HashMap<String, Tensor>,
    params: &HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
    batch: &mut Option<usize>,
    patches: &mut Patches,
) -> Result<Tensor, GraphError> {
    let node = &graph.nodes()[id.index()];
    let v = |id: &NodeId| {
        values[id.index()]
            .as_ref()
            .expect("arguments precede their users")
    };
    Ok(match &node.op {
        Op::Input(name) => {
            let t = inputs.get(name).ok_or_else(|| GraphError::MissingBinding {
                kind: "input",
                name: name.clone(),
            })?;
            check_binding("input", name, t, &node.shape, batch)?;
            t.to_dtype(dtype)?
        }
        Op::Param(name) => {
            let t = params.get(name).ok_or_else(|| GraphError::MissingBinding {
                kind: "parameter",
                name: name.clone(),
            })?;
            check_binding("parameter", name, t, &node.shape, batch)?;
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
            let shape = a.shape().broadcast_shape_binary_op(b.shape(), "binary")?;
            let (a, b) = (
                broadcast_for_grad(a, &shape)?,
                broadcast_for_grad(b, &shape)?,
            );
            match f {
                Binary::Add => a.add(&b)?,
                Binary::Sub => a.sub(&b)?,
                Binary::Mul => a.mul(&b)?,
                Binary::Div => a.div(&b)?,
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
        Op::Sum { x, axes, keepdim } => sum(v(x), axes, *keepdim)?,
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
        Op::Conv2d { x, w, stride, pad } => patches.conv2d(*x, v(x), v(w), *stride, *pad)?,
        Op::ConvTranspose2d {
            x,
            w,
            stride,
            pad,
            out_pad,
        } => patches.conv_transpose2d(*x, v(x), v(w), (*stride, *pad, *out_pad))?,
        Op::Conv2dKernelGrad {
            x,
            g,
            pad,
            k,
            transposed,
        } => patches.kernel_grad(*x, v(x), v(g), (*pad, *k, *transposed))?,
    })
}

/// The sum over `axes`. A sum over the batch axis (a parameter's gradient, gathered from every record)
/// is a matrix product with a row of ones: Candle's CPU sum is vectorised only over trailing axes, and
/// over a leading one runs an index loop per element.
fn sum(x: &Tensor, axes: &[usize], keepdim: bool) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    if !axes.contains(&0) || dims.len() < 2 || dims[0] < 2 {
        return if keepdim {
            x.sum_keepdim(axes)
        } else {
            x.sum(axes)
        };
    }
    let rest: usize = dims[1..].iter().product();
    let ones = Tensor::ones((1, dims[0]), x.dtype(), x.device())?;
    let mut kept = dims.clone();
    kept[0] = 1;
    let mut folded = ones.matmul(&x.reshape((dims[0], rest))?)?.reshape(kept)?;
    let others: Vec<usize> = axes.iter().copied().filter(|&a| a != 0).collect();
    if !others.is_empty() {
        folded = folded.sum_keepdim(others)?;
    }
    if keepdim {
        return Ok(folded);
    }
    let out: Vec<usize> = (0..dims.len())
        .filter(|a| !axes.contains(a))
        .map(|a| dims[a])
        .collect();
    folded.reshape(out)
}

/// `t` broadcast to `shape` in a form whose gradient Candle computes quickly.
///
/// Candle's gradient of a broadcast sums over the broadcast axes, and its CPU sum is vectorised
/// only over trailing axes: summing over the batch axis (a per-channel parameter or a bias
/// against a batch) runs a per-element index loop that took about a fifth of a UNet training
/// step. So the axes after the first are broadcast as a view (their gradient is a trailing sum),
/// and the batch axis by a product with a column of ones (its gradient is a matrix product).
/// Tensors that carry no gradient, and scalars, stay plain views.
pub(super) fn broadcast_for_grad(
    t: &Tensor,
    shape: &candle_core::Shape,
) -> candle_core::Result<Tensor> {
    if t.shape() == shape {
        return Ok(t.clone());
    }
    let dims = shape.dims();
    let mut t_dims = vec![1; dims.len().saturating_sub(t.rank())];
    t_dims.extend_from_slice(t.dims());
    let batch_broadcast = dims.len() >= 2 && t_dims[0] == 1 && dims[0] > 1;
    if !batch_broadcast || !t.track_op() || t.elem_count() == 1 {
        return t.broadcast_as(shape);
    }
    let rest: usize = dims[1..].iter().product();
    let row = t
        .reshape(&t_dims[1..])?
        .broadcast_as(&dims[1..])?
        .reshape((1, rest))?;
    let ones = Tensor::ones((dims[0], 1), t.dtype(), t.device())?;
    ones.matmul(&row)?.reshape(shape)
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
        Unary::Rsqrt => a.sqrt()?.recip()?,
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
    let batch = elems.checked_div(fixed).unwrap_or(0);
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{broadcast_for_grad, sum};

    /// Sums over the batch axis (through a matrix product) equal Candle's own, with and without the
    /// reduced axes kept, alone or with others.
    #[test]
    fn batch_axis_sums_equal_candles_sums() -> candle_core::Result<()> {
        let x = Tensor::arange(0.0f64, 120.0, &Device::Cpu)?
            .sqr()?
            .reshape((4, 3, 2, 5))?;
        for axes in [
            vec![0],
            vec![0, 2, 3],
            vec![0, 1],
            vec![1, 3],
            vec![0, 1, 2, 3],
        ] {
            for keepdim in [true, false] {
                let got = sum(&x, &axes, keepdim)?;
                let want = if keepdim {
                    x.sum_keepdim(axes.as_slice())?
                } else {
                    x.sum(axes.as_slice())?
                };
                assert_eq!(got.dims(), want.dims(), "{axes:?} keepdim {keepdim}");
                let (got, want) = (
                    got.flatten_all()?.to_vec1::<f64>()?,
                    want.flatten_all()?.to_vec1::<f64>()?,
                );
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "{axes:?}: {a} vs {b}"
                    );
                }
            }
        }
        Ok(())
    }

    /// The batch-axis product with ones gives the values and the gradient of a plain broadcast.
    #[test]
    fn broadcast_for_grad_matches_a_plain_broadcast() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let gamma = Var::from_vec(vec![0.5f64, -1.5, 2.0], (1, 3, 1, 1), &dev)?;
        let x = Tensor::arange(0.0f64, 48.0, &dev)?.reshape((2, 3, 2, 4))?;
        let shape = x.shape().clone();

        let fast = broadcast_for_grad(gamma.as_tensor(), &shape)?;
        let plain = gamma.as_tensor().broadcast_as(&shape)?;
        assert_eq!(fast.dims(), plain.dims());
        assert_eq!(
            fast.flatten_all()?.to_vec1::<f64>()?,
            plain.flatten_all()?.to_vec1::<f64>()?
        );

        let grad_of = |b: &Tensor| -> candle_core::Result<Vec<f64>> {
            let loss = b.mul(&x)?.sqr()?.sum_all()?;
            let grads = loss.backward()?;
            grads
                .get(gamma.as_tensor())
                .expect("gamma reached")
                .flatten_all()?
                .to_vec1::<f64>()
        };
        let (g_fast, g_plain) = (grad_of(&fast)?, grad_of(&plain)?);
        for (a, b) in g_fast.iter().zip(&g_plain) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
        // A tensor without a gradient stays a view: no copy for constants.
        let konst = Tensor::new(&[1.0f64, 2.0, 3.0], &dev)?.reshape((1, 3, 1, 1))?;
        assert!(!broadcast_for_grad(&konst, &shape)?.is_contiguous());
        Ok(())
    }
}
