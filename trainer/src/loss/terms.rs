//! The loss terms themselves.

use candle_core::{Tensor, D};

/// Unbiased standard deviation, exposed for callers of [`loss_with_psi_std`].
pub fn std_of(v: &Tensor) -> candle_core::Result<Tensor> {
    std_unbiased(v)
}

use super::{CovMode, LossConfig, PathBatch, Reduce, SourceTerm, TimeTerm, GAUGE_GROUP};

/// The total loss and each term (already weighted), as scalar tensors.
#[derive(Clone, Debug)]
pub struct LossTerms {
    pub total: Tensor,
    pub corr: Tensor,
    pub norm: Tensor,
    pub temb: Tensor,
    pub source: Tensor,
}

impl LossTerms {
    /// `(total, corr, norm, temb, source)` as f64 for logging.
    pub fn values(&self) -> candle_core::Result<[f64; 5]> {
        let v = |t: &Tensor| -> candle_core::Result<f64> {
            t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
        };
        Ok([
            v(&self.total)?,
            v(&self.corr)?,
            v(&self.norm)?,
            v(&self.temb)?,
            v(&self.source)?,
        ])
    }
}

/// (1 − t_c)^p as a `[B, 1]` column (exactly ones for p = 0).
fn one_minus_t_pow(tc: &Tensor, p: f64) -> candle_core::Result<Tensor> {
    let base = (1.0 - tc)?.unsqueeze(1)?;
    if p == 0.0 {
        base.ones_like()
    } else if p == 1.0 {
        Ok(base)
    } else {
        base.powf(p)
    }
}

/// Per-sample reduction of a `[B, D]` term over D, then the mean over the batch.
fn reduce(term: &Tensor, how: Reduce) -> candle_core::Result<Tensor> {
    match how {
        Reduce::Mean => term.mean_all(),
        Reduce::Sum => term.sum(1)?.mean_all(),
    }
}

/// Unbiased standard deviation of a `[B]` tensor.
fn std_unbiased(v: &Tensor) -> candle_core::Result<Tensor> {
    let b = v.dims1()? as f64;
    let centred = v.broadcast_sub(&v.mean_all()?)?;
    (centred.sqr()?.sum_all()? / (b - 1.0))?.sqrt()
}

/// The VPFB loss for one batch: ψ `[B]`, g = ∇ₓψ `[B, D]`, s = ∂ψ/∂t `[B]` at `batch.xt`, `batch.t`.
pub fn loss(
    cfg: &LossConfig,
    psi: &Tensor,
    g: &Tensor,
    s: &Tensor,
    batch: &PathBatch,
) -> candle_core::Result<LossTerms> {
    loss_with_psi_std(cfg, psi, g, s, batch, None)
}

