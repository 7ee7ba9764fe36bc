//! The wide im2col patches of a stride-1 convolution written by one CPU kernel (a Candle custom op):
//! each image channel is padded once into a small scratch row and its `k·k` shifted windows are
//! copied straight into the contiguous result. Built from Candle's tensor ops the same patches cost
//! three padded copies of the input, a strided concatenation and a final copy to make it contiguous;
//! those copies were about a fifth of a UNet training step.
//!
//! Forward only: a tensor that carries Candle's autograd goes through the tensor-op form instead (see
//! `candle_conv::im2col`), and so does any device but the CPU.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, WithDType};

/// Wide patches of a `[N, C, H, W]` input (any strides) zero-padded by `pad`, for a `k × k` kernel:
/// `[N, k·k·C, oh·wp]`, rows ordered (dy, dx, c), `wp = W + 2·pad`, `oh = H + 2·pad + 1 − k`.
pub struct Im2Col {
    pub pad: usize,
    pub k: usize,
}

impl Im2Col {
    fn run<T: WithDType>(&self, x: &[T], layout: &Layout) -> Result<(Vec<T>, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let (pad, k) = (self.pad, self.k);
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let oh = hp + 1 - k;
        let len = oh * wp;
        let st = layout.stride();
        let x = &x[layout.start_offset()..];
        // Every channel's padded image, flattened, with k − 1 zeros after it for the last windows'
        // overhang; the borders stay zero, the interiors are rewritten for each image.
        let plane = hp * wp + k - 1;
        let mut padded = vec![T::zero(); c * plane];
        // Written in order, so the result needs no zeroing first.
        let mut out = Vec::with_capacity(n * k * k * c * len);
        for b in 0..n {
            for (ch, image) in padded.chunks_exact_mut(plane).enumerate() {
                let base = b * st[0] + ch * st[1];
                for y in 0..h {
                    let row = &mut image[(y + pad) * wp + pad..][..w];
                    let src = base + y * st[2];
                    if st[3] == 1 {
                        row.copy_from_slice(&x[src..src + w]);
                    } else {
                        for (i, v) in row.iter_mut().enumerate() {
                            *v = x[src + i * st[3]];
                        }
                    }
                }
            }
            for dy in 0..k {
                for dx in 0..k {
                    for image in padded.chunks_exact(plane) {
                        out.extend_from_slice(&image[dy * wp + dx..][..len]);
                    }
                }
            }
        }
        Ok((out, Shape::from((n, k * k * c, len))))
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-wide"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        match storage {
            CpuStorage::F32(x) => {
                let (v, s) = self.run(x, layout)?;
                Ok((CpuStorage::F32(v), s))
            }
            CpuStorage::F64(x) => {
                let (v, s) = self.run(x, layout)?;
                Ok((CpuStorage::F64(v), s))
            }
            other => candle_core::bail!("im2col: unsupported dtype {:?}", other.dtype()),
        }
    }
}
