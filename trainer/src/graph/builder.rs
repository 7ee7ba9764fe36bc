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
}
