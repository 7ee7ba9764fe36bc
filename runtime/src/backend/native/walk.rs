//! Strided iteration over K tensors at once, the loop behind copies (transpose, slice, pad,
//! concat, expand) and broadcasting arithmetic.
//!
//! A walk is planned once per step: axes of extent 1 are dropped and neighbouring axes merged
//! wherever every operand steps through them as through one axis, so the innermost loop is as long
//! as the layouts allow (a per-channel broadcast over `[N, C, H, W]` walks rows of `H·W`).

/// Offsets of K operands (element units; the first is usually the output) along a shape.
#[derive(Clone, Debug)]
pub(super) struct Walk<const K: usize> {
    /// Length of the innermost loop.
    pub inner: usize,
    /// Each operand's stride along the innermost loop.
    pub inner_strides: [isize; K],
    /// The outer axes, outermost first: extent and each operand's stride.
    outer: Vec<(usize, [isize; K])>,
    /// Each operand's offset of the first element.
    base: [isize; K],
}

impl<const K: usize> Walk<K> {
    /// A walk over `shape`, operand `k` starting at `base[k]` and stepping `strides[k][axis]`.
    pub fn new(shape: &[usize], strides: [&[isize]; K], base: [isize; K]) -> Self {
        let mut axes: Vec<(usize, [isize; K])> = shape
            .iter()
            .enumerate()
            .filter(|&(_, &d)| d != 1)
            .map(|(a, &d)| (d, std::array::from_fn(|k| strides[k][a])))
            .collect();
        // Merge axis i into i+1 where every operand's stride over i is its stride over i+1 times
        // the extent of i+1 (the two axes are one axis for every operand).
        let mut i = axes.len();
        while i >= 2 {
            let (outer, inner) = (axes[i - 2], axes[i - 1]);
            if (0..K).all(|k| outer.1[k] == inner.1[k] * inner.0 as isize) {
                axes[i - 2] = (outer.0 * inner.0, inner.1);
                axes.remove(i - 1);
            }
            i -= 1;
        }
        let (inner, inner_strides) = axes.pop().unwrap_or((1, [0; K]));
        Self {
            inner,
            inner_strides,
            outer: axes,
            base,
        }
    }

    /// Whether operand `k` steps exactly as operand `l` does along every axis of the walk (the
    /// two are laid out alike, so their rows are equally contiguous).
    pub fn steps_alike(&self, k: usize, l: usize) -> bool {
        self.inner_strides[k] == self.inner_strides[l]
            && self.outer.iter().all(|(_, s)| s[k] == s[l])
    }

    /// Whether operand `k` reads the same values on every row (it repeats along the outer axes).
    pub fn repeats_rows(&self, k: usize) -> bool {
        self.outer.iter().all(|(_, s)| s[k] == 0)
    }

    /// Elements visited.
    pub fn len(&self) -> usize {
        self.inner * self.outer.iter().map(|a| a.0).product::<usize>()
    }

    /// Each operand's offset at the start of every innermost row, in order. An iterator rather
    /// than a callback: a loop over it inlines into the callers compiled for wider vectors
    /// (closures do not inherit a function's target features).
    pub fn rows(&self) -> Rows<'_, K> {
        let empty = self.inner == 0 || self.outer.iter().any(|a| a.0 == 0);
        Rows {
            walk: self,
            index: vec![0; self.outer.len()],
            at: self.base,
            done: empty,
        }
    }
}

/// The row starts of a [`Walk`].
pub(super) struct Rows<'a, const K: usize> {
    walk: &'a Walk<K>,
    index: Vec<usize>,
    at: [isize; K],
    done: bool,
}

