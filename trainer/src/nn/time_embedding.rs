//! Time embedding: sinusoidal features of `scale`·t (max period 1e4), then Linear → SiLU → Linear
//! (docs/method.md §1). With scale 1 (the method's choice) every feature of t ∈ [0, 1] is at most one
//! radian of a wave, so the features are nearly linear in t; a larger scale spreads them.

use crate::graph::{Dim, GraphError, NodeId};

use super::Scope;

/// Sinusoidal features plus a two-layer MLP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeEmbedding {
    /// Number of sinusoidal features (half sines, half cosines); even.
    pub features: usize,
    /// Output width.
    pub dim: usize,
    /// Multiplier of t before the sinusoids.
    pub scale: f64,
}

impl TimeEmbedding {
    /// Embeds `t` (`[N]`) as `[N, dim]`.
    pub fn build(&self, s: &mut Scope<'_>, t: NodeId) -> Result<NodeId, GraphError> {
        let half = self.features / 2;
        if half == 0 || !self.features.is_multiple_of(2) {
            return Err(GraphError::Shape(format!(
                "time features must be a positive even number, got {}",
                self.features
            )));
        }
        let freqs: Vec<f64> = (0..half)
            .map(|i| self.scale * (-(1e4f64).ln() * i as f64 / half as f64).exp())
            .collect();
        let g = &mut *s.graph;
        let t_col = g.reshape(t, vec![Dim::Batch, Dim::Fixed(1)])?;
        let f = g.constant(&[1, half], freqs)?;
        let args = g.mul(t_col, f)?;
        let (sin, cos) = (g.sin(args), g.cos(args));
        let feats = g.concat(&[sin, cos], 1)?;
        let h = s.linear("linear1", feats, self.features, self.dim, false)?;
        let h = s.graph.silu(h);
        s.linear("linear2", h, self.dim, self.dim, false)
    }
}
