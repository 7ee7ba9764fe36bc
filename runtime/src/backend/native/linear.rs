//! Matrix products and the convolutions that are matrix products (1×1, im2col, transposed),
//! through one single-precision GEMM (the `gemm` crate: pure Rust, kernels chosen at run time
//! for AVX2/FMA or SSE on x86-64 and NEON on aarch64). Stride-1 "same" convolutions take the
//! direct path of `direct_conv.rs`.

use super::NativeError;

/// `c[m×n] = a[m×k] · b[k×n]`, each matrix given by its row and column strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (isize, isize),
    b: &[f32],
    (rsb, csb): (isize, isize),
    c: &mut [f32],
    (rsc, csc): (isize, isize),
) {
    let last = |rows: usize, cols: usize, rs: isize, cs: isize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            ((rows - 1) as isize * rs + (cols - 1) as isize * cs) as usize
        }
    };
    // The strides are planned from the shapes; these checks keep a planning mistake from reading
    // or writing out of bounds.
    assert!(
        m * k == 0 || last(m, k, rsa, csa) < a.len(),
        "gemm: lhs out of bounds"
    );
    assert!(
        k * n == 0 || last(k, n, rsb, csb) < b.len(),
        "gemm: rhs out of bounds"
    );
    assert!(
        m * n == 0 || last(m, n, rsc, csc) < c.len(),
        "gemm: output out of bounds"
    );
    if m * n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                c[(i as isize * rsc + j as isize * csc) as usize] = 0.0;
            }
        }
        return;
    }
    // SAFETY: every element the product touches lies inside its slice (checked above), and `c`
    // does not overlap `a` or `b` (it is borrowed mutably). With `read_dst` false, `c` is
    // overwritten with 1.0 · a·b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc,
            rsc,
            false,
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A batched matrix product `[…, m, k] · […, k, n]` planned for fixed shapes: the element
/// offsets of each batch's operands.
#[derive(Clone, Debug)]
pub(super) struct MatMul {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Offsets of (a, b, out) for each product.
    pub batches: Vec<(usize, usize, usize)>,
}

