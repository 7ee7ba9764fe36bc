//! ψ(x, t) = ½‖x − U(x, t)‖² and its explicit gradients, for any network U.

use crate::graph::{vjp, Dim, Graph, GraphError, NodeId};

use super::{ParamSpec, Scope};

/// A network U(x, t) with the shape of x.
pub trait Network {
    /// Shape of one record, without the batch axis.
    fn data_shape(&self) -> Vec<usize>;
    /// Architecture summary stored in the model metadata.
    fn describe(&self) -> serde_json::Value;
    /// Appends U(x, t) to the scope's graph.
    fn u(&self, s: &mut Scope<'_>, x: NodeId, t: NodeId) -> Result<NodeId, GraphError>;
}

/// A potential's graph: inputs, ψ, and the explicit ∇ₓψ and ∂ψ/∂t nodes.
#[derive(Clone, Debug)]
pub struct PotentialGraph {
    pub graph: Graph,
    pub x: NodeId,
    pub t: NodeId,
    pub psi: NodeId,
    pub velocity: NodeId,
    pub dpsi_dt: NodeId,
    pub params: Vec<ParamSpec>,
    pub data_shape: Vec<usize>,
}

/// Builds ψ for `net` and appends its input gradients as ordinary graph nodes.
pub fn build_potential(net: &dyn Network) -> Result<PotentialGraph, GraphError> {
    let data_shape = net.data_shape();
    let mut graph = Graph::new();
    let mut x_shape = vec![Dim::Batch];
    x_shape.extend(data_shape.iter().map(|&d| Dim::Fixed(d)));
    let x = graph.input(vpfb_runtime::contract::INPUT_X, x_shape);
    let t = graph.input(vpfb_runtime::contract::INPUT_T, vec![Dim::Batch]);
    let mut params = Vec::new();
    let u = net.u(&mut Scope::new(&mut graph, &mut params), x, t)?;
    if graph.shape(u) != graph.shape(x) {
        return Err(GraphError::Shape("U(x, t) must have the shape of x".into()));
    }
    let r = graph.sub(x, u)?;
    let r2 = graph.mul(r, r)?;
    let axes: Vec<usize> = (1..=data_shape.len()).collect();
    let sq = graph.sum(r2, &axes, false)?;
    let psi = graph.scale(sq, 0.5)?;
    let seed = graph.full_like(1.0, psi)?;
    let grads = vjp(&mut graph, psi, seed, &[x, t])?;
    Ok(PotentialGraph {
        graph,
        x,
        t,
        psi,
        velocity: grads[0],
        dpsi_dt: grads[1],
        params,
        data_shape,
    })
}

/// The Hessian-vector product nodes appended by [`add_hvp`].
#[derive(Clone, Copy, Debug)]
pub struct HvpNodes {
    /// Input `probe`, shaped like x.
    pub probe: NodeId,
    /// ∇ₓ(∇ₓψ · probe) = ∇ₓ²ψ · probe, shaped like x.
    pub hvp: NodeId,
}

/// Differentiates the explicit gradient once more along an input `probe`: the Hessian-vector
/// product that exact log-likelihoods need (the divergence of the flow is the trace of ∇ₓ²ψ).
pub fn add_hvp(pg: &mut PotentialGraph) -> Result<HvpNodes, GraphError> {
    let g = &mut pg.graph;
    let probe = g.input(vpfb_runtime::contract::INPUT_PROBE, g.shape(pg.x).to_vec());
    let gv = g.mul(pg.velocity, probe)?;
    let axes: Vec<usize> = (1..=pg.data_shape.len()).collect();
    let dot = g.sum(gv, &axes, false)?;
    let seed = g.full_like(1.0, dot)?;
    let hvp = vjp(g, dot, seed, &[pg.x])?[0];
    Ok(HvpNodes { probe, hvp })
}
