//! Direct convolution for stride 1, dilation 1 and an output as wide as the input (the "same"
//! convolutions of a UNet, and the convolutions their gradients are written as), without a patch
//! matrix.
//!
//! Each image channel is copied once into a zero-bordered plane `kw − 1` columns wider than
//! the image. In that plane, output pixel `q = oy·wp + ox` of the flattened padded grid reads
//! input `q + ki·wp + kj` for kernel tap (ki, kj): one fixed offset per tap for every pixel. A
//! micro-kernel keeps a tile of [`ROWS`] output channels × [`LANES`] consecutive grid pixels in
//! registers and, for each input channel and tap, multiplies one weight per output channel
//! into `LANES` consecutive plane values. Grid columns past the output width (`kw − 1` per row)
//! are computed and dropped when the tile rows are copied to the output.
//!
//! Against the im2col path this reads each input value `kh·kw` times from cache instead of
//! writing a `kh·kw`-times larger patch matrix that the matrix product then packs again.

use super::dispatch::fastest;
use super::elementwise::madd;
use super::linear::Conv2d;

/// Output channels per tile.
const ROWS: usize = 4;
/// Consecutive grid pixels per tile: two AVX registers, four NEON registers.
pub(super) const LANES: usize = 16;

/// Sizes of one image-and-group's work: its padded planes and output grid.
struct Layout {
    /// Padded width and the floats of one padded plane (rows plus the slack tiles read past
    /// the last row).
    wp: usize,
    plane: usize,
    /// Grid pixels rounded up to whole tiles.
    grid: usize,
    /// Kernel taps' offsets in a padded plane.
    taps: Vec<usize>,
}

impl Conv2d {
    /// Whether [`Conv2d::forward`] takes the direct path.
    pub(super) fn is_shifted(&self) -> bool {
        self.stride == [1, 1]
            && self.dilation == [1, 1]
            && self.wo == self.w
            && self.kh * self.kw > 1
    }

    fn layout(&self) -> Layout {
        let wp = self.w + self.kw - 1;
        let grid = (self.ho * wp).div_ceil(LANES) * LANES;
        let taps = (0..self.kh)
            .flat_map(|ki| (0..self.kw).map(move |kj| ki * wp + kj))
            .collect::<Vec<_>>();
        Layout {
            wp,
            plane: grid + taps[taps.len() - 1],
            grid,
            taps,
        }
    }

    /// Workspace floats of the direct path: padded planes and the output grid.
    pub(super) fn direct_workspace(&self) -> usize {
        let l = self.layout();
        (self.c / self.group) * l.plane + self.m / self.group * l.grid
    }

    /// Conv by the direct path (see the module notes); same contract as [`Conv2d::forward`].
    pub(super) fn direct_forward(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        fastest!(conv Conv2d::direct_loops(self, x, kernel, bias, out, work))
    }

    #[inline(always)]
    fn direct_loops<const FMA: bool>(
        &self,
        x: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        let l = self.layout();
        let (cg, mg, kk) = (self.c / self.group, self.m / self.group, l.taps.len());
        let (hw, ohw) = (self.h * self.w, self.ho * self.wo);
        let (planes, grid) = work.split_at_mut(cg * l.plane);
        let grid = &mut grid[..mg * l.grid];
        for n in 0..self.batch {
            for g in 0..self.group {
                self.pad_planes(&x[(n * self.c + g * cg) * hw..][..cg * hw], &l, planes);
                let kernel = &kernel[g * mg * cg * kk..][..mg * cg * kk];
                tiled::<FMA>(kernel, mg, planes, l.plane, &l.taps, cg, l.grid, grid);
                // Drop the grid's extra columns; add the bias.
                let y = &mut out[(n * self.m + g * mg) * ohw..][..mg * ohw];
                for (j, (plane, rows)) in y
                    .chunks_exact_mut(ohw)
                    .zip(grid.chunks_exact(l.grid))
                    .enumerate()
                {
                    let b = bias.map_or(0.0, |b| b[g * mg + j]);
                    for (o, r) in plane.chunks_exact_mut(self.wo).zip(rows.chunks(l.wp)) {
                        for (o, r) in o.iter_mut().zip(r) {
                            *o = r + b;
                        }
                    }
                }
            }
        }
    }