impl MatMul {
    /// Plans ONNX MatMul (numpy `matmul`): returns the plan and the output shape.
    pub fn plan(a: &[usize], b: &[usize]) -> Result<(Self, Vec<usize>), NativeError> {
        let bad = || NativeError::Shape(format!("MatMul of shapes {a:?} and {b:?}"));
        if a.is_empty() || b.is_empty() {
            return Err(bad());
        }
        // A vector operand is a one-row (lhs) or one-column (rhs) matrix, its axis dropped after.
        let a2: Vec<usize> = if a.len() == 1 {
            vec![1, a[0]]
        } else {
            a.to_vec()
        };
        let b2: Vec<usize> = if b.len() == 1 {
            vec![b[0], 1]
        } else {
            b.to_vec()
        };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != kb {
            return Err(bad());
        }
        let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
        let batch = super::walk::broadcast_shape(ab, bb).ok_or_else(bad)?;
        let sa = super::walk::broadcast_strides(ab, &batch).ok_or_else(bad)?;
        let sb = super::walk::broadcast_strides(bb, &batch).ok_or_else(bad)?;
        let count: usize = batch.iter().product();
        let mut batches = Vec::with_capacity(count);
        let mut index = vec![0usize; batch.len()];
        for i in 0..count {
            let off =
                |s: &[isize]| -> usize { index.iter().zip(s).map(|(&j, &s)| j * s as usize).sum() };
            batches.push((off(&sa) * m * k, off(&sb) * k * n, i * m * n));
            for axis in (0..batch.len()).rev() {
                index[axis] += 1;
                if index[axis] < batch[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        let mut plan = Self { m, k, n, batches };
        // A shared rhs under a contiguous lhs batch is one tall product: [batch·m, k] · [k, n].
        let tall = plan
            .batches
            .iter()
            .enumerate()
            .all(|(i, &(oa, ob, _))| ob == 0 && oa == i * m * k);
        if tall && plan.batches.len() > 1 {
            plan.m *= plan.batches.len();
            plan.batches = vec![(0, 0, 0)];
        }
        let mut shape = batch;
        if a.len() > 1 {
            shape.push(m);
        }
        if b.len() > 1 {
            shape.push(n);
        }
        Ok((plan, shape))
    }

    pub fn run(&self, a: &[f32], b: &[f32], out: &mut [f32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        for &(oa, ob, oc) in &self.batches {
            gemm(
                (m, k, n),
                &a[oa..oa + m * k],
                (k as isize, 1),
                &b[ob..ob + k * n],
                (n as isize, 1),
                &mut out[oc..oc + m * n],
                (n as isize, 1),
            );
        }
    }
}

/// The geometry of a 2-D convolution (NCHW), shared by Conv and ConvTranspose. For Conv the
/// "input" is x; for ConvTranspose the roles are swapped (its output has the geometry of a
/// Conv's input).
#[derive(Clone, Debug)]
pub(super) struct Conv2d {
    pub batch: usize,
    pub group: usize,
    /// Channels, height and width of the convolution's input image.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output channels, height and width.
    pub m: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Padding at the top and left.
    pub pad: [usize; 2],
}

impl Conv2d {
    /// Rows of a patch matrix: input channels of one group times kernel positions.
    pub fn patch_rows(&self) -> usize {
        self.c / self.group * self.kh * self.kw
    }

    /// Workspace floats of [`Conv2d::forward`]: the direct path's planes and output grid, or the
    /// patch matrix of one image and group.
    pub fn workspace(&self) -> usize {
        if self.is_pointwise() {
            0
        } else if self.is_shifted() {
            self.direct_workspace()
        } else {
            self.patch_rows() * self.ho * self.wo
        }
    }

    /// A 1×1 convolution with stride 1 and no padding: the image itself is the patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && (self.ho, self.wo) == (self.h, self.w)
    }

    /// For each patch row (channel, kernel row, kernel column) and output pixel, the input
    /// pixel it reads, if inside the image: calls `f(row, out_pixel_start, in_pixel_start, len,
    /// in_step)` for each run of output pixels along one output row.
    fn patches(&self, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        let cg = self.c / self.group;
        for ch in 0..cg {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = (ch * self.kh + ki) * self.kw + kj;
                    for oy in 0..self.ho {
                        let y = (oy * self.stride[0] + ki * self.dilation[0]) as isize
                            - self.pad[0] as isize;
                        if y < 0 || y >= self.h as isize {
                            continue;
                        }
                        // Output columns whose input column x = ox·s + kj·d − pad lies in [0, w).
                        let off = (kj * self.dilation[1]) as isize - self.pad[1] as isize;
                        let s = self.stride[1] as isize;
                        let first = if off >= 0 { 0 } else { (-off + s - 1) / s };
                        let last = (self.w as isize - 1 - off).div_euclid(s);
                        let last = last.min(self.wo as isize - 1);
                        if last < first {
                            continue;
                        }
                        let x0 = (first * s + off) as usize;
                        f(
                            row,
                            oy * self.wo + first as usize,
                            (ch * self.h + y as usize) * self.w + x0,
                            (last - first + 1) as usize,
                            self.stride[1],
                        );
                    }
                }
            }
        }
    }

    /// The patch matrix `[patch_rows, ho·wo]` of one image and group (`image`: its channels).
    fn im2col(&self, image: &[f32], cols: &mut [f32]) {
        let ohw = self.ho * self.wo;
        cols.fill(0.0);
        self.patches(|row, o, i, len, step| {
            let dst = &mut cols[row * ohw + o..][..len];
            if step == 1 {
                dst.copy_from_slice(&image[i..i + len]);
            } else {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = image[i + j * step];
                }
            }
        });
    }

