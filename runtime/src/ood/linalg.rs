//! The little dense linear algebra the detector needs: covariance matrices of a few dozen statistics,
//! their Cholesky factors and triangular solves, in f64.

// Index loops here walk several arrays (or a matrix's rows and columns) in step.
#![allow(clippy::needless_range_loop)]

/// A square matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Square {
    pub n: usize,
    pub a: Vec<f64>,
}

impl Square {
    pub fn zeros(n: usize) -> Self {
        Self {
            n,
            a: vec![0.0; n * n],
        }
    }

    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut f64 {
        &mut self.a[i * self.n + j]
    }

    pub fn trace(&self) -> f64 {
        (0..self.n).map(|i| self.at(i, i)).sum()
    }

    /// The lower Cholesky factor `L` with `L·Lᵀ = self`, or `None` when the matrix is not
    /// (numerically) positive definite.
    pub fn cholesky(&self) -> Option<Square> {
        let n = self.n;
        let mut l = Square::zeros(n);
        for i in 0..n {
            for j in 0..=i {
                let mut s = self.at(i, j);
                for k in 0..j {
                    s -= l.at(i, k) * l.at(j, k);
                }
                if i == j {
                    if !(s > 0.0) || !s.is_finite() {
                        return None;
                    }
                    *l.at_mut(i, i) = s.sqrt();
                } else {
                    *l.at_mut(i, j) = s / l.at(j, j);
                }
            }
        }
        Some(l)
    }

    /// `‖L⁻¹·v‖²` for a lower-triangular `self = L` (the Mahalanobis form of `L·Lᵀ`).
    pub fn lower_solve_norm2(&self, v: &[f64]) -> f64 {
        let n = self.n;
        let mut y = vec![0.0; n];
        let mut acc = 0.0;
        for i in 0..n {
            let mut s = v[i];
            for k in 0..i {
                s -= self.at(i, k) * y[k];
            }
            y[i] = s / self.at(i, i);
            acc += y[i] * y[i];
        }
        acc
    }

    /// `log det(L·Lᵀ)` for a lower-triangular `self = L`.
    pub fn cholesky_log_det(&self) -> f64 {
        2.0 * (0..self.n).map(|i| self.at(i, i).ln()).sum::<f64>()
    }
}

/// Weighted mean and covariance (divided by the weight sum) of `rows` (`d` values each).
pub(crate) fn weighted_moments(rows: &[f64], d: usize, w: &[f64]) -> (Vec<f64>, Square) {
    let total: f64 = w.iter().sum();
    let mut mean = vec![0.0; d];
    for (r, &wi) in rows.chunks(d).zip(w) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += wi * v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= total);
    let mut cov = Square::zeros(d);
    let mut c = vec![0.0; d];
    for (r, &wi) in rows.chunks(d).zip(w) {
        for ((ci, v), m) in c.iter_mut().zip(r).zip(&mean) {
            *ci = v - m;
        }
        for i in 0..d {
            let wci = wi * c[i];
            for j in 0..=i {
                *cov.at_mut(i, j) += wci * c[j];
            }
        }
    }
    for i in 0..d {
        for j in 0..=i {
            let v = cov.at(i, j) / total;
            *cov.at_mut(i, j) = v;
            *cov.at_mut(j, i) = v;
        }
    }
    (mean, cov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reconstructs_and_solves() {
        let m = Square {
            n: 3,
            a: vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0],
        };
        let l = m.cholesky().expect("positive definite");
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l.at(i, k) * l.at(j, k)).sum();
                assert!((s - m.at(i, j)).abs() < 1e-12);
            }
        }
        // vᵀ M⁻¹ v for v = M·e₀ is M₀₀.
        let v = [4.0, 2.0, 0.6];
        assert!((l.lower_solve_norm2(&v) - 4.0).abs() < 1e-12);
        // det = 4·(5·3 − 1) − 2·(2·3 − 0.6) + 0.6·(2 − 3) = 44.6
        assert!((l.cholesky_log_det() - 44.6f64.ln()).abs() < 1e-12);
        let singular = Square {
            n: 2,
            a: vec![1.0, 1.0, 1.0, 1.0],
        };
        assert!(singular.cholesky().is_none());
    }
}
