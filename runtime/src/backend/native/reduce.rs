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
    super::elementwise::widest!(reduce_wide(op: Reduce, dims: (usize, usize, usize), a: &[f32], out: &mut [f32]) {
        reduce_loops(op, dims, a, out)
    })
}

#[inline(always)]
fn reduce_loops(op: Reduce, (outer, r, inner): (usize, usize, usize), a: &[f32], out: &mut [f32]) {
    let combine = |acc: f32, x: f32| match op {
        Reduce::Sum | Reduce::Mean => acc + x,
        Reduce::Max => {
            if acc.is_nan() || acc > x {
                acc
            } else {
                x
            }
        }
    };
    let init = match op {
        Reduce::Max => f32::NEG_INFINITY,
        _ => 0.0,
    };
    for o in 0..outer {
        let block = &a[o * r * inner..][..r * inner];
        let dst = &mut out[o * inner..][..inner];
        if inner == 1 {
            dst[0] = match op {
                Reduce::Max => block.iter().fold(init, |acc, &x| combine(acc, x)),
                _ => block.iter().sum(),
            };
        } else {
            dst.fill(init);
            for row in block.chunks_exact(inner) {
                match op {
                    Reduce::Max => dst.iter_mut().zip(row).for_each(|(d, &x)| *d = combine(*d, x)),
                    _ => dst.iter_mut().zip(row).for_each(|(d, &x)| *d += x),
                }
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
    }
}