/// [`loss`] with the std(ψ) of L_corr's denominator given rather than computed. The method treats it as
/// a constant (no gradient); supplying it lets finite differences in θ see the same function that
/// `backward()` differentiates.
pub fn loss_with_psi_std(
    cfg: &LossConfig,
    psi: &Tensor,
    g: &Tensor,
    s: &Tensor,
    batch: &PathBatch,
    psi_std: Option<&Tensor>,
) -> candle_core::Result<LossTerms> {
    let zero = psi.sum_all()?.zeros_like()?;
    let (_, d) = g.dims2()?;
    let u = (&batch.xbar - &batch.eps)?;

    // L_corr: score-function source estimator, Γ a constant of the batch.
    let corr = if cfg.cov == CovMode::Off || cfg.cov_weight == 0.0 {
        zero.clone()
    } else {
        let innovation = (batch.eps.sqr()? - (&batch.xbar * &batch.eps)?)?;
        let innovation = innovation.broadcast_mul(&one_minus_t_pow(&batch.tc, cfg.cov_power)?)?;
        let gamma = match cfg.reduce {
            Reduce::Mean => innovation.mean(1)?,
            Reduce::Sum => innovation.sum(1)?,
        }
        .detach();
        let gamma = gamma.broadcast_sub(&gamma.mean_all()?)?;
        let cov = (&gamma * psi)?.mean_all()?;
        let denom = match cfg.cov {
            CovMode::Corr => {
                let sp = match psi_std {
                    Some(v) => v.clone(),
                    None => std_unbiased(&psi.detach())?,
                };
                ((std_unbiased(&gamma)? * sp)? + 1e-8)?
            }
            CovMode::Cov => cov.ones_like()?.affine(
                0.0,
                (d as f64).sqrt() * (2.0 * std::f64::consts::PI).ln() + 1e-8,
            )?,
            CovMode::Off => unreachable!("handled above"),
        };
        ((cov / denom)? * cfg.cov_weight)?
    };

    // L_norm: the Dirichlet term.
    let norm = (reduce(
        &g.sqr()?
            .broadcast_mul(&one_minus_t_pow(&batch.tc, cfg.norm_power)?)?,
        cfg.reduce,
    )? * cfg.norm_weight)?;

    // L_temb: smoothness of ψ in time, per record or only its per-t mean (the gauge).
    let temb = match cfg.time_term {
        TimeTerm::PerRecord => {
            let w = one_minus_t_pow(&batch.tc, cfg.temb_power)?.squeeze(1)?;
            ((s.sqr()? * w)?.mean_all()? * cfg.temb_weight)?
        }
        TimeTerm::Gauge => {
            let full = s.dims1()? / GAUGE_GROUP * GAUGE_GROUP;
            if full == 0 || cfg.temb_weight == 0.0 {
                zero.clone()
            } else {
                let means = s
                    .narrow(0, 0, full)?
                    .reshape((full / GAUGE_GROUP, GAUGE_GROUP))?
                    .mean(1)?;
                (means.sqr()?.mean_all()? * cfg.temb_weight)?
            }
        }
    };

    // Path-wise source term.
    let source = match cfg.source {
        SourceTerm::Off => zero.clone(),
        SourceTerm::Dot => {
            let w = one_minus_t_pow(&batch.tc, cfg.source_power)?;
            (reduce(&(g * &u)?.neg()?.broadcast_mul(&w)?, cfg.reduce)? * cfg.source_weight)?
        }
        SourceTerm::Dist => {
            let w = one_minus_t_pow(&batch.tc, cfg.source_power)?;
            (reduce(&(g - &u)?.sqr()?.broadcast_mul(&w)?, cfg.reduce)? * cfg.source_weight)?
        }
        SourceTerm::Cos => {
            let gn = g.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
            let un = u.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
            let norm = ((gn * un)? + 1e-8)?;
            // exponent 1 − (1 − t_c)^p  (= t_c for the released p = 1)
            let expo = (1.0 - one_minus_t_pow(&batch.tc, cfg.source_power)?)?;
            let scale = norm.log()?.mul(&expo)?.exp()?;
            let term = (g * &u)?.neg()?.broadcast_div(&scale)?;
            (reduce(&term, cfg.reduce)? * cfg.source_weight)?
        }
    };

    let total = (((&corr + &norm)? + &temb)? + &source)?;
    Ok(LossTerms {
        total,
        corr,
        norm,
        temb,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{LossPreset, TimeTerm};
    use candle_core::Device;

    fn temb_of(term: TimeTerm, s: &[f32]) -> f32 {
        let dev = Device::Cpu;
        let b = s.len();
        let cfg = LossConfig {
            time_term: term,
            temb_weight: 0.5,
            ..LossConfig::preset(LossPreset::Ritz)
        };
        let zeros = Tensor::zeros((b, 2), candle_core::DType::F32, &dev).unwrap();
        let t = Tensor::full(0.5f32, b, &dev).unwrap();
        let batch = PathBatch::from_parts(zeros.clone(), zeros.clone(), t).unwrap();
        let s = Tensor::from_slice(s, b, &dev).unwrap();
        let psi = Tensor::zeros(b, candle_core::DType::F32, &dev).unwrap();
        loss(&cfg, &psi, &zeros, &s, &batch)
            .unwrap()
            .temb
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn the_gauge_term_sees_only_each_time_groups_mean() {
        // Two groups of 8 with means 0 and 2, plus a partial group that is left out.
        let mut s: Vec<f32> = [1.0, -1.0].repeat(4);
        s.extend([2.0; 8]);
        s.extend([5.0; 3]);
        assert!((temb_of(TimeTerm::Gauge, &s) - 0.5 * (0.0 + 4.0) / 2.0).abs() < 1e-6);
        let per_record = s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32;
        assert!((temb_of(TimeTerm::PerRecord, &s) - 0.5 * per_record).abs() < 1e-5);
        // Spread within a group costs nothing under the gauge form.
        assert_eq!(temb_of(TimeTerm::Gauge, &[3.0, -3.0].repeat(4)), 0.0);
    }
}
