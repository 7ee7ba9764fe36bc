//! Data-parallel gradients: a batch split into shards whose losses and gradients are computed
//! side by side on rayon's pool and summed, each weighted by its share of the records.
//!
//! The `ritz` loss is a mean over records, so the weighted sum equals the whole batch's gradient up to
//! float rounding. The split is part of the run's configuration, not of the machine: a run gives the same
//! numbers on one thread as on many, and a resumed run continues exactly.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rayon::prelude::*;

use super::run::FitError;
use crate::graph::candle_eval::{eval_then, Bindings};
use crate::loss::{loss, LossConfig, PathBatch};
use crate::nn::{ParamGradientGraph, COTANGENT_DPSI_DT, COTANGENT_PSI, COTANGENT_VELOCITY};

/// The `[start, start + len)` record ranges of `shards` near-equal shards of a `batch`: never more
/// shards than records, the longer shards first.
pub fn shard_ranges(batch: usize, shards: usize) -> Vec<(usize, usize)> {
    let n = shards.clamp(1, batch.max(1));
    let (base, extra) = (batch / n, batch % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let range = (start, len);
            start += len;
            range
        })
        .collect()
}

/// The records `[start, start + len)` of a path batch.
fn rows(batch: &PathBatch, start: usize, len: usize) -> candle_core::Result<PathBatch> {
    Ok(PathBatch {
        xbar: batch.xbar.narrow(0, start, len)?,
        eps: batch.eps.narrow(0, start, len)?,
        t: batch.t.narrow(0, start, len)?,
        tc: batch.tc.narrow(0, start, len)?,
        xt: batch.xt.narrow(0, start, len)?,
    })
}

/// What one training step needs to compute a loss: the network with its parameter gradient, the loss
/// settings and the weights.
pub struct StepInputs<'a> {
    pub graph: &'a ParamGradientGraph,
    pub loss: &'a LossConfig,
    /// The weights by name: plain tensors (gradients come from the graph, not from Candle's autograd).
    pub params: &'a HashMap<String, Tensor>,
    pub dtype: DType,
    pub device: &'a Device,
}

/// The loss terms (total, corr, norm, temb, source) of the whole batch and the gradient of the total
/// for every parameter, by name.
pub struct ShardedStep {
    pub terms: [f64; 5],
    pub grads: HashMap<String, Tensor>,
}

/// One shard's weighted loss terms and the gradient of its weighted total.
fn shard_step(
    inputs: &StepInputs,
    batch: &PathBatch,
    weight: f64,
) -> Result<ShardedStep, FitError> {
    let pgg = inputs.graph;
    let b = batch.xbar.dims2()?.0;
    let mut x_dims = vec![b];
    x_dims.extend(&pgg.data_shape);
    let bindings = Bindings {
        inputs: HashMap::from([
            ("x".to_string(), batch.xt.reshape(x_dims)?),
            ("t".to_string(), batch.t.clone()),
        ]),
        params: inputs.params,
    };
    let mut terms = None;
    let (_, grads) = eval_then(
        &pgg.graph,
        &bindings,
        &[pgg.psi, pgg.velocity, pgg.dpsi_dt],
        |out| {
            // The loss and its cotangents through Candle's autograd: a few elementwise terms.
            let leaves = out
                .iter()
                .map(|t| Var::from_tensor(&t.detach()))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let velocity = leaves[1].as_tensor().reshape(batch.xbar.shape())?;
            let loss_terms = loss(
                inputs.loss,
                leaves[0].as_tensor(),
                &velocity,
                leaves[2].as_tensor(),
                batch,
            )?;
            terms = Some(loss_terms.values()?.map(|v| v * weight));
            let grads = (loss_terms.total * weight)?.backward()?;
            // Detached: a leaf's gradient from Candle's backward still records the ops that made it,
            // and a tracked cotangent would make Candle record (and keep alive) every tensor of the
            // parameter-gradient stage, and send its convolutions down the differentiable path.
            let cotangent = |leaf: &Var| match grads.get(leaf.as_tensor()) {
                Some(g) => Ok(g.detach()),
                None => leaf.as_tensor().zeros_like(),
            };
            Ok(HashMap::from([
                (COTANGENT_PSI.to_string(), cotangent(&leaves[0])?),
                (COTANGENT_VELOCITY.to_string(), cotangent(&leaves[1])?),
                (COTANGENT_DPSI_DT.to_string(), cotangent(&leaves[2])?),
            ]))
        },
        &pgg.grads.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        inputs.dtype,
        inputs.device,
    )?;
    Ok(ShardedStep {
        terms: terms.expect("the loss ran between the stages"),
        grads: pgg
            .grads
            .iter()
            .map(|(n, _)| n.clone())
            .zip(grads)
            .collect(),
    })
}

/// The loss and its parameter gradient for `batch`, computed over `shards` shards in parallel (one
/// shard: the whole batch at once). The caller checks that the loss is a per-record mean
/// ([`LossConfig::per_record`]); otherwise the sum of shard gradients is not the batch's gradient.
pub fn sharded_step(
    inputs: &StepInputs,
    batch: &PathBatch,
    shards: usize,
) -> Result<ShardedStep, FitError> {
    let b = batch.xbar.dims2()?.0;
    let ranges = shard_ranges(b, shards);
    if ranges.len() == 1 {
        return shard_step(inputs, batch, 1.0);
    }
    let parts = ranges
        .par_iter()
        .map(|&(start, len)| shard_step(inputs, &rows(batch, start, len)?, len as f64 / b as f64))
        .collect::<Result<Vec<_>, FitError>>()?;
    let mut parts = parts.into_iter();
    let mut total = parts.next().expect("at least two shards");
    for part in parts {
        for (t, m) in total.terms.iter_mut().zip(part.terms) {
            *t += m;
        }
        for (name, g) in part.grads {
            let sum = (&total.grads[&name] + g)?;
            total.grads.insert(name, sum);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_once_in_order() {
        assert_eq!(shard_ranges(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(shard_ranges(32, 2), vec![(0, 16), (16, 16)]);
        assert_eq!(shard_ranges(3, 8), vec![(0, 1), (1, 1), (2, 1)]);
        assert_eq!(shard_ranges(5, 0), vec![(0, 5)]);
    }
}
