//! Convolutions in the Candle lowering: stride 1 (every convolution of the networks and of their
//! gradients) as im2col patches times the kernel, one batched matrix product. Candle's own backward
//! of `conv2d` goes through its direct `conv_transpose2d` loop, several times slower than the matrix
//! products of this form.
//!
//! A convolution and the gradient of its kernel read the same patches of the same input, so an
//! evaluation builds them once ([`Patches`]).

use std::collections::HashMap;

use candle_core::{Result, Tensor};

use super::candle_eval::broadcast_for_grad;
use super::candle_im2col::Im2Col;
use super::{Dim, Graph, NodeId, Op};

/// im2col patches that more than one node of an evaluation reads, by (input node, padding, kernel
/// extent); each is dropped after its last reader.
#[derive(Default)]
pub struct Patches {
    /// Readers still to come, by key; only keys with two or more readers are kept.
    pending: HashMap<(usize, usize, usize), usize>,
    built: HashMap<(usize, usize, usize), (Tensor, usize)>,
}

/// The patches a node reads: (input node, padding, kernel extent).
fn patch_key(graph: &Graph, id: NodeId) -> Option<(usize, usize, usize)> {
    let extent = |w: &NodeId| match graph.shape(*w)[2] {
        Dim::Fixed(k) => k,
        Dim::Batch => 0,
    };
    match &graph.nodes()[id.index()].op {
        Op::Conv2d {
            x,
            w,
            stride: 1,
            pad,
        } => Some((x.index(), *pad, extent(w))),
        Op::ConvTranspose2d {
            x,
            w,
            stride: 1,
            pad,
            ..
        } if *pad < extent(w) => Some((x.index(), extent(w) - 1 - pad, extent(w))),
        Op::Conv2dKernelGrad { x, pad, k, .. } => Some((x.index(), *pad, *k)),
        _ => None,
    }
}

impl Patches {
    /// Plans the sharing for nodes evaluated in `order`.
    pub fn plan(graph: &Graph, order: &[usize]) -> Self {
        let mut pending = HashMap::new();
        for &i in order {
            if let Some(key) = patch_key(graph, NodeId(i)) {
                *pending.entry(key).or_insert(0) += 1;
            }
        }
        pending.retain(|_, n| *n > 1);
        Self {
            pending,
            built: HashMap::new(),
        }
    }

    /// The wide patches of `x` (node `node`) padded by `pad` for a `k × k` kernel and an `oh`-row
    /// output, and their row width ([`im2col`]), built once for all of their readers.
    fn get(
        &mut self,
        node: NodeId,
        x: &Tensor,
        pad: usize,
        k: usize,
        oh: usize,
    ) -> Result<(Tensor, usize)> {
        let key = (node.index(), pad, k);
        let Some(left) = self.pending.get_mut(&key) else {
            return im2col(x, pad, k, oh);
        };
        *left -= 1;
        let patches = match self.built.get(&key) {
            Some(p) => p.clone(),
            None => im2col(x, pad, k, oh)?,
        };
        if *left == 0 {
            self.pending.remove(&key);
            self.built.remove(&key);
        } else {
            self.built.insert(key, patches.clone());
        }
        Ok(patches)
    }

    /// Convolution of `x` (node `node`) with a `[O, C, k, k]` kernel.
    pub fn conv2d(
        &mut self,
        node: NodeId,
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor> {
        if stride != 1 {
            return x.conv2d(w, pad, stride, 1, 1);
        }
        let (n, c, h, wd) = x.dims4()?;
        let (o, _, k, _) = w.dims4()?;
        let (oh, ow) = (h + 2 * pad + 1 - k, wd + 2 * pad + 1 - k);
        let (cols, wp) = self.get(node, x, pad, k, oh)?;
        let wm = w.permute((0, 2, 3, 1))?.reshape((1, o, k * k * c))?;
        // Without autograd the kernel is a stride-0 view over the batch: the product reads the one
        // copy for every image instead of a materialised copy per image.
        let wm = broadcast_for_grad(&wm, &(n, o, k * k * c).into())?;
        let wide = wm.matmul(&cols)?.reshape((n, o, oh, wp))?;
        if wp == ow {
            Ok(wide)
        } else {
            wide.narrow(3, 0, ow)
        }
    }

    /// Transposed convolution with a `[C, O, k, k]` kernel. Stride 1 is a convolution with the kernel
    /// flipped in space, its two channel axes swapped, and padding `k − 1 − pad`.
    pub fn conv_transpose2d(
        &mut self,
        node: NodeId,
        x: &Tensor,
        w: &Tensor,
        (stride, pad, out_pad): (usize, usize, usize),
    ) -> Result<Tensor> {
        let k = w.dim(2)?;
        if stride != 1 || pad + 1 > k {
            return x.conv_transpose2d(w, pad, out_pad, stride, 1);
        }
        let swapped = flip(w)?.transpose(0, 1)?;
        self.conv2d(node, x, &swapped, 1, k - 1 - pad)
    }

    /// The kernel gradient of a stride-1 convolution of `x` (node `node`) whose output gradient is
    /// `g`: each image's `[O, H'·W']` gradient times its patches, summed over the batch by a matrix
    /// product with a row of ones. `transposed`: see [`Op::Conv2dKernelGrad`].
    pub fn kernel_grad(
        &mut self,
        node: NodeId,
        x: &Tensor,
        g: &Tensor,
        (pad, k, transposed): (usize, usize, bool),
    ) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        let (_, o, oh, ow) = g.dims4()?;
        let (cols, wp) = self.get(node, x, pad, k, oh)?;
        // Zero gradient for the wide form's extra columns.
        let g = if wp == ow {
            g.clone()
        } else {
            g.pad_with_zeros(3, 0, wp - ow)?
        };
        // Patches times the transposed output gradient (a column-major view), [N, k·k·C, O]: gemm
        // repacks the gradient, the smaller operand, rather than the patches.
        let per_image = cols.matmul(&g.reshape((n, o, oh * wp))?.transpose(1, 2)?)?;
        let ones = Tensor::ones((1, n), per_image.dtype(), per_image.device())?;
        let dw = ones
            .matmul(&per_image.reshape((n, k * k * c * o))?)?
            .reshape((k, k, c, o))?
            .permute((3, 2, 0, 1))?;
        if transposed {
            flip(&dw.contiguous()?)?.transpose(0, 1)?.contiguous()
        } else {
            dw.contiguous()
        }
    }
}

