//! Reductions over a block of consecutive axes: a tensor seen as `[outer, r, inner]` reduced over
//! `r` (other axis sets are first transposed into that form by the plan).

/// How the reduced values combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reduce {
    Sum,
    Mean,
    Max,
}

/// `out[o, i] = reduce_j a[o, j, i]` for `a` of shape `[outer, r, inner]`.
pub(super) fn reduce(op: Reduce, dims: (usize, usize, usize), a: &[f32], out: &mut [f32]) {
    super::dispatch::fastest!(reduce_loops::<FMA>(
        op: Reduce,
        dims: (usize, usize, usize),
        a: &[f32],
        out: &mut [f32],
    ))
}

#[inline(always)]
fn max(acc: f32, x: f32) -> f32 {
    if acc.is_nan() || acc > x {
        acc
    } else {
        x
    }
}

/// Sum or maximum of a contiguous run, in 16 independent lanes so that it vectorises (a single
/// running sum is one long dependency chain).
#[inline(always)]
fn fold_run(op: Reduce, v: &[f32]) -> f32 {
    const LANES: usize = 16;
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    if op == Reduce::Max {
        let mut acc = [f32::NEG_INFINITY; LANES];
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = max(*a, x);
            }
        }
        let lanes = acc.iter().fold(f32::NEG_INFINITY, |m, &x| max(m, x));
        tail.iter().fold(lanes, |m, &x| max(m, x))
    } else {
        let mut acc = [0f32; LANES];
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
    }
}

/// (`FMA` is unused: sums and maxima have no multiply-add; the build for the widest vectors still
/// runs twice as many lanes.)
#[inline(always)]
fn reduce_loops<const FMA: bool>(
    op: Reduce,
    (outer, r, inner): (usize, usize, usize),
    a: &[f32],
    out: &mut [f32],
) {
    for o in 0..outer {
        let block = &a[o * r * inner..][..r * inner];
        let dst = &mut out[o * inner..][..inner];
        if inner == 1 {
            dst[0] = fold_run(op, block);
        } else if op == Reduce::Max {
            dst.fill(f32::NEG_INFINITY);
            for row in block.chunks_exact(inner) {
                dst.iter_mut().zip(row).for_each(|(d, &x)| *d = max(*d, x));
            }
        } else {
            dst.fill(0.0);
            for row in block.chunks_exact(inner) {
                dst.iter_mut().zip(row).for_each(|(d, &x)| *d += x);
            }
        }
        if op == Reduce::Mean && r > 0 {
            let scale = 1.0 / r as f32;
            dst.iter_mut().for_each(|d| *d *= scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_the_middle_axis() {
        // [2, 3, 2]
        let a: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut out = [0.0; 4];
        reduce(Reduce::Sum, (2, 3, 2), &a, &mut out);
        assert_eq!(out, [6., 9., 24., 27.]);
        reduce(Reduce::Mean, (2, 3, 2), &a, &mut out);
        assert_eq!(out, [2., 3., 8., 9.]);
        reduce(Reduce::Max, (2, 3, 2), &a, &mut out);
        assert_eq!(out, [4., 5., 10., 11.]);
        let mut one = [0.0; 2];
        reduce(Reduce::Max, (2, 6, 1), &a, &mut one);
        assert_eq!(one, [5., 11.]);
        // Runs longer than the 16 lanes, with a remainder.
        let long: Vec<f32> = (0..2 * 37).map(|i| (i % 37) as f32).collect();
        reduce(Reduce::Sum, (2, 37, 1), &long, &mut one);
        assert_eq!(one, [666., 666.]);
        reduce(Reduce::Max, (2, 37, 1), &long, &mut one);
        assert_eq!(one, [36., 36.]);
        let mut nan = long.clone();
        nan[40] = f32::NAN;
        reduce(Reduce::Max, (2, 37, 1), &nan, &mut one);
        assert!(one[1].is_nan() && one[0] == 36.);
    }
}
