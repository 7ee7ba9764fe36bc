//! The `mlp` network U(x, t) for vector data: [x, temb(t)] → SiLU hidden layers → a zero-initialised
//! output layer of width D.

use serde::{Deserialize, Serialize};

use crate::graph::{GraphError, NodeId};

use super::{Network, Scope, TimeEmbedding};

/// Width and depth of the MLP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Data dimension D.
    pub dim: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Number of hidden layers (≥ 1).
    pub layers: usize,
    /// Sinusoidal time features.
    pub time_features: usize,
    /// Time-embedding width.
    pub time_dim: usize,
    /// Multiplier of t before the sinusoidal features (runs written before this setting existed load
    /// as 1, the method's choice).
    #[serde(default = "unit_scale")]
    pub time_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

impl MlpConfig {
    /// A network of the given width and depth with the default time embedding.
    pub fn new(dim: usize, hidden: usize, layers: usize) -> Self {
        Self {
            dim,
            hidden,
            layers,
            time_features: 32,
            time_dim: 32,
            time_scale: 1.0,
        }
    }
}

impl Network for MlpConfig {
    fn data_shape(&self) -> Vec<usize> {
        vec![self.dim]
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "arch": "mlp", "config": self })
    }

    fn u(&self, s: &mut Scope<'_>, x: NodeId, t: NodeId) -> Result<NodeId, GraphError> {
        if self.layers == 0 || self.hidden == 0 || self.dim == 0 {
            return Err(GraphError::Shape(format!(
                "mlp needs positive dim, hidden and layers, got {self:?}"
            )));
        }
        let temb = s.within("temb", |s| {
            TimeEmbedding {
                features: self.time_features,
                dim: self.time_dim,
                scale: self.time_scale,
            }
            .build(s, t)
        })?;
        s.within("mlp", |s| {
            let mut h = s.graph.concat(&[x, temb], 1)?;
            let mut width = self.dim + self.time_dim;
            for i in 0..self.layers {
                h = s.linear(&format!("layers.{i}"), h, width, self.hidden, false)?;
                h = s.graph.silu(h);
                width = self.hidden;
            }
            s.linear("out", h, width, self.dim, true)
        })
    }
}