    /// Conv: `x [batch, c, h, w]`, `kernel [m, c/group, kh, kw]`, optional `bias [m]` →
    /// `out [batch, m, ho, wo]`.
    pub fn forward(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        if self.is_shifted() {
            return self.direct_forward(x, kernel, bias, out, work);
        }
        let (cg, mg) = (self.c / self.group, self.m / self.group);
        let (hw, ohw, rows) = (self.h * self.w, self.ho * self.wo, self.patch_rows());
        for n in 0..self.batch {
            for g in 0..self.group {
                let image = &x[(n * self.c + g * cg) * hw..][..cg * hw];
                let cols: &[f32] = if self.is_pointwise() {
                    image
                } else {
                    let cols = &mut work[..rows * ohw];
                    self.im2col(image, cols);
                    cols
                };
                let y = &mut out[(n * self.m + g * mg) * ohw..][..mg * ohw];
                gemm(
                    (mg, rows, ohw),
                    &kernel[g * mg * rows..][..mg * rows],
                    (rows as isize, 1),
                    cols,
                    (ohw as isize, 1),
                    y,
                    (ohw as isize, 1),
                );
                if let Some(bias) = bias {
                    for (j, plane) in y.chunks_exact_mut(ohw).enumerate() {
                        let b = bias[g * mg + j];
                        plane.iter_mut().for_each(|v| *v += b);
                    }
                }
            }
        }
    }

    /// ConvTranspose, the adjoint of [`Conv2d::forward`] in x: `dy [batch, m, ho, wo]`,
    /// `kernel [m, c/group, kh, kw]` (ONNX ConvTranspose's layout with this geometry's m as its
    /// input channels), optional `bias [c]` → `out [batch, c, h, w]`.
    pub fn transpose(
        &self,
        dy: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        let (cg, mg) = (self.c / self.group, self.m / self.group);
        let (hw, ohw, rows) = (self.h * self.w, self.ho * self.wo, self.patch_rows());
        out.fill(0.0);
        for n in 0..self.batch {
            for g in 0..self.group {
                // Patch gradients: cols[rows, ohw] = kernel_gᵀ · dy_g.
                let cols = &mut work[..rows * ohw];
                gemm(
                    (rows, mg, ohw),
                    &kernel[g * mg * rows..][..mg * rows],
                    (1, rows as isize),
                    &dy[(n * self.m + g * mg) * ohw..][..mg * ohw],
                    (ohw as isize, 1),
                    cols,
                    (ohw as isize, 1),
                );
                let image = &mut out[(n * self.c + g * cg) * hw..][..cg * hw];
                self.patches(|row, o, i, len, step| {
                    let src = &cols[row * ohw + o..][..len];
                    for (j, &v) in src.iter().enumerate() {
                        image[i + j * step] += v;
                    }
                });
            }
            if let Some(bias) = bias {
                let image = &mut out[n * self.c * hw..][..self.c * hw];
                for (j, plane) in image.chunks_exact_mut(hw).enumerate() {
                    plane.iter_mut().for_each(|v| *v += bias[j]);
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn geometry(stride: usize, pad: usize) -> Conv2d {
        let (h, k) = (5, 3);
        let ho = (h + 2 * pad - k) / stride + 1;
        Conv2d {
            batch: 2,
            group: 1,
            c: 2,
            h,
            w: h,
            m: 3,
            ho,
            wo: ho,
            kh: k,
            kw: k,
            stride: [stride; 2],
            dilation: [1, 1],
            pad: [pad; 2],
        }
    }

    pub(in crate::backend::native) fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    /// The definition, one output element at a time.
    pub(in crate::backend::native) fn direct(
        g: &Conv2d,
        x: &[f32],
        k: &[f32],
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let (cg, mg) = (g.c / g.group, g.m / g.group);
        let mut out = vec![0.0; g.batch * g.m * g.ho * g.wo];
        for n in 0..g.batch {
            for m in 0..g.m {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut s = bias.map_or(0.0, |b| b[m]);
                        for ci in 0..cg {
                            let c = m / mg * cg + ci;
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let y = (oy * g.stride[0] + i) as isize - g.pad[0] as isize;
                                    let xx = (ox * g.stride[1] + j) as isize - g.pad[1] as isize;
                                    if y >= 0
                                        && xx >= 0
                                        && (y as usize) < g.h
                                        && (xx as usize) < g.w
                                    {
                                        s += x[((n * g.c + c) * g.h + y as usize) * g.w
                                            + xx as usize]
                                            * k[((m * cg + ci) * g.kh + i) * g.kw + j];
                                    }
                                }
                            }
                        }
                        out[((n * g.m + m) * g.ho + oy) * g.wo + ox] = s;
                    }
                }
            }
        }
        out
    }

