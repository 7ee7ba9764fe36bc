//! Building graphs: every constructor checks its arguments' shapes and records the result shape.

use std::collections::HashMap;

use super::shape::{broadcast, fixed, fixed_volume, show};
use super::{Binary, Dim, GraphError, Op, Shape, Unary};

/// Index of a node in its [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

impl NodeId {
    /// Position in the graph's node list (also a topological rank).
    pub fn index(self) -> usize {
        self.0
    }
}

/// A node: its operation and its (static, batch-symbolic) shape.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub shape: Shape,
}

impl Node {
    /// The name of an `Op::Input` node (empty for other ops).
    pub fn op_input_name(&self) -> &str {
        match &self.op {
            Op::Input(name) => name,
            _ => "",
        }
    }
}

/// An append-only computation graph over the op set.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    params: HashMap<String, NodeId>,
}

type R = Result<NodeId, GraphError>;

fn shape_err(msg: String) -> GraphError {
    GraphError::Shape(msg)
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// All nodes, in topological order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.0].shape
    }

    /// Parameter nodes by name.
    pub fn params(&self) -> &HashMap<String, NodeId> {
        &self.params
    }

    fn push(&mut self, op: Op, shape: Shape) -> NodeId {
        self.nodes.push(Node { op, shape });
        NodeId(self.nodes.len() - 1)
    }

    /// Appends a node as it is (for passes that rebuild a graph: arguments must be earlier nodes),
    /// registering parameters by name.
    pub(super) fn push_node(&mut self, op: Op, shape: Shape) -> NodeId {
        let name = match &op {
            Op::Param(name) => Some(name.clone()),
            _ => None,
        };
        let id = self.push(op, shape);
        if let Some(name) = name {
            self.params.insert(name, id);
        }
        id
    }

    /// A named graph input.
    pub fn input(&mut self, name: &str, shape: Shape) -> NodeId {
        self.push(Op::Input(name.to_string()), shape)
    }

    /// A named parameter of fixed shape. Declaring the same name twice returns the same node.
    pub fn param(&mut self, name: &str, dims: &[usize]) -> R {
        if let Some(&id) = self.params.get(name) {
            if self.shape(id) != &fixed(dims) {
                return Err(shape_err(format!(
                    "parameter `{name}` redeclared with shape {dims:?}, was {}",
                    show(self.shape(id))
                )));
            }
            return Ok(id);
        }
        let id = self.push(Op::Param(name.to_string()), fixed(dims));
        self.params.insert(name.to_string(), id);
        Ok(id)
    }

    /// A constant tensor.
    pub fn constant(&mut self, dims: &[usize], data: Vec<f64>) -> R {
        if dims.iter().product::<usize>() != data.len() {
            return Err(shape_err(format!(
                "constant of shape {dims:?} given {} values",
                data.len()
            )));
        }
        Ok(self.push(
            Op::Const {
                dims: dims.to_vec(),
                data,
            },
            fixed(dims),
        ))
    }

    /// A rank-0 constant.
    pub fn scalar(&mut self, value: f64) -> NodeId {
        self.push(
            Op::Const {
                dims: vec![],
                data: vec![value],
            },
            vec![],
        )
    }

    pub fn unary(&mut self, f: Unary, a: NodeId) -> NodeId {
        let shape = self.shape(a).clone();
        self.push(Op::Unary(f, a), shape)
    }

    pub fn binary(&mut self, f: Binary, a: NodeId, b: NodeId) -> R {
        let shape = broadcast(self.shape(a), self.shape(b))?;
        Ok(self.push(Op::Binary(f, a, b), shape))
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(Binary::Add, a, b)
    }
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(Binary::Sub, a, b)
    }
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(Binary::Mul, a, b)
    }
    pub fn div(&mut self, a: NodeId, b: NodeId) -> R {
        self.binary(Binary::Div, a, b)
    }
    pub fn neg(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Neg, a)
    }
    pub fn silu(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Silu, a)
    }
    pub fn sigmoid(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Sigmoid, a)
    }
    pub fn softplus(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Softplus, a)
    }
    pub fn tanh(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Tanh, a)
    }
    pub fn exp(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Exp, a)
    }
    pub fn log(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Log, a)
    }
    pub fn sin(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Sin, a)
    }
    pub fn cos(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Cos, a)
    }
    pub fn rsqrt(&mut self, a: NodeId) -> NodeId {
        self.unary(Unary::Rsqrt, a)
    }

    /// `a * c` for a scalar constant `c`.
    pub fn scale(&mut self, a: NodeId, c: f64) -> R {
        if c == 1.0 {
            return Ok(a);
        }
        let s = self.scalar(c);
        self.mul(a, s)
    }

    /// Matrix product over the last two axes.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> R {
        let (sa, sb) = (self.shape(a).clone(), self.shape(b).clone());
        let r = sa.len();
        if r < 2 || sb.len() != r || sa[..r - 2] != sb[..r - 2] || sa[r - 1] != sb[r - 2] {
            return Err(shape_err(format!(
                "matmul of {} and {}",
                show(&sa),
                show(&sb)
            )));
        }
        let mut out = sa[..r - 1].to_vec();
        out.push(sb[r - 1]);
        Ok(self.push(Op::MatMul(a, b), out))
    }

    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    pub fn transpose(&mut self, a: NodeId, perm: &[usize]) -> R {
        let sa = self.shape(a).clone();
        let mut seen = vec![false; sa.len()];
        if perm.len() != sa.len()
            || perm
                .iter()
                .any(|&p| p >= sa.len() || std::mem::replace(&mut seen[p], true))
        {
            return Err(shape_err(format!("transpose {perm:?} of {}", show(&sa))));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(a);
        }
        // Fold a transpose of a transpose (the VJP of a linear layer's Wᵀ) into one, or none.
        if let Op::Transpose(inner, p0) = &self.node(a).op {
            let (inner, composed): (NodeId, Vec<usize>) =
                (*inner, perm.iter().map(|&p| p0[p]).collect());
            return self.transpose(inner, &composed);
        }
        let out = perm.iter().map(|&p| sa[p]).collect();
        Ok(self.push(Op::Transpose(a, perm.to_vec()), out))
    }

    /// Swaps the last two axes.
    pub fn transpose_last2(&mut self, a: NodeId) -> R {
        let r = self.shape(a).len();
        if r < 2 {
            return Err(shape_err(format!("transpose of rank-{r} tensor")));
        }
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.transpose(a, &perm)
    }

    fn reduced_shape(&self, x: NodeId, axes: &[usize], keepdim: bool) -> Result<Shape, GraphError> {
        let sx = self.shape(x);
        if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= sx.len()) {
            return Err(shape_err(format!(
                "reduction axes {axes:?} of {}",
                show(sx)
            )));
        }
        Ok(sx
            .iter()
            .enumerate()
            .filter_map(|(i, &d)| match (axes.contains(&i), keepdim) {
                (false, _) => Some(d),
                (true, true) => Some(Dim::Fixed(1)),
                (true, false) => None,
            })
            .collect())
    }

    /// Sum over `axes` (sorted, unique).
    pub fn sum(&mut self, x: NodeId, axes: &[usize], keepdim: bool) -> R {
        let shape = self.reduced_shape(x, axes, keepdim)?;
        Ok(self.push(
            Op::Sum {
                x,
                axes: axes.to_vec(),
                keepdim,
            },
            shape,
        ))
    }

    /// Mean over fixed-size `axes` (sorted, unique).
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keepdim: bool) -> R {
        if axes
            .iter()
            .any(|&a| self.shape(x).get(a) == Some(&Dim::Batch))
        {
            return Err(shape_err(
                "mean over the batch axis is not part of the op set".into(),
            ));
        }
        let shape = self.reduced_shape(x, axes, keepdim)?;
        Ok(self.push(
            Op::Mean {
                x,
                axes: axes.to_vec(),
                keepdim,
            },
            shape,
        ))
    }

    /// Concatenation along a fixed-size axis.
    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> R {
        let first = xs
            .first()
            .ok_or_else(|| shape_err("concat of nothing".into()))?;
        let mut out = self.shape(*first).clone();
        if axis >= out.len() {
            return Err(shape_err(format!("concat axis {axis} of {}", show(&out))));
        }
        let mut total = 0;
        for &x in xs {
            let s = self.shape(x);
            let same_rest = s.len() == out.len()
                && s.iter()
                    .zip(&out)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            match (same_rest, s[axis]) {
                (true, Dim::Fixed(n)) => total += n,
                _ => {
                    return Err(shape_err(format!(
                        "concat along axis {axis} of {} and {}",
                        show(&out),
                        show(s)
                    )))
                }
            }
        }
        out[axis] = Dim::Fixed(total);
        Ok(self.push(Op::Concat(xs.to_vec(), axis), out))
    }

    /// `x[.., start..end, ..]` along a fixed-size axis.
    pub fn slice(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> R {
        let mut out = self.shape(x).clone();
        match out.get(axis) {
            Some(Dim::Fixed(n)) if start < end && end <= *n => {}
            _ => {
                return Err(shape_err(format!(
                    "slice {start}..{end} on axis {axis} of {}",
                    show(&out)
                )))
            }
        }
        out[axis] = Dim::Fixed(end - start);
        Ok(self.push(
            Op::Slice {
                x,
                axis,
                start,
                end,
            },
            out,
        ))
    }

    /// Zero padding along a fixed-size axis.
    pub fn pad(&mut self, x: NodeId, axis: usize, before: usize, after: usize) -> R {
        let mut out = self.shape(x).clone();
        match out.get(axis) {
            Some(Dim::Fixed(n)) => out[axis] = Dim::Fixed(n + before + after),
            _ => return Err(shape_err(format!("pad on axis {axis} of {}", show(&out)))),
        }
        Ok(self.push(
            Op::Pad {
                x,
                axis,
                before,
                after,
            },
            out,
        ))
    }

    /// Reshape; the batch dimension, if any, must survive as exactly one batch dimension.
    pub fn reshape(&mut self, x: NodeId, shape: Shape) -> R {
        let (vin, bin) = fixed_volume(self.shape(x));
        let (vout, bout) = fixed_volume(&shape);
        if vin != vout || bin != bout || bout > 1 {
            return Err(shape_err(format!(
                "reshape {} to {}",
                show(self.shape(x)),
                show(&shape)
            )));
        }
        Ok(self.push(Op::Reshape(x, shape.clone()), shape))
    }

    /// Broadcasts `x` to the shape of `like`.
    pub fn expand_like(&mut self, x: NodeId, like: NodeId) -> R {
        let target = self.shape(like).clone();
        if broadcast(self.shape(x), &target)? != target {
            return Err(shape_err(format!(
                "expand {} to {}",
                show(self.shape(x)),
                show(&target)
            )));
        }
        Ok(self.push(Op::ExpandLike(x, like), target))
    }

    /// A tensor of `value` with the shape of `like`.
    pub fn full_like(&mut self, value: f64, like: NodeId) -> R {
        let s = self.scalar(value);
        self.expand_like(s, like)
    }

    /// Sums a broadcast result back to `target` (the VJP of broadcasting).
    pub fn sum_to(&mut self, g: NodeId, target: &[Dim]) -> R {
        let sg = self.shape(g).clone();
        if sg.as_slice() == target {
            return Ok(g);
        }
        if target.len() > sg.len() {
            return Err(shape_err(format!(
                "sum_to {} from {}",
                show(target),
                show(&sg)
            )));
        }
        let lead = sg.len() - target.len();
        let axes: Vec<usize> = (0..sg.len())
            .filter(|&i| i < lead || (target[i - lead] == Dim::Fixed(1) && sg[i] != Dim::Fixed(1)))
            .collect();
        let summed = if axes.is_empty() {
            g
        } else {
            self.sum(g, &axes, true)?
        };
        if self.shape(summed).as_slice() == target {
            Ok(summed)
        } else {
            self.reshape(summed, target.to_vec())
        }
    }

    /// `x @ weightᵀ + bias` with a `[out, in]` weight (Candle's layout) over the last axis.
    pub fn linear(&mut self, x: NodeId, weight: NodeId, bias: Option<NodeId>) -> R {
        let wt = self.transpose_last2(weight)?;
        let y = self.matmul(x, wt)?;
        match bias {
            Some(b) => self.add(y, b),
            None => Ok(y),
        }
    }

    /// `(C, H, W)` of an image tensor `[N, C, H, W]` (any leading dimension).
    fn image_dims(&self, x: NodeId, what: &str) -> Result<(usize, usize, usize), GraphError> {
        match self.shape(x).as_slice() {
            [_, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)] => Ok((*c, *h, *w)),
            s => Err(shape_err(format!(
                "{what} needs [N, C, H, W], got {}",
                show(s)
            ))),
        }
    }

    /// `(A, B, k)` of a square kernel `[A, B, k, k]`.
    fn kernel_dims(&self, w: NodeId, what: &str) -> Result<(usize, usize, usize), GraphError> {
        match self.shape(w).as_slice() {
            [Dim::Fixed(a), Dim::Fixed(b), Dim::Fixed(k), Dim::Fixed(k2)] if k == k2 && *k > 0 => {
                Ok((*a, *b, *k))
            }
            s => Err(shape_err(format!(
                "{what} needs a square kernel [A, B, k, k], got {}",
                show(s)
            ))),
        }
    }

    /// 2-D convolution (cross-correlation) with a `[O, C, k, k]` kernel.
    pub fn conv2d(&mut self, x: NodeId, w: NodeId, stride: usize, pad: usize) -> R {
        let (c, h, wd) = self.image_dims(x, "conv2d")?;
        let (o, ci, k) = self.kernel_dims(w, "conv2d")?;
        if ci != c || stride == 0 || h + 2 * pad < k || wd + 2 * pad < k {
            return Err(shape_err(format!(
                "conv2d of {} with kernel {} (stride {stride}, pad {pad})",
                show(self.shape(x)),
                show(self.shape(w))
            )));
        }
        let out = |n: usize| (n + 2 * pad - k) / stride + 1;
        let shape = vec![
            self.shape(x)[0],
            Dim::Fixed(o),
            Dim::Fixed(out(h)),
            Dim::Fixed(out(wd)),
        ];
        Ok(self.push(Op::Conv2d { x, w, stride, pad }, shape))
    }

    /// Transposed 2-D convolution with a `[C, O, k, k]` kernel (the adjoint of [`Graph::conv2d`]).
    pub fn conv_transpose2d(
        &mut self,
        x: NodeId,
        w: NodeId,
        stride: usize,
        pad: usize,
        out_pad: usize,
    ) -> R {
        let (c, h, wd) = self.image_dims(x, "conv_transpose2d")?;
        let (ci, o, k) = self.kernel_dims(w, "conv_transpose2d")?;
        let out = |n: usize| ((n - 1) * stride + k + out_pad).checked_sub(2 * pad);
        let bad = ci != c || stride == 0 || out_pad >= stride || h == 0 || wd == 0;
        match (bad, out(h), out(wd)) {
            (false, Some(oh), Some(ow)) if oh > 0 && ow > 0 => {
                let shape = vec![self.shape(x)[0], Dim::Fixed(o), Dim::Fixed(oh), Dim::Fixed(ow)];
                Ok(self.push(
                    Op::ConvTranspose2d {
                        x,
                        w,
                        stride,
                        pad,
                        out_pad,
                    },
                    shape,
                ))
            }
            _ => Err(shape_err(format!(
                "conv_transpose2d of {} with kernel {} (stride {stride}, pad {pad}, output padding {out_pad})",
                show(self.shape(x)),
                show(self.shape(w))
            ))),
        }
    }

    /// The kernel gradient of a stride-1 [`Graph::conv2d`] with padding `pad` and kernel extent `k`,
    /// given its input `x` `[N, C, H, W]` and the gradient `g` `[N, O, H', W']` of its output:
    /// `[O, C, k, k]`; with `transposed`, that of a stride-1 [`Graph::conv_transpose2d`] of `x` whose
    /// convolution form has padding `pad` (`[C, O, k, k]`, see [`Op::Conv2dKernelGrad`]).
    pub fn conv2d_kernel_grad(
        &mut self,
        x: NodeId,
        g: NodeId,
        pad: usize,
        k: usize,
        transposed: bool,
    ) -> R {
        let (c, h, wd) = self.image_dims(x, "conv2d_kernel_grad")?;
        let (o, gh, gw) = self.image_dims(g, "conv2d_kernel_grad")?;
        let out = |n: usize| (n + 2 * pad + 1).checked_sub(k);
        if k == 0 || out(h) != Some(gh) || out(wd) != Some(gw) {
            return Err(shape_err(format!(
                "conv2d_kernel_grad of {} against output gradient {} (pad {pad}, kernel {k})",
                show(self.shape(x)),
                show(self.shape(g))
            )));
        }
        let (a, b) = if transposed { (c, o) } else { (o, c) };
        let shape = vec![Dim::Fixed(a), Dim::Fixed(b), Dim::Fixed(k), Dim::Fixed(k)];
        Ok(self.push(
            Op::Conv2dKernelGrad {
                x,
                g,
                pad,
                k,
                transposed,
            },
            shape,
        ))
    }

    /// Group normalisation without the affine part: each sample's channels are split into `groups`
    /// groups, and each group is shifted and scaled to zero mean and unit variance (biased, + `eps`).
    pub fn group_norm(&mut self, x: NodeId, groups: usize, eps: f64) -> R {
        let (c, h, w) = self.image_dims(x, "group_norm")?;
        if groups == 0 || c % groups != 0 {
            return Err(shape_err(format!(
                "group_norm: {c} channels do not split into {groups} groups"
            )));
        }
        let n = self.shape(x)[0];
        let grouped = self.reshape(
            x,
            vec![n, Dim::Fixed(groups), Dim::Fixed(c / groups * h * w)],
        )?;
        let mean = self.mean(grouped, &[2], true)?;
        let centred = self.sub(grouped, mean)?;
        let sq = self.mul(centred, centred)?;
        let var = self.mean(sq, &[2], true)?;
        let e = self.scalar(eps);
        let var_eps = self.add(var, e)?;
        let inv = self.rsqrt(var_eps);
        let normed = self.mul(centred, inv)?;
        self.reshape(normed, self.shape(x).clone())
    }

    /// 2×2 average pooling with stride 2 (even spatial extents), as a reshape and a mean.
    pub fn avg_pool2(&mut self, x: NodeId) -> R {
        let (c, h, w) = self.image_dims(x, "avg_pool2")?;
        if h % 2 != 0 || w % 2 != 0 {
            return Err(shape_err(format!(
                "avg_pool2 needs even height and width, got {}",
                show(self.shape(x))
            )));
        }
        let n = self.shape(x)[0];
        let split = self.reshape(
            x,
            vec![
                n,
                Dim::Fixed(c),
                Dim::Fixed(h / 2),
                Dim::Fixed(2),
                Dim::Fixed(w / 2),
                Dim::Fixed(2),
            ],
        )?;
        self.mean(split, &[3, 5], false)
    }

    /// 2× nearest-neighbour upsampling, as a reshape and two self-concatenations.
    pub fn upsample2(&mut self, x: NodeId) -> R {
        let (c, h, w) = self.image_dims(x, "upsample2")?;
        let n = self.shape(x)[0];
        let split = self.reshape(
            x,
            vec![
                n,
                Dim::Fixed(c),
                Dim::Fixed(h),
                Dim::Fixed(1),
                Dim::Fixed(w),
                Dim::Fixed(1),
            ],
        )?;
        let wide = self.concat(&[split, split], 5)?;
        let tall = self.concat(&[wide, wide], 3)?;
        self.reshape(
            tall,
            vec![n, Dim::Fixed(c), Dim::Fixed(2 * h), Dim::Fixed(2 * w)],
        )
    }
}
