//! Winograd's F(2×2, 3×3) for 3×3 convolutions with stride 1 and padding 1 (output the size of
//! the input): the convolutions of a UNet and those their gradients are written as.
//!
//! The output is cut into 2×2 tiles, each computed from the 4×4 input patch around it. In the
//! transformed domain (`V = Bᵀ·d·B` for a patch `d`, `U = G·g·Gᵀ` for a kernel `g`) a tile is
//! the elementwise product `U ⊙ V` summed over input channels, transformed back by
//! `Y = Aᵀ·M·A`: 16 multiply-adds per input channel for 4 outputs, where the direct
//! convolution needs 36. The sum over channels is, for each of the 16 transformed positions ξ,
//! a matrix product `M_ξ[m, tile] = Σ_c U_ξ[m, c]·V_ξ[c, tile]`, computed by the direct
//! convolution's register tile ([`tiled`], one tap at offset 0).
//!
//! The transforms add and subtract only (and halve, for the kernel), so the result differs from
//! the direct sum by rounding alone (a few ulp of the largest term).

use super::direct_conv::{tiled, LANES};
use super::dispatch::fastest;
use super::linear::Conv2d;

/// The tiling of one image: `th × tw` tiles, indexed `ty·pw + tx` with `pw = tw + 1` (the
/// last of each row is computed and dropped, so that every step is one long loop), `count` of
/// them, rounded up to whole [`LANES`]. The padded input is split by row and column parity into
/// four planes of `(th + 1) × pw` (plus one float).
struct Tiles {
    tw: usize,
    pw: usize,
    count: usize,
    rounded: usize,
    plane: usize,
}

impl Conv2d {
    /// Whether the convolution can run by Winograd's F(2×2, 3×3): 3×3, stride 1, padding 1, the
    /// output the size of the input.
    pub(super) fn is_winograd(&self) -> bool {
        self.stride == [1, 1]
            && self.dilation == [1, 1]
            && (self.kh, self.kw) == (3, 3)
            && self.pad == [1, 1]
            && (self.ho, self.wo) == (self.h, self.w)
    }

    /// Whether Winograd is expected to beat the direct kernel ([`super::direct_conv`]) on this
    /// convolution: its products cost 16/36 of the direct multiply-adds, and its transforms, per
    /// pixel, about as much as 8 direct multiply-adds per input and per output channel (measured
    /// on the shipped UNet's shapes: a 16 → 16 convolution at 28×28 about breaks even, a 32 → 32
    /// one at 14×14 runs about 1.3× faster, a 1 → 16 one is slower). Under 10×10 pixels the
    /// transforms' short loops and the tiles rounded up to a register tile cost more than that.
    pub(super) fn prefers_winograd(&self) -> bool {
        let (c, m) = (self.c / self.group, self.m / self.group);
        self.is_winograd() && self.ho * self.wo >= 100 && c * m >= 8 * (c + m)
    }

    fn tiles(&self) -> Tiles {
        let (th, tw) = (self.ho.div_ceil(2), self.wo.div_ceil(2));
        let pw = tw + 1;
        Tiles {
            tw,
            pw,
            count: th * pw,
            rounded: (th * pw).div_ceil(LANES) * LANES,
            // One float of slack: the last tile of the last row (dropped) reads past it.
            plane: (th + 1) * pw + 1,
        }
    }

    /// Workspace floats of [`Conv2d::winograd`]: the split input, V, the products, scratch.
    pub(super) fn winograd_workspace(&self) -> usize {
        let t = self.tiles();
        let (cg, mg) = (self.c / self.group, self.m / self.group);
        4 * t.plane + 16 * cg * t.rounded + 16 * mg * t.rounded + 12 * t.count + 8
    }

    /// The transformed kernel `U` that [`Conv2d::winograd`] reads, from a Conv kernel
    /// `[m, c/group, 3, 3]`: per group, `U_ξ[m, c]` for each of the 16 positions ξ.
    pub(super) fn winograd_kernel(&self, kernel: &[f32]) -> Vec<f32> {
        let count = self.m / self.group * (self.c / self.group);
        let mut u = vec![0.0; 16 * count * self.group];
        for (g, u) in u.chunks_exact_mut(16 * count).enumerate() {
            transform_kernel(&kernel[g * count * 9..][..count * 9], count, u);
        }
        u
    }

    /// Conv by Winograd's F(2×2, 3×3) (see the module notes): as [`Conv2d::forward`], with the
    /// kernel given transformed by [`Conv2d::winograd_kernel`].
    pub(super) fn winograd(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        fastest!(conv Conv2d::winograd_loops(self, x, kernel, bias, out, work))
    }