    /// Copies the channels of one image and group into zero-bordered planes.
    fn pad_planes(&self, image: &[f32], l: &Layout, planes: &mut [f32]) {
        let (top, left) = (self.pad[0], self.pad[1]);
        for (src, dst) in image
            .chunks_exact(self.h * self.w)
            .zip(planes.chunks_exact_mut(l.plane))
        {
            dst.fill(0.0);
            // Padded row r holds image row r − top, for the rows the output reads.
            let rows = (self.ho + self.kh - 1).min(top + self.h);
            for r in top..rows {
                dst[r * l.wp + left..][..self.w]
                    .copy_from_slice(&src[(r - top) * self.w..][..self.w]);
            }
        }
    }
}

/// `dst[row][q] = Σ_c Σ_t weights[row][c·taps.len() + t] · planes[c·plane + q + taps[t]]` for
/// the `rows` rows of `weights` and `q < width` (whole [`LANES`]), a register tile at a time.
/// With one tap at offset 0 this is the matrix product `weights · planes`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn tiled<const FMA: bool>(
    weights: &[f32],
    rows: usize,
    planes: &[f32],
    plane: usize,
    taps: &[usize],
    cg: usize,
    width: usize,
    dst: &mut [f32],
) {
    let row_len = cg * taps.len();
    let reach = cg.saturating_sub(1) * plane + width + taps.iter().max().unwrap_or(&0);
    assert!(width.is_multiple_of(LANES), "whole tiles");
    assert!(
        weights.len() >= rows * row_len,
        "a weight row per output row"
    );
    assert!(
        cg == 0 || planes.len() >= reach,
        "the planes cover every read"
    );
    for first in (0..rows).step_by(ROWS) {
        // A block past the last row repeats it, and drops those rows.
        let rows_of =
            std::array::from_fn(|r| weights[(first + r).min(rows - 1) * row_len..].as_ptr());
        for q in (0..width).step_by(LANES) {
            // SAFETY: each row pointer has row_len weights after it, and the reads end at
            // (cg − 1)·plane + q + max(taps) + LANES ≤ reach (both checked above).
            let acc = unsafe { tile::<FMA>(rows_of, planes.as_ptr(), plane, taps, cg, q) };
            for (r, acc) in acc.iter().enumerate().take(rows - first) {
                dst[(first + r) * width + q..][..LANES].copy_from_slice(acc);
            }
        }
    }
}

/// One tile of [`tiled`]: output rows `rows[0..ROWS]` (pointers to their weights, `[c][tap]`
/// each) at pixels `q..q + LANES` of `cg` planes `plane` floats apart, tap `t` reading `taps[t]`
/// further on.
///
/// # Safety
/// Each row pointer must be valid for `cg · taps.len()` reads, and `planes` for reads up to
/// `(cg − 1)·plane + q + max(taps) + LANES`.
#[inline(always)]
unsafe fn tile<const FMA: bool>(
    rows: [*const f32; ROWS],
    planes: *const f32,
    plane: usize,
    taps: &[usize],
    cg: usize,
    q: usize,
) -> [[f32; LANES]; ROWS] {
    let mut acc = [[0.0f32; LANES]; ROWS];
    for c in 0..cg {
        let at = planes.add(c * plane + q);
        for (t, &off) in taps.iter().enumerate() {
            let v = std::ptr::read_unaligned(at.add(off) as *const [f32; LANES]);
            let i = c * taps.len() + t;
            for (acc, row) in acc.iter_mut().zip(rows) {
                let w = *row.add(i);
                for (a, &v) in acc.iter_mut().zip(&v) {
                    *a = madd::<FMA>(w, v, *a);
                }
            }
        }
    }
    acc
}
