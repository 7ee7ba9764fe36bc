//! The training path (docs/method.md §2): t ~ U[1e-5, 1], t_c = min(t, 1 − 1e-5),
//! x_t = t_c·x̄ + (1 − t_c)·ε, u = x̄ − ε. Other time distributions are a training option
//! ([`TimeSampling`]).

use candle_core::{Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;

use super::TimeSampling;

/// Smallest training / sampling time.
pub const T_MIN: f64 = 1e-5;
/// Largest clipped time.
pub const T_MAX: f64 = 1.0 - 1e-5;

/// One batch on the path, all `[B]` or `[B, D]`, in the training dtype.
#[derive(Clone, Debug)]
pub struct PathBatch {
    pub xbar: Tensor,
    pub eps: Tensor,
    /// Raw time fed to the network.
    pub t: Tensor,
    /// Clipped time t_c used for mixing and weights.
    pub tc: Tensor,
    /// x_t = t_c·x̄ + (1 − t_c)·ε.
    pub xt: Tensor,
}

impl PathBatch {
    /// Builds the path points for data `xbar` (`[B, D]`, model space) with fresh ε and uniform t from
    /// `rng`.
    pub fn sample(xbar: Tensor, rng: &mut impl Rng) -> candle_core::Result<Self> {
        Self::sample_with(xbar, &TimeSampling::Uniform, 1, rng)
    }

    /// [`PathBatch::sample`] with times from `times`, each shared by `group` consecutive records (the
    /// last group may be shorter).
    pub fn sample_with(
        xbar: Tensor,
        times: &TimeSampling,
        group: usize,
        rng: &mut impl Rng,
    ) -> candle_core::Result<Self> {
        let (b, d) = xbar.dims2()?;
        let eps: Vec<f32> = (0..b * d)
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect();
        let group = group.max(1);
        let mut t = Vec::with_capacity(b);
        while t.len() < b {
            let v = times.draw(rng);
            t.extend(std::iter::repeat_n(v, group.min(b - t.len())));
        }
        let device = xbar.device().clone();
        let eps = Tensor::from_vec(eps, (b, d), &device)?.to_dtype(xbar.dtype())?;
        let t = Tensor::from_vec(t, b, &device)?.to_dtype(xbar.dtype())?;
        Self::from_parts(xbar, eps, t)
    }

    /// Builds the path points from given x̄, ε and t.
    pub fn from_parts(xbar: Tensor, eps: Tensor, t: Tensor) -> candle_core::Result<Self> {
        let tc = t.clamp(0.0, T_MAX)?;
        let col = tc.unsqueeze(1)?;
        let xt = (xbar.broadcast_mul(&col)? + eps.broadcast_mul(&(1.0 - &col)?)?)?;
        Ok(Self {
            xbar,
            eps,
            t,
            tc,
            xt,
        })
    }

    /// The batch on another device (CPU ↔ GPU), same values.
    pub fn to_device(&self, device: &Device) -> candle_core::Result<Self> {
        Ok(Self {
            xbar: self.xbar.to_device(device)?,
            eps: self.eps.to_device(device)?,
            t: self.t.to_device(device)?,
            tc: self.tc.to_device(device)?,
            xt: self.xt.to_device(device)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn grouped_times_are_shared_within_each_group_only() {
        let xbar = Tensor::zeros((20, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let late = TimeSampling::Late { power: 2.0 };
        let b = PathBatch::sample_with(xbar, &late, 8, &mut StdRng::seed_from_u64(1)).unwrap();
        let t = b.t.to_vec1::<f32>().unwrap();
        for group in t.chunks(8) {
            assert!(group.iter().all(|&v| v == group[0]), "{group:?}");
        }
        assert!(t[0] != t[8] && t[8] != t[16], "{t:?}");
    }

    #[test]
    fn uniform_ungrouped_sampling_draws_what_it_always_drew() {
        // Old runs resume bit-exactly only if the default draws are unchanged: ε first, then t.
        let xbar = Tensor::zeros((4, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = PathBatch::sample(xbar, &mut StdRng::seed_from_u64(9)).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let eps: Vec<f32> = (0..12).map(|_| rng.sample(StandardNormal)).collect();
        let t: Vec<f32> = (0..4).map(|_| rng.gen_range(T_MIN as f32..=1.0)).collect();
        assert_eq!(b.eps.flatten_all().unwrap().to_vec1::<f32>().unwrap(), eps);
        assert_eq!(b.t.to_vec1::<f32>().unwrap(), t);
    }
}