    #[inline(always)]
    fn winograd_loops<const FMA: bool>(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        let t = self.tiles();
        let (cg, mg) = (self.c / self.group, self.m / self.group);
        let (hw, r) = (self.h * self.w, t.rounded);
        let (split, rest) = work.split_at_mut(4 * t.plane);
        let (v, rest) = rest.split_at_mut(16 * cg * r);
        let (products, rest) = rest.split_at_mut(16 * mg * r);
        let scratch = &mut rest[..12 * t.count + 8];
        for n in 0..self.batch {
            for g in 0..self.group {
                let u = &kernel[g * 16 * mg * cg..][..16 * mg * cg];
                for (c, image) in x[(n * self.c + g * cg) * hw..][..cg * hw]
                    .chunks_exact(hw)
                    .enumerate()
                {
                    self.split_parities(image, &t, split);
                    transform_input(&t, split, c, cg, v, scratch);
                }
                for xi in 0..16 {
                    let (u, v) = (&u[xi * mg * cg..][..mg * cg], &v[xi * cg * r..][..cg * r]);
                    let m_xi = &mut products[xi * mg * r..][..mg * r];
                    tiled::<FMA>(u, mg, v, r, &[0], cg, r, m_xi);
                }
                let y = &mut out[(n * self.m + g * mg) * self.ho * self.wo..];
                for m in 0..mg {
                    let b = bias.map_or(0.0, |b| b[g * mg + m]);
                    let plane = &mut y[m * self.ho * self.wo..][..self.ho * self.wo];
                    self.transform_output(&t, products, m * r, mg * r, b, plane, scratch);
                }
            }
        }
    }

    /// The image with one zero row above and one zero column on the left (and zeros below and
    /// right), split into four planes by the parity of the padded row and column:
    /// `split[2·(row % 2) + col % 2][row / 2][col / 2]`.
    #[inline(always)]
    fn split_parities(&self, image: &[f32], t: &Tiles, split: &mut [f32]) {
        split[..4 * t.plane].fill(0.0);
        for (y, row) in image.chunks_exact(self.w).enumerate() {
            // Padded row y + 1 (row ⌈y / 2⌉ of its parity's planes); padded column 2i + 1 is
            // image column 2i, padded column 2i + 2 is image column 2i + 1.
            let (at, parity) = (y.div_ceil(2) * t.pw, (y + 1) % 2);
            let (even, odd) = split[2 * parity * t.plane..][..2 * t.plane].split_at_mut(t.plane);
            let (even, odd) = (&mut even[at + 1..][..t.tw], &mut odd[at..][..t.tw]);
            let pairs = row.chunks_exact(2);
            if let Some(&last) = pairs.remainder().first() {
                odd[t.tw - 1] = last;
            }
            for ((pair, e), o) in pairs.zip(even.iter_mut()).zip(odd.iter_mut()) {
                *o = pair[0];
                *e = pair[1];
            }
        }
    }

    /// `Y = Aᵀ·M·A` for every tile of output channel `m` (its products at `at + ξ·stride`),
    /// plus the bias, into the output plane. Each step is one loop over all tiles, so that it
    /// vectorises.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transform_output(
        &self,
        t: &Tiles,
        products: &[f32],
        at: usize,
        stride: usize,
        bias: f32,
        plane: &mut [f32],
        scratch: &mut [f32],
    ) {
        let n = t.count;
        let (a, y) = scratch[..12 * n].split_at_mut(8 * n);
        let s = |xi: usize| &products[at + xi * stride..][..n];
        // Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]] over the rows of M …
        for j in 0..4 {
            let (m0, m1, m2, m3) = (s(j), s(4 + j), s(8 + j), s(12 + j));
            let (a0, a1) = a[2 * j * n..(2 * j + 2) * n].split_at_mut(n);
            for i in 0..n {
                a0[i] = m0[i] + m1[i] + m2[i];
                a1[i] = m1[i] - m2[i] - m3[i];
            }
        }
        // … then over its columns.
        for i in 0..2 {
            let col = |j: usize| &a[(2 * j + i) * n..][..n];
            let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
            let (y0, y1) = y[2 * i * n..(2 * i + 2) * n].split_at_mut(n);
            for p in 0..n {
                y0[p] = c0[p] + c1[p] + c2[p] + bias;
                y1[p] = c1[p] - c2[p] - c3[p] + bias;
            }
        }
        // Output rows 2ty + i, columns 2tx + j.
        for (oy, row) in plane.chunks_exact_mut(self.wo).enumerate() {
            let (i, ty) = (oy % 2, oy / 2);
            let y0 = &y[2 * i * n + ty * t.pw..][..t.tw];
            let y1 = &y[(2 * i + 1) * n + ty * t.pw..][..t.tw];
            let (pairs, last) = row.split_at_mut(self.wo / 2 * 2);
            for ((pair, &y0), &y1) in pairs.chunks_exact_mut(2).zip(y0).zip(y1) {
                pair[0] = y0;
                pair[1] = y1;
            }
            if let Some(o) = last.first_mut() {
                *o = y0[t.tw - 1];
            }
        }
    }
}

