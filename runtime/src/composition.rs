//! Composition (product of experts): one flow whose velocity is the weighted sum of several models'
//! velocities, v = Σₖ wₖ vₖ, integrated in one reference model's space (docs/method.md §6).
//!
//! Every model standardises its own training data, so two models trained separately see the same raw
//! record at different model-space coordinates. The composition therefore works in the reference
//! model's space: each state is mapped into every model's space (an affine map per feature), each
//! velocity is mapped back through that map's Jacobian, and the weighted sum moves the state. What this
//! approximates: at t ≈ 0 each model expects its own N(0, I) noise, which in the reference space is a
//! shifted and scaled Gaussian when the normalisations differ; the composed flow starts from the
//! reference's noise. Models meant to be composed can share one space exactly by training with
//! `vpfb-train fit --normalization-from`.
//!
//! Integrating summed velocities is a heuristic for the product of densities (the flow of a sum is not
//! the flow of the product); [`Composition::sample_langevin`] samples the product itself with annealed
//! Langevin dynamics on the summed scores.

use crate::backend::Backend;
use crate::io::Records;
use crate::model::{FlowOptions, Generated};
use crate::solver::VelocityField;
use crate::{Error, Model, Normalization};

/// One model of a composition, with the map from reference-space states into its own space.
struct Part<'a> {
    model: &'a dyn Backend,
    weight: f32,
    /// `z_model = a · z_ref + b` per feature, and its velocity back as `v_ref = v_model / a`; `None`
    /// when the model shares the reference's normalisation (the identity map, skipped so that such a
    /// composition is exactly the plain sum).
    map: Option<AffineMap>,
}

/// How a model's output returns from its space to the reference space through z_k = a·z + b: a
/// velocity (a tangent vector) is divided by a, a score (a gradient) multiplied by a.
#[derive(Clone, Copy)]
enum MapBack {
    Vector,
    Gradient,
}

struct AffineMap {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl AffineMap {
    /// Reference-space states `x` (records of `a.len()` values) in the target model's space.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let d = self.a.len();
        x.iter()
            .enumerate()
            .map(|(i, &xi)| self.a[i % d] * xi + self.b[i % d])
            .collect()
    }

    /// The map from `reference`'s model space into `target`'s, or `None` when they are the same.
    fn between(reference: &Normalization, target: &Normalization, d: usize) -> Option<Self> {
        if reference == target {
            return None;
        }
        let (o_r, s_r) = reference.per_feature(d);
        let (o_t, s_t) = target.per_feature(d);
        // raw = z_ref·s_r + o_r  and  z_t = (raw − o_t)/s_t.
        let a = (0..d).map(|j| (s_r[j] / s_t[j]) as f32).collect();
        let b = (0..d)
            .map(|j| ((o_r[j] - o_t[j]) / s_t[j]) as f32)
            .collect();
        Some(Self { a, b })
    }
}

/// Product of experts: v = Σₖ wₖ vₖ over models of one data shape, in a reference model's space.
pub struct Composition<'a> {
    parts: Vec<Part<'a>>,
    reference: usize,
}