impl<const K: usize> Iterator for Rows<'_, K> {
    type Item = [isize; K];

    #[inline(always)]
    fn next(&mut self) -> Option<[isize; K]> {
        if self.done {
            return None;
        }
        let row = self.at;
        // Odometer: advance the innermost outer axis, carrying outwards.
        let mut axis = self.walk.outer.len();
        loop {
            if axis == 0 {
                self.done = true;
                break;
            }
            axis -= 1;
            let (extent, step) = self.walk.outer[axis];
            self.index[axis] += 1;
            for (at, s) in self.at.iter_mut().zip(step) {
                *at += s;
            }
            if self.index[axis] < extent {
                break;
            }
            self.index[axis] = 0;
            for (at, s) in self.at.iter_mut().zip(step) {
                *at -= s * extent as isize;
            }
        }
        Some(row)
    }
}

/// Row-major strides of `shape`.
pub(super) fn natural_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut s = 1isize;
    for (a, &d) in shape.iter().enumerate().rev() {
        strides[a] = s;
        s *= d as isize;
    }
    strides
}

/// Strides that read a tensor of shape `from` as if broadcast to `to` (numpy rules, aligned on
/// the right; an axis of extent 1 repeats). `None` when the shapes do not broadcast.
pub(super) fn broadcast_strides(from: &[usize], to: &[usize]) -> Option<Vec<isize>> {
    if from.len() > to.len() {
        return None;
    }
    let natural = natural_strides(from);
    let lead = to.len() - from.len();
    (0..to.len())
        .map(|a| {
            if a < lead {
                return Some(0);
            }
            let d = from[a - lead];
            if d == to[a] {
                Some(if d == 1 { 0 } else { natural[a - lead] })
            } else if d == 1 {
                Some(0)
            } else {
                None
            }
        })
        .collect()
}

/// The numpy broadcast of two shapes, if they broadcast.
pub(super) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let db = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (da, db) {
                _ if da == db => Some(da),
                (1, d) | (d, 1) => Some(d),
                _ => None,
            }
        })
        .collect()
}

/// Copies along a walk whose operand 0 is `dst` and operand 1 is `src`.
pub(super) fn copy(walk: &Walk<2>, src: &[f32], dst: &mut [f32]) {
    let n = walk.inner;
    let [sd, ss] = walk.inner_strides;
    for [d, s] in walk.rows() {
        let d = d as usize;
        if sd == 1 && ss == 1 {
            let s = s as usize;
            dst[d..d + n].copy_from_slice(&src[s..s + n]);
        } else if sd == 1 && ss == 0 {
            dst[d..d + n].fill(src[s as usize]);
        } else {
            for i in 0..n {
                dst[(d as isize + i as isize * sd) as usize] = src[(s + i as isize * ss) as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transpose_walks_the_source_with_swapped_strides() {
        // [2, 3] -> [3, 2]
        let src = [0., 1., 2., 3., 4., 5.];
        let walk = Walk::new(&[3, 2], [&[2, 1], &[1, 3]], [0, 0]);
        let mut dst = [0.; 6];
        copy(&walk, &src, &mut dst);
        assert_eq!(dst, [0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn contiguous_axes_merge_into_one_row() {
        let walk = Walk::new(&[2, 1, 3, 4], [&[12, 12, 4, 1], &[12, 12, 4, 1]], [0, 0]);
        assert_eq!((walk.inner, walk.outer.len()), (24, 0));
        // A per-channel broadcast [1, C, 1, 1] over [N, C, H, W] walks rows of H·W.
        let to = [2, 3, 4, 5];
        let b = broadcast_strides(&[1, 3, 1, 1], &to).unwrap();
        let walk = Walk::new(&to, [&natural_strides(&to), &b], [0, 0]);
        assert_eq!((walk.inner, walk.inner_strides), (20, [1, 0]));
        assert_eq!(walk.len(), 120);
    }

    #[test]
    fn shapes_broadcast_by_numpy_rules() {
        assert_eq!(broadcast_shape(&[4, 1, 3], &[5, 1]), Some(vec![4, 5, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[3, 2]), None);
        assert_eq!(broadcast_strides(&[3], &[2, 3]), Some(vec![0, 1]));
        assert_eq!(broadcast_strides(&[2], &[2, 3]), None);
    }
}