/// `U_ξ[m, c] = (G·g·Gᵀ)_ξ` for each of the `count` kernels `g` (`[m, c]` order, 9 weights
/// each), with G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
fn transform_kernel(kernel: &[f32], count: usize, u: &mut [f32]) {
    let g_rows = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for (k, g) in kernel.chunks_exact(9).enumerate() {
        // G·g: 4 rows of 3, column by column.
        let cols: [[f32; 4]; 3] = std::array::from_fn(|j| g_rows(g[j], g[3 + j], g[6 + j]));
        for i in 0..4 {
            let row = g_rows(cols[0][i], cols[1][i], cols[2][i]);
            for (j, &w) in row.iter().enumerate() {
                u[(4 * i + j) * count + k] = w;
            }
        }
    }
}

/// `V_ξ[c, tile] = (Bᵀ·d·B)_ξ` for every 4×4 patch `d` of channel `c` (split by parity, see
/// [`Conv2d::split_parities`]), with Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0],
/// [0, 1, 0, −1]]. Each step is one loop over all tiles, so that it vectorises.
#[inline(always)]
fn transform_input(
    t: &Tiles,
    split: &[f32],
    c: usize,
    cg: usize,
    v: &mut [f32],
    scratch: &mut [f32],
) {
    let (r, n, pw) = (t.rounded, t.count, t.pw);
    // Bᵀ's rows: result k is patch row p minus (true) or plus patch row q.
    const TERMS: [(usize, usize, bool); 4] =
        [(0, 2, true), (1, 2, false), (2, 1, true), (1, 3, true)];
    // Patch row a of tile row ty is padded row 2ty + a: plane a % 2, row ty + a / 2.
    let row = |a: usize, col: usize| &split[(2 * (a % 2) + col) * t.plane + a / 2 * pw..][..n + 1];
    // Bᵀ over the patch rows, for the even (col 0) and odd (col 1) padded columns.
    let (te, to) = scratch[..8 * (n + 1)].split_at_mut(4 * (n + 1));
    for (col, dst) in [(0, &mut *te), (1, &mut *to)] {
        for (k, &(p, q, sign)) in TERMS.iter().enumerate() {
            let (a, b) = (row(p, col), row(q, col));
            add_or_subtract(&mut dst[k * (n + 1)..(k + 1) * (n + 1)], a, b, sign);
        }
    }
    // B over the patch columns: padded columns 2tx, 2tx + 1, 2tx + 2, 2tx + 3 of a tile are
    // even[tx], odd[tx], even[tx + 1], odd[tx + 1].
    for k in 0..4 {
        let (e, o) = (
            &te[k * (n + 1)..(k + 1) * (n + 1)],
            &to[k * (n + 1)..(k + 1) * (n + 1)],
        );
        let columns = [&e[..n], &o[..n], &e[1..], &o[1..]];
        for (j, &(p, q, sign)) in TERMS.iter().enumerate() {
            let (dst, rounding) = v[((4 * k + j) * cg + c) * r..][..r].split_at_mut(n);
            add_or_subtract(dst, columns[p], columns[q], sign);
            // The tiles past the last only round the count up to whole register tiles: zeros
            // (not whatever the workspace held) keep the products past them finite and fast.
            rounding.fill(0.0);
        }
    }
}

/// `dst = a − b` (`subtract`) or `a + b`, over `dst`'s length.
#[inline(always)]
fn add_or_subtract(dst: &mut [f32], a: &[f32], b: &[f32], subtract: bool) {
    let n = dst.len();
    let (a, b) = (&a[..n], &b[..n]);
    if subtract {
        for i in 0..n {
            dst[i] = a[i] - b[i];
        }
    } else {
        for i in 0..n {
            dst[i] = a[i] + b[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::native::linear::tests::{direct, values};

    /// Winograd's F(2×2, 3×3) computes the definition: even and odd heights and widths (tiles
    /// cut by the image's edge), one-pixel images, output channels that do not fill a register
    /// tile, more tiles than one register row, groups, batches and a bias.
    #[test]
    fn winograd_matches_the_definition() {
        for (batch, group, c, m, h, w) in [
            (1, 1, 2, 3, 4, 4),
            (2, 1, 3, 5, 7, 7),
            (1, 1, 1, 1, 1, 1),
            (1, 2, 4, 6, 5, 8),
            (1, 1, 6, 8, 28, 28),
            (2, 1, 2, 4, 3, 9),
        ] {
            let g = Conv2d {
                batch,
                group,
                c,
                h,
                w,
                m,
                ho: h,
                wo: w,
                kh: 3,
                kw: 3,
                stride: [1, 1],
                dilation: [1, 1],
                pad: [1, 1],
            };
            assert!(g.is_winograd());
            let x = values(batch * c * h * w, 0.1);
            let k = values(m * c / group * 9, 0.7);
            let bias = values(m, 2.0);
            let mut work = vec![f32::NAN; g.winograd_workspace()];
            let mut y = vec![f32::NAN; batch * m * h * w];
            g.winograd(&x, &g.winograd_kernel(&k), Some(&bias), &mut y, &mut work);
            let want = direct(&g, &x, &k, Some(&bias));
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{g:?}: {a} vs {b}");
            }
        }
    }
}