    /// Stride-1 "same"-width convolutions take the direct path (no patch matrix). It computes
    /// the definition for odd, even and one-row kernels; padding that keeps, shrinks or grows
    /// the height; output channels that do not fill a tile; groups, batches and a bias.
    #[test]
    fn the_direct_path_matches_the_definition() {
        for (batch, group, c, m, h, w, (kh, kw), (top, left), ho) in [
            (1, 1, 2, 3, 5, 5, (3, 3), (1, 1), 5),
            (2, 1, 3, 4, 6, 7, (3, 3), (1, 1), 6),
            (1, 1, 1, 6, 4, 6, (5, 5), (2, 2), 4),
            (1, 2, 4, 10, 3, 7, (3, 3), (0, 1), 1),
            (2, 1, 2, 5, 3, 4, (2, 2), (1, 0), 4),
            (1, 1, 3, 1, 2, 3, (3, 3), (2, 1), 4),
            (1, 1, 2, 2, 9, 19, (1, 3), (0, 1), 9),
        ] {
            let g = Conv2d {
                batch,
                group,
                c,
                h,
                w,
                m,
                ho,
                wo: w,
                kh,
                kw,
                stride: [1, 1],
                dilation: [1, 1],
                pad: [top, left],
            };
            assert!(g.is_shifted());
            let x = values(batch * c * h * w, 0.1);
            let k = values(m * c / group * kh * kw, 0.7);
            let bias = values(m, 2.0);
            let mut work = vec![f32::NAN; g.workspace()];
            let mut y = vec![f32::NAN; batch * m * ho * w];
            g.forward(&x, &k, Some(&bias), &mut y, &mut work);
            let want = direct(&g, &x, &k, Some(&bias));
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{g:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn convolution_matches_its_definition_and_the_transpose_is_its_adjoint() {
        for (stride, pad) in [(1, 1), (2, 1), (2, 0), (1, 0)] {
            let g = geometry(stride, pad);
            let x = values(g.batch * g.c * g.h * g.w, 0.1);
            let k = values(g.m * g.c * g.kh * g.kw, 0.7);
            let mut work = vec![0.0; g.workspace().max(g.patch_rows() * g.ho * g.wo)];
            let mut y = vec![0.0; g.batch * g.m * g.ho * g.wo];
            g.forward(&x, &k, None, &mut y, &mut work);
            let want = direct(&g, &x, &k, None);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "stride {stride} pad {pad}: {a} vs {b}"
                );
            }
            // ⟨conv(x), dy⟩ = ⟨x, convᵀ(dy)⟩
            let dy = values(y.len(), 1.3);
            let mut dx = vec![0.0; x.len()];
            g.transpose(&dy, &k, None, &mut dx, &mut work);
            let lhs: f32 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn matmul_broadcasts_batches_and_folds_a_shared_rhs() {
        let (plan, shape) = MatMul::plan(&[4, 3, 2], &[2, 5]).unwrap();
        assert_eq!(shape, vec![4, 3, 5]);
        assert_eq!((plan.m, plan.batches.len()), (12, 1));
        let (plan, shape) = MatMul::plan(&[2, 1, 3, 4], &[5, 4, 6]).unwrap();
        assert_eq!(shape, vec![2, 5, 3, 6]);
        assert_eq!(plan.batches.len(), 10);
        assert_eq!(plan.batches[6], (3 * 4, 4 * 6, 6 * 3 * 6));
        assert!(MatMul::plan(&[3, 4], &[5, 6]).is_err());
        let (_, shape) = MatMul::plan(&[4], &[4, 2]).unwrap();
        assert_eq!(shape, vec![2]);
    }
}