impl<'a> Composition<'a> {
    /// The composition in the first model's space. Refuses an empty list, non-finite weights and
    /// models whose record shapes differ.
    pub fn new(parts: &[(&'a Model, f64)]) -> Result<Self, Error> {
        Self::with_reference(parts, 0)
    }

    /// The composition in the space of model `reference` (an index into `parts`).
    pub fn with_reference(parts: &[(&'a Model, f64)], reference: usize) -> Result<Self, Error> {
        Self::of_backends(
            parts.iter().map(|&(m, w)| (m as &dyn Backend, w)).collect(),
            reference,
        )
    }

    /// [`Composition::with_reference`] over any backends.
    pub fn of_backends(
        parts: Vec<(&'a dyn Backend, f64)>,
        reference: usize,
    ) -> Result<Self, Error> {
        let invalid = |m: String| Err(Error::InvalidArgument(m));
        if parts.is_empty() {
            return invalid("a composition needs at least one model".into());
        }
        let Some(&(ref_model, _)) = parts.get(reference) else {
            return invalid(format!(
                "reference model {} does not exist ({} models)",
                reference + 1,
                parts.len()
            ));
        };
        let ref_meta = &ref_model.file().meta;
        let d = ref_meta.record_len();
        let mut out = Vec::with_capacity(parts.len());
        for (m, w) in parts {
            let meta = &m.file().meta;
            if meta.data_shape != ref_meta.data_shape {
                return invalid(format!(
                    "{} has data shape {:?}, {} has {:?}",
                    m.file().path.display(),
                    meta.data_shape,
                    ref_model.file().path.display(),
                    ref_meta.data_shape
                ));
            }
            if !w.is_finite() {
                return invalid(format!("weight {w} is not finite"));
            }
            out.push(Part {
                model: m,
                weight: w as f32,
                map: AffineMap::between(&ref_meta.normalization, &meta.normalization, d),
            });
        }
        Ok(Self {
            parts: out,
            reference,
        })
    }

    /// The normalisation of the space the flow runs in (the reference model's).
    pub fn normalization(&self) -> &Normalization {
        &self.parts[self.reference].model.file().meta.normalization
    }

    /// ∇ log Πₖ pₖ,ₜ(x)^wₖ: the weighted sum of the models' noised-density scores at reference-space
    /// states `x`.
    fn score(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error> {
        self.weighted_sum(x, MapBack::Gradient, |m, z| {
            crate::langevin::model_score(m, z, t)
        })
    }

    /// Σₖ wₖ·(`eval` of model k at the state mapped into its space, mapped back into the reference
    /// space as `back` says). Models without a map contribute wₖ·`eval` unchanged.
    fn weighted_sum(
        &self,
        x: &[f32],
        back: MapBack,
        eval: impl Fn(&dyn Backend, &[f32]) -> Result<Vec<f32>, Error>,
    ) -> Result<Vec<f32>, Error> {
        let d = self.record_len();
        let mut sum = vec![0f32; x.len()];
        for part in &self.parts {
            match &part.map {
                None => {
                    for (acc, e) in sum.iter_mut().zip(eval(part.model, x)?) {
                        *acc += part.weight * e;
                    }
                }
                Some(map) => {
                    let e = eval(part.model, &map.apply(x))?;
                    for (i, (acc, ei)) in sum.iter_mut().zip(e).enumerate() {
                        let a = map.a[i % d];
                        *acc += part.weight
                            * match back {
                                MapBack::Vector => ei / a,
                                MapBack::Gradient => ei * a,
                            };
                    }
                }
            }
        }
        Ok(sum)
    }

    /// `n` samples (raw units) of the weighted product Πₖ pₖ^wₖ by annealed Langevin dynamics on the
    /// sum of the models' scores (docs/method.md §6), about `evaluations` evaluations of every
    /// model. Unlike [`Composition::sample`], which integrates the summed velocities, this samples
    /// the product itself (up to the noise levels of the models' spaces differing when their
    /// normalisations do). Record `i` draws its noise from `seed + i`.
    pub fn sample_langevin(
        &self,
        n: usize,
        evaluations: usize,
        seed: u64,
    ) -> Result<Generated, Error> {
        let d = self.record_len();
        let mut values = Vec::with_capacity(n * d);
        let mut stats = crate::SolveStats::default();
        let score = |x: &[f32], t: f32| self.score(x, t);
        let indices: Vec<usize> = (0..n).collect();
        for rows in indices.chunks(crate::backend::chunk_rows(d)) {
            let mut rngs: Vec<_> = rows
                .iter()
                .map(|&r| crate::imputation::record_rng(seed, r))
                .collect();
            let zeros = vec![0f32; rows.len() * d];
            let unknown = vec![true; rows.len() * d];
            let (x, s) =
                crate::langevin::annealed(&score, &zeros, &unknown, &mut rngs, evaluations)?;
            stats += s;
            if x.iter().any(|v| !v.is_finite()) {
                return Err(Error::Numeric(
                    "the Langevin chain produced non-finite samples".into(),
                ));
            }
            values.extend(
                self.normalization()
                    .to_raw(&x.iter().map(|&v| v as f64).collect::<Vec<_>>(), d),
            );
        }
        Ok(Generated {
            records: Records { cols: d, values },
            stats,
        })
    }

    /// `n` samples (raw units) from the composed flow, started from the reference space's noise.
    pub fn sample(&self, n: usize, options: &FlowOptions) -> Result<Generated, Error> {
        // Chunked like single-model sampling, so large n stays memory-bounded and non-finite
        // results are caught.
        let (values, stats) = crate::sampling::sample_field(
            self,
            self.normalization(),
            n,
            options.solver,
            options.seed,
        )?;
        Ok(Generated {
            records: Records {
                cols: self.record_len(),
                values,
            },
            stats,
        })
    }
}

impl VelocityField for Composition<'_> {
    fn record_len(&self) -> usize {
        self.parts[0].model.file().meta.record_len()
    }

    fn velocity(&self, x: &[f32], t: f32) -> Result<Vec<f32>, Error> {
        self.weighted_sum(x, MapBack::Vector, |m, z| m.velocity(z, t))
    }
}
