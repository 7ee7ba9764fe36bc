//! The gradient of a training loss in the network's parameters, written into the graph itself.
//!
//! The loss reads ψ, v = ∇ₓψ and s = ∂ψ/∂t. Given its cotangents ∂L/∂ψ, ∂L/∂v and ∂L/∂s (cheap: the
//! loss is a few elementwise terms), the parameter gradient is one vector-Jacobian product of the
//! potential graph, appended with [`vjp`] like the input gradients. Evaluating it as graph ops rather
//! than through Candle's autograd avoids autograd's per-node bookkeeping: Candle accumulates every
//! gradient into a freshly zeroed buffer, which took about two fifths of a UNet training step.

use super::PotentialGraph;
use crate::graph::{eliminate_common_subexpressions, vjp, Graph, GraphError, NodeId, Op};

/// Input names of the three cotangents.
pub const COTANGENT_PSI: &str = "cotangent_psi";
pub const COTANGENT_VELOCITY: &str = "cotangent_velocity";
pub const COTANGENT_DPSI_DT: &str = "cotangent_dpsi_dt";

/// A potential graph extended with the parameter gradient of Σᵢ (ψᵢ·c_ψ,ᵢ + vᵢ·c_v,ᵢ + sᵢ·c_s,ᵢ).
#[derive(Clone, Debug)]
pub struct ParamGradientGraph {
    /// The potential's nodes and the gradient nodes, with repeated terms merged (node ids differ
    /// from the [`PotentialGraph`]'s).
    pub graph: Graph,
    pub psi: NodeId,
    pub velocity: NodeId,
    pub dpsi_dt: NodeId,
    /// Each parameter's name and its gradient node.
    pub grads: Vec<(String, NodeId)>,
    /// The shape of one record.
    pub data_shape: Vec<usize>,
}

/// Appends the parameter gradient to a copy of `pg`'s graph.
pub fn param_gradient_graph(pg: &PotentialGraph) -> Result<ParamGradientGraph, GraphError> {
    let mut g = pg.graph.clone();
    let params: Vec<(String, NodeId)> = g
        .nodes()
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match &n.op {
            Op::Param(name) => Some((name.clone(), NodeId(i))),
            _ => None,
        })
        .collect();
    let c_psi = g.input(COTANGENT_PSI, g.shape(pg.psi).to_vec());
    let c_v = g.input(COTANGENT_VELOCITY, g.shape(pg.velocity).to_vec());
    let c_s = g.input(COTANGENT_DPSI_DT, g.shape(pg.dpsi_dt).to_vec());
    let psi_part = g.mul(pg.psi, c_psi)?;
    let v_prod = g.mul(pg.velocity, c_v)?;
    let axes: Vec<usize> = (1..=pg.data_shape.len()).collect();
    let v_part = g.sum(v_prod, &axes, false)?;
    let s_part = g.mul(pg.dpsi_dt, c_s)?;
    let sum = g.add(psi_part, v_part)?;
    let per_record = g.add(sum, s_part)?;
    let seed = g.full_like(1.0, per_record)?;
    let nodes: Vec<NodeId> = params.iter().map(|(_, id)| *id).collect();
    let grads = vjp(&mut g, per_record, seed, &nodes)?;
    // The second VJP rebuilds terms the first one already holds; evaluate each once.
    let (graph, remap) = eliminate_common_subexpressions(&g);
    let at = |id: NodeId| remap[id.index()];
    Ok(ParamGradientGraph {
        graph,
        psi: at(pg.psi),
        velocity: at(pg.velocity),
        dpsi_dt: at(pg.dpsi_dt),
        grads: params
            .into_iter()
            .map(|(n, _)| n)
            .zip(grads.into_iter().map(at))
            .collect(),
        data_shape: pg.data_shape.clone(),
    })
}
