//! A potential evaluated by Candle as a [`VelocityField`], for sampling during training (no export).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vpfb_runtime::solver::VelocityField;
use vpfb_runtime::Error as RuntimeError;

use crate::graph::candle_eval::{eval, Bindings};
use crate::nn::PotentialGraph;

/// ∇ₓψ from a potential graph and a set of weights (e.g. the EMA weights).
pub struct CandleField<'a> {
    pub pg: &'a PotentialGraph,
    pub params: HashMap<String, Tensor>,
    pub device: Device,
}

impl CandleField<'_> {
    /// ψ, ∇ₓψ and ∂ψ/∂t at `x` (`[n, D]` row-major, model space) and times `t`.
    pub fn evaluate(&self, x: &[f32], t: &[f32]) -> candle_core::Result<[Vec<f32>; 3]> {
        let n = t.len();
        let mut dims = vec![n];
        dims.extend(&self.pg.data_shape);
        let inputs = HashMap::from([
            ("x".to_string(), Tensor::from_slice(x, dims, &self.device)?),
            ("t".to_string(), Tensor::from_slice(t, n, &self.device)?),
        ]);
        let out = eval(
            &self.pg.graph,
            &Bindings {
                inputs,
                params: &self.params,
            },
            &[self.pg.psi, self.pg.velocity, self.pg.dpsi_dt],
            DType::F32,
            &self.device,
        )
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let f = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>();
        Ok([f(&out[0])?, f(&out[1])?, f(&out[2])?])
    }
}

impl VelocityField for CandleField<'_> {
    fn record_len(&self) -> usize {
        self.pg.data_shape.iter().product()
    }

    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, RuntimeError> {
        let n = x.len() / self.record_len();
        let [_, v, _] = self
            .evaluate(x, &vec![t; n])
            .map_err(|e| RuntimeError::Numeric(format!("candle: {e}")))?;
        Ok(v)
    }
}
