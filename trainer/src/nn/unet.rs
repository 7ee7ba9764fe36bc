//! The `unet` network U(x, t) for images (docs/method.md §1): GroupNorm + SiLU residual blocks with FiLM
//! time conditioning, 2×2 average pooling down, nearest-neighbour upsampling up, skip connections,
//! optional self-attention, and a zero-initialised output convolution (so ψ = ½‖x‖² at the start).

use serde::{Deserialize, Serialize};

use crate::graph::{GraphError, NodeId};

use super::conv_layers::channels;
use super::{Network, Scope, TimeEmbedding};

/// Widths and depths of the UNet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnetConfig {
    /// Image shape `[C, H, W]`.
    pub image: [usize; 3],
    /// Channels at the first level.
    pub base: usize,
    /// Channel multiplier of each level (its length is the number of levels).
    pub mults: Vec<usize>,
    /// Residual blocks per level on the way down (the way up has one more, for the pooled skip).
    pub blocks: usize,
    /// Levels (0 = full resolution) with self-attention after each residual block.
    pub attention: Vec<usize>,
    /// GroupNorm groups (must divide every level's width).
    pub groups: usize,
    /// Sinusoidal time features.
    pub time_features: usize,
    /// Time-embedding width.
    pub time_dim: usize,
}

/// Named sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum UnetPreset {
    /// Trains in hours on two CPU cores: 16 base channels, 3 levels (×1, ×2, ×2), 1 block per level.
    Cpu,
    /// The paper's size: 128 base channels, 3 levels (×1, ×2, ×2), 2 blocks per level, attention at
    /// the second level (16×16 for 32×32 inputs).
    Paper,
}

impl UnetConfig {
    /// A preset for images of shape `[C, H, W]`.
    pub fn preset(preset: UnetPreset, image: [usize; 3]) -> Self {
        let (base, blocks, attention, groups) = match preset {
            UnetPreset::Cpu => (16, 1, vec![], 8),
            UnetPreset::Paper => (128, 2, vec![1], 32),
        };
        Self {
            image,
            base,
            mults: vec![1, 2, 2],
            blocks,
            attention,
            groups,
            time_features: 64,
            time_dim: Self::time_dim_for(base),
        }
    }

    /// Time-embedding width for a base width: 4× the base, at most 256.
    fn time_dim_for(base: usize) -> usize {
        4 * base.min(64)
    }

    /// Sets the base width, and the time-embedding width that goes with it.
    pub fn with_base(mut self, base: usize) -> Self {
        self.base = base;
        self.time_dim = Self::time_dim_for(base);
        self
    }

    /// Sets the number of levels: existing multipliers are kept, new levels use ×2.
    pub fn with_levels(mut self, levels: usize) -> Self {
        self.mults.resize(levels, 2);
        if let Some(m) = self.mults.first_mut() {
            *m = 1;
        }
        self.attention.retain(|&l| l < levels);
        self
    }

    fn check(&self) -> Result<(), GraphError> {
        let [c, h, w] = self.image;
        let bad = |msg: String| Err(GraphError::Shape(format!("unet: {msg}")));
        if c == 0 || h == 0 || w == 0 || self.base == 0 || self.mults.is_empty() || self.blocks == 0
        {
            return bad(format!("needs positive sizes, got {self:?}"));
        }
        let scale = 1usize << (self.mults.len() - 1);
        if h % scale != 0 || w % scale != 0 {
            return bad(format!(
                "{h}×{w} images cannot be halved {} times; use fewer levels",
                self.mults.len() - 1
            ));
        }
        for &m in &self.mults {
            if m == 0 || !(self.base * m).is_multiple_of(self.groups) {
                return bad(format!(
                    "{} GroupNorm groups do not divide the width {} × {m}",
                    self.groups, self.base
                ));
            }
        }
        Ok(())
    }

    fn res_block(
        &self,
        s: &mut Scope<'_>,
        name: &str,
        h: NodeId,
        out: usize,
        temb: NodeId,
    ) -> Result<NodeId, GraphError> {
        let c_in = channels(s, h)?;
        s.within(name, |s| {
            let a = s.group_norm("norm1", h, self.groups.min(c_in))?;
            let a = s.graph.silu(a);
            let a = s.conv("conv1", a, out, 3, false)?;
            let a = s.group_norm("norm2", a, self.groups)?;
            let a = s.film("film", a, temb)?;
            let a = s.graph.silu(a);
            let a = s.conv("conv2", a, out, 3, false)?;
            let skip = if c_in == out {
                h
            } else {
                s.conv("skip", h, out, 1, false)?
            };
            s.graph.add(skip, a)
        })
    }
}

impl Network for UnetConfig {
    fn data_shape(&self) -> Vec<usize> {
        self.image.to_vec()
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "arch": "unet", "config": self })
    }

    fn u(&self, s: &mut Scope<'_>, x: NodeId, t: NodeId) -> Result<NodeId, GraphError> {
        self.check()?;
        let temb = s.within("temb", |s| {
            TimeEmbedding {
                features: self.time_features,
                dim: self.time_dim,
                scale: 1.0,
            }
            .build(s, t)
        })?;
        // Each block's FiLM layer reads the activated embedding.
        let temb = s.graph.silu(temb);
        let levels = self.mults.len();
        let width = |l: usize| self.base * self.mults[l];
        let mut h = s.conv("conv_in", x, self.base, 3, false)?;
        let mut skips = vec![h];
        for l in 0..levels {
            for b in 0..self.blocks {
                h = self.res_block(s, &format!("down.{l}.res.{b}"), h, width(l), temb)?;
                if self.attention.contains(&l) {
                    h = s.attention(&format!("down.{l}.attn.{b}"), h, self.groups)?;
                }
                skips.push(h);
            }
            if l + 1 < levels {
                h = s.graph.avg_pool2(h)?;
                skips.push(h);
            }
        }
        let top = width(levels - 1);
        h = self.res_block(s, "mid.res.0", h, top, temb)?;
        if !self.attention.is_empty() {
            h = s.attention("mid.attn", h, self.groups)?;
        }
        h = self.res_block(s, "mid.res.1", h, top, temb)?;
        for l in (0..levels).rev() {
            for b in 0..=self.blocks {
                let skip = skips.pop().expect("one skip per up block");
                let joined = s.graph.concat(&[h, skip], 1)?;
                h = self.res_block(s, &format!("up.{l}.res.{b}"), joined, width(l), temb)?;
                if self.attention.contains(&l) {
                    h = s.attention(&format!("up.{l}.attn.{b}"), h, self.groups)?;
                }
            }
            if l > 0 {
                h = s.graph.upsample2(h)?;
            }
        }
        let h = s.group_norm("norm_out", h, self.groups)?;
        let h = s.graph.silu(h);
        s.conv("conv_out", h, self.image[0], 3, true)
    }
}