/// A kernel flipped on both spatial axes.
fn flip(w: &Tensor) -> Result<Tensor> {
    let k = w.dim(2)?;
    let rev = Tensor::from_vec((0..k as u32).rev().collect::<Vec<_>>(), k, w.device())?;
    w.index_select(&rev, 2)?.index_select(&rev, 3)
}

/// The `k × k` patches of `x` zero-padded by `pad`, for an `oh`-row output, in wide form:
/// `[N, k·k·C, oh·wp]`, rows ordered (dy, dx, c), where `wp` (returned) is the padded width. Each output
/// row has `wp` columns of which the first `ow = wp − k + 1` are the convolution's; the rest read
/// across the row's end and are cut off afterwards. In this form every patch is one contiguous
/// stretch of the flattened padded image, so the patches are built from long copies rather than one
/// short row at a time (building them the narrow way took a quarter of a UNet training step).
///
/// On the CPU, for a tensor without autograd (training, whose gradients come from the graph), one
/// kernel writes the patches ([`Im2Col`]); otherwise they are assembled from tensor ops, which Candle
/// can differentiate and run on any device.
fn im2col(x: &Tensor, pad: usize, k: usize, oh: usize) -> Result<(Tensor, usize)> {
    let (n, c, h, wd) = x.dims4()?;
    if k == 1 && pad == 0 {
        return Ok((x.reshape((n, c, h * wd))?, wd));
    }
    let wp = wd + 2 * pad;
    if x.device().is_cpu() && !x.track_op() {
        return Ok((x.apply_op1_no_bwd(&Im2Col { pad, k })?, wp));
    }
    Ok((im2col_by_tensor_ops(x, pad, k, oh)?.contiguous()?, wp))
}

/// [`im2col`]'s patches from Candle tensor ops (differentiable, any device).
fn im2col_by_tensor_ops(x: &Tensor, pad: usize, k: usize, oh: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
    // k − 1 zeros after the last row keep the last shifted window inside the buffer.
    let flat = x
        .pad_with_zeros(2, pad, pad)?
        .pad_with_zeros(3, pad, pad)?
        .reshape((n, c, hp * wp))?
        .pad_with_zeros(2, 0, k - 1)?;
    let mut patches = Vec::with_capacity(k * k);
    for dy in 0..k {
        for dx in 0..k {
            patches.push(flat.narrow(2, dy * wp + dx, oh * wp)?);
        }
    }
    Tensor::cat(&patches, 1)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::{im2col, im2col_by_tensor_ops};

    /// The one-kernel patches equal the tensor-op patches, for strided inputs (a narrowed wide
    /// convolution output, a transposed view) and both float types.
    #[test]
    fn kernel_patches_equal_tensor_op_patches() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let base = Tensor::arange(0u32, 2 * 3 * 5 * 9, &dev)?
                .to_dtype(dtype)?
                .reshape((2, 3, 5, 9))?;
            let inputs = [
                base.clone(),
                base.narrow(3, 1, 6)?,
                base.narrow(3, 0, 5)?.transpose(2, 3)?,
            ];
            for x in &inputs {
                assert!(!x.track_op());
                for (pad, k) in [(1, 3), (0, 3), (2, 3), (1, 2), (0, 2), (3, 4), (0, 1)] {
                    let h = x.dim(2)?;
                    let oh = h + 2 * pad + 1 - k;
                    let (fast, wp) = im2col(x, pad, k, oh)?;
                    assert!(fast.is_contiguous());
                    assert_eq!(wp, x.dim(3)? + 2 * pad);
                    let slow = im2col_by_tensor_ops(x, pad, k, oh)?;
                    assert_eq!(fast.dims(), slow.dims(), "pad {pad} k {k}");
                    let diff = (fast - slow)?.abs()?.sum_all()?.to_dtype(DType::F64)?;
                    assert_eq!(diff.to_scalar::<f64>()?, 0.0, "pad {pad} k {k} {dtype:?}");
                }
            }
        }
        Ok(())
    }
}
