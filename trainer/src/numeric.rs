//! Small numeric helpers shared by export verification and tests.

/// Max-norm relative error `max|a − b| / max(max|b|, floor)`.
///
/// Normalising by the reference's largest magnitude (not element-wise) keeps entries that are near
/// zero from dominating, which is the meaningful error for a vector field or a batch of potentials.
pub fn max_rel_err(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}
