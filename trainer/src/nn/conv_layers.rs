//! Convolutional layers over the graph: convolution with bias, affine GroupNorm, FiLM time
//! conditioning and spatial self-attention. Parameter names follow the layer scope
//! (`down.0.res.0.conv1.weight`), the same keys the checkpoints use.

use crate::graph::{Dim, GraphError, NodeId};

use super::{Init, Scope};

/// Channels of an `[N, C, H, W]` node.
pub fn channels(s: &Scope<'_>, x: NodeId) -> Result<usize, GraphError> {
    match s.graph.shape(x).get(1) {
        Some(Dim::Fixed(c)) if s.graph.shape(x).len() == 4 => Ok(*c),
        _ => Err(GraphError::Shape(format!(
            "expected an image tensor [N, C, H, W], got {}",
            crate::graph::shape::show(s.graph.shape(x))
        ))),
    }
}

/// A per-channel vector parameter `[C]` viewed as `[1, C, 1, 1]` for broadcasting over images.
fn channel_param(
    s: &mut Scope<'_>,
    name: &str,
    c: usize,
    init: Init,
) -> Result<NodeId, GraphError> {
    let p = s.param(name, &[c], init)?;
    s.graph
        .reshape(p, crate::graph::shape::fixed(&[1, c, 1, 1]))
}

impl Scope<'_> {
    /// A `k×k` convolution `C → out` with "same" padding and a bias; `zero` starts it at zero (the
    /// last layer of U), otherwise PyTorch's default uniform bound 1/√(C·k²).
    pub fn conv(
        &mut self,
        name: &str,
        x: NodeId,
        out: usize,
        k: usize,
        zero: bool,
    ) -> Result<NodeId, GraphError> {
        let c = channels(self, x)?;
        let init = if zero {
            Init::Zeros
        } else {
            Init::Uniform(1.0 / ((c * k * k) as f64).sqrt())
        };
        self.within(name, |s| {
            let w = s.param("weight", &[out, c, k, k], init)?;
            let b = channel_param(s, "bias", out, init)?;
            let y = s.graph.conv2d(x, w, 1, k / 2)?;
            s.graph.add(y, b)
        })
    }

    /// GroupNorm with a learned per-channel scale (starting at 1) and shift (starting at 0).
    pub fn group_norm(
        &mut self,
        name: &str,
        x: NodeId,
        groups: usize,
    ) -> Result<NodeId, GraphError> {
        let c = channels(self, x)?;
        self.within(name, |s| {
            let normed = s.graph.group_norm(x, groups, 1e-5)?;
            let gamma = channel_param(s, "weight", c, Init::Ones)?;
            let beta = channel_param(s, "bias", c, Init::Zeros)?;
            let scaled = s.graph.mul(normed, gamma)?;
            s.graph.add(scaled, beta)
        })
    }

    /// FiLM conditioning: `h·(1 + γ) + β` with `[γ, β]` a linear map of the (activated) time
    /// embedding `temb` `[N, T]`.
    pub fn film(&mut self, name: &str, h: NodeId, temb: NodeId) -> Result<NodeId, GraphError> {
        let c = channels(self, h)?;
        let t_dim = match self.graph.shape(temb).as_slice() {
            [_, Dim::Fixed(t)] => *t,
            other => {
                return Err(GraphError::Shape(format!(
                    "film needs a time embedding [N, T], got {}",
                    crate::graph::shape::show(other)
                )))
            }
        };
        let n = self.graph.shape(h)[0];
        let ss = self.linear(name, temb, t_dim, 2 * c, false)?;
        let g = &mut *self.graph;
        let gamma = g.slice(ss, 1, 0, c)?;
        let beta = g.slice(ss, 1, c, 2 * c)?;
        let as_image = vec![n, Dim::Fixed(c), Dim::Fixed(1), Dim::Fixed(1)];
        let gamma = g.reshape(gamma, as_image.clone())?;
        let beta = g.reshape(beta, as_image)?;
        let one = g.scalar(1.0);
        let scale = g.add(gamma, one)?;
        let scaled = g.mul(h, scale)?;
        g.add(scaled, beta)
    }

    /// Single-head self-attention over the spatial positions with a residual connection; the
    /// output projection starts at zero, so the block starts as the identity.
    ///
    /// The softmax subtracts the mean logit of each row (softmax is shift-invariant, and the mean
    /// is differentiable, unlike the max), which keeps exp() in range for normalised features.
    pub fn attention(
        &mut self,
        name: &str,
        h: NodeId,
        groups: usize,
    ) -> Result<NodeId, GraphError> {
        let c = channels(self, h)?;
        let shape = self.graph.shape(h).clone();
        let n = shape[0];
        let hw = match (shape[2], shape[3]) {
            (Dim::Fixed(a), Dim::Fixed(b)) => a * b,
            _ => unreachable!("channels() checked an image shape"),
        };
        self.within(name, |s| {
            let x = s.group_norm("norm", h, groups)?;
            let q = s.conv("q", x, c, 1, false)?;
            let k = s.conv("k", x, c, 1, false)?;
            let v = s.conv("v", x, c, 1, false)?;
            let g = &mut *s.graph;
            let flat = vec![n, Dim::Fixed(c), Dim::Fixed(hw)];
            let q = g.reshape(q, flat.clone())?;
            let k = g.reshape(k, flat.clone())?;
            let v = g.reshape(v, flat.clone())?;
            let qt = g.transpose(q, &[0, 2, 1])?;
            let logits = g.matmul(qt, k)?;
            let logits = g.scale(logits, 1.0 / (c as f64).sqrt())?;
            let centre = g.mean(logits, &[2], true)?;
            let shifted = g.sub(logits, centre)?;
            let e = g.exp(shifted);
            let z = g.sum(e, &[2], true)?;
            let weights = g.div(e, z)?;
            let vt = g.transpose(v, &[0, 2, 1])?;
            let mixed = g.matmul(weights, vt)?;
            let mixed = g.transpose(mixed, &[0, 2, 1])?;
            let mixed = g.reshape(mixed, shape.clone())?;
            let out = s.conv("proj", mixed, c, 1, true)?;
            s.graph.add(h, out)
        })
    }
}
