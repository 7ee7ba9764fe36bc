//! Elementwise operators: unary maps over a contiguous tensor and binary operators with numpy
//! broadcasting, with loops simple enough for the compiler to vectorise (the exponential behind
//! Sigmoid and Exp is a polynomial, not a libm call, for that reason).

use super::dispatch::fastest;
use super::walk::Walk;

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unary {
    Neg,
    Exp,
    Log,
    Sigmoid,
    Tanh,
    Softplus,
    Sin,
    Cos,
    Sqrt,
    Reciprocal,
    Relu,
    Abs,
}

impl Unary {
    pub fn from_onnx(op: &str) -> Option<Self> {
        Some(match op {
            "Neg" => Self::Neg,
            "Exp" => Self::Exp,
            "Log" => Self::Log,
            "Sigmoid" => Self::Sigmoid,
            "Tanh" => Self::Tanh,
            "Softplus" => Self::Softplus,
            "Sin" => Self::Sin,
            "Cos" => Self::Cos,
            "Sqrt" => Self::Sqrt,
            "Reciprocal" => Self::Reciprocal,
            "Relu" => Self::Relu,
            "Abs" => Self::Abs,
            _ => return None,
        })
    }
}

/// A binary operator (broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl Binary {
    pub fn from_onnx(op: &str) -> Option<Self> {
        Some(match op {
            "Add" => Self::Add,
            "Sub" => Self::Sub,
            "Mul" => Self::Mul,
            "Div" => Self::Div,
            "Max" => Self::Max,
            "Min" => Self::Min,
            _ => return None,
        })
    }
}

/// `a·b + c`, fused where the code is compiled for FMA (`FMA`), else two operations (a fused
/// multiply-add without the instruction is a slow library call).
#[inline(always)]
pub(super) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x for x clamped to [−87.3, 88.72], written so that loops over it vectorise: Cody–Waite range
/// reduction to r ∈ [−ln2/2, ln2/2], a degree-6 polynomial, and the power of two built in
/// exponent bits. NaN stays NaN.
#[inline(always)]
fn exp_clamped<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.72);
    let kf = madd::<FMA>(xc, LOG2E, ROUND);
    let k = kf.to_bits() as i32 - ROUND.to_bits() as i32;
    let kf = kf - ROUND;
    let r = madd::<FMA>(-kf, LN2_LO, madd::<FMA>(-kf, LN2_HI, xc));
    let mut p = 0.001_388_531;
    for c in [0.008_333_452, 0.041_666_668, 0.166_666_67, 0.5, 1.0, 1.0] {
        p = madd::<FMA>(p, r, c);
    }
    // 2^k in two factors, each a normal float over the whole clamped range (k ∈ [−126, 128]).
    let k1 = k >> 1;
    p * f32::from_bits(((k1 + 127) as u32) << 23) * f32::from_bits(((k - k1 + 127) as u32) << 23)
}

/// e^x to about 2 ulp; 0 below −87.3 and +∞ above 88.72 (past f32::MAX); NaN stays NaN.
#[inline(always)]
pub(super) fn exp<const FMA: bool>(x: f32) -> f32 {
    let y = exp_clamped::<FMA>(x);
    if x > 88.72 {
        f32::INFINITY
    } else if x < -87.3 {
        0.0
    } else {
        y
    }
}

/// 1 / (1 + e^−x). Past the clamp the result is already 0 or 1 to float precision, so the
/// clamped exponential serves without the saturation branches.
#[inline(always)]
fn sigmoid<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp_clamped::<FMA>(-x))
}

/// Largest |x| whose quadrant `k = round(x·2/π)` stays below 2¹³, so that `k` times each
/// 11-bit part of π/2 is exact in single precision.
const SIN_COS_LIMIT: f32 = 8192.0;

/// sin(x) (`quadrant` 0) or cos(x) = sin(x + π/2) (`quadrant` 1) for |x| ≤ [`SIN_COS_LIMIT`],
/// written so that loops over it vectorise: Cody–Waite reduction by π/2 in three parts to
/// r ∈ [−π/4, π/4], then the Taylor polynomial of sin or cos (degree 9 and 10: the first
/// omitted term is below 2·10⁻⁹) chosen by the quadrant, with its sign.
#[inline(always)]
fn sin_quadrant<const FMA: bool>(x: f32, quadrant: u32) -> f32 {
    const TWO_OVER_PI: f32 = std::f32::consts::FRAC_2_PI;
    // π/2 = P1 + P2 + P3, the first two with 11 significant bits.
    const P1: f32 = 1.570_312_5;
    const P2: f32 = 4.837_513e-4;
    const P3: f32 = 7.549_79e-8;
    const ROUND: f32 = 12_582_912.0;
    let kf = madd::<FMA>(x, TWO_OVER_PI, ROUND);
    let k = kf.to_bits().wrapping_sub(ROUND.to_bits());
    let kf = kf - ROUND;
    let r = madd::<FMA>(-kf, P3, madd::<FMA>(-kf, P2, madd::<FMA>(-kf, P1, x)));
    let r2 = r * r;
    let mut s = 1.0 / 362_880.0;
    for c in [-1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0] {
        s = madd::<FMA>(s, r2, c);
    }
    let s = madd::<FMA>(s * r2, r, r);
    let mut c = -1.0 / 3_628_800.0;
    for coef in [1.0 / 40_320.0, -1.0 / 720.0, 1.0 / 24.0, -0.5, 1.0] {
        c = madd::<FMA>(c, r2, coef);
    }
    let q = k.wrapping_add(quadrant);
    let v = if q & 1 == 1 { c } else { s };
    f32::from_bits(v.to_bits() ^ ((q & 2) << 30))
}

/// `out[i] = sin(a[i])` (`quadrant` 0) or `cos(a[i])` (1): the vectorised polynomial, then
/// libm for the rare arguments beyond its range (and infinities and NaN).
#[inline(always)]
fn sin_slices<const FMA: bool>(a: &[f32], out: &mut [f32], quadrant: u32) {
    let mut beyond = false;
    for (o, &x) in out.iter_mut().zip(a) {
        *o = sin_quadrant::<FMA>(x, quadrant);
        beyond |= !(x.abs() <= SIN_COS_LIMIT);
    }
    if beyond {
        for (o, &x) in out.iter_mut().zip(a) {
            if !(x.abs() <= SIN_COS_LIMIT) {
                *o = if quadrant == 0 { x.sin() } else { x.cos() };
            }
        }
    }
}

/// `out[i] = op(a[i])`.
pub(super) fn unary(op: Unary, a: &[f32], out: &mut [f32]) {
    fastest!(unary_slices::<FMA>(op: Unary, a: &[f32], out: &mut [f32]))
}

/// `out[i] = op(a[i])` as compiled into the caller (`FMA`: the caller is compiled for fused
/// multiply-adds).
#[inline(always)]
pub(super) fn unary_slices<const FMA: bool>(op: Unary, a: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn map(a: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x);
        }
    }
    match op {
        Unary::Neg => map(a, out, |x| -x),
        Unary::Exp => map(a, out, exp::<FMA>),
        Unary::Log => map(a, out, f32::ln),
        Unary::Sigmoid => map(a, out, sigmoid::<FMA>),
        Unary::Tanh => map(a, out, f32::tanh),
        Unary::Softplus => map(a, out, |x| if x > 20.0 { x } else { x.exp().ln_1p() }),
        Unary::Sin => sin_slices::<FMA>(a, out, 0),
        Unary::Cos => sin_slices::<FMA>(a, out, 1),
        Unary::Sqrt => map(a, out, f32::sqrt),
        Unary::Reciprocal => map(a, out, |x| 1.0 / x),
        Unary::Relu => map(a, out, |x| if x > 0.0 { x } else { 0.0 }),
        Unary::Abs => map(a, out, f32::abs),
    }
}

/// `out = a op b` along a walk over the output (operands: out, a, b).
pub(super) fn binary(op: Binary, walk: &Walk<3>, a: &[f32], b: &[f32], out: &mut [f32]) {
    fastest!(binary_loops::<FMA>(op: Binary, walk: &Walk<3>, a: &[f32], b: &[f32], out: &mut [f32]))
}

/// Max and Min propagate a NaN in either operand's first position, as numpy's and ONNX
/// Runtime's do.
#[inline(always)]
fn max_nan(x: f32, y: f32) -> f32 {
    if x.is_nan() || x > y {
        x
    } else {
        y
    }
}

#[inline(always)]
fn min_nan(x: f32, y: f32) -> f32 {
    if x.is_nan() || x < y {
        x
    } else {
        y
    }
}

/// (`FMA` is unused: the operators have no multiply-add; the build for the widest vectors still
/// runs twice as many lanes.)
#[inline(always)]
fn binary_loops<const FMA: bool>(
    op: Binary,
    walk: &Walk<3>,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    match op {
        Binary::Add => zip(walk, a, b, out, |x, y| x + y),
        Binary::Sub => zip(walk, a, b, out, |x, y| x - y),
        Binary::Mul => zip(walk, a, b, out, |x, y| x * y),
        Binary::Div => zip(walk, a, b, out, |x, y| x / y),
        Binary::Max => zip(walk, a, b, out, max_nan),
        Binary::Min => zip(walk, a, b, out, min_nan),
    }
}

/// `out[i] = a[i] op b[i]` over slices of one length, as compiled into the caller.
#[inline(always)]
pub(super) fn binary_slices(op: Binary, a: &[f32], b: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn map2(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
    match op {
        Binary::Add => map2(a, b, out, |x, y| x + y),
        Binary::Sub => map2(a, b, out, |x, y| x - y),
        Binary::Mul => map2(a, b, out, |x, y| x * y),
        Binary::Div => map2(a, b, out, |x, y| x / y),
        Binary::Max => map2(a, b, out, max_nan),
        Binary::Min => map2(a, b, out, min_nan),
    }
}

#[inline(always)]
fn zip(walk: &Walk<3>, a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    let n = walk.inner;
    let [so, sa, sb] = walk.inner_strides;
    debug_assert!(so == 1 || n == 1);
    for [o, ia, ib] in walk.rows() {
        let o = &mut out[o as usize..o as usize + n];
        match (sa, sb) {
            (1, 1) => {
                let (a, b) = (
                    &a[ia as usize..ia as usize + n],
                    &b[ib as usize..ib as usize + n],
                );
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let (a, y) = (&a[ia as usize..ia as usize + n], b[ib as usize]);
                for (o, &x) in o.iter_mut().zip(a) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let (x, b) = (a[ia as usize], &b[ib as usize..ib as usize + n]);
                for (o, &y) in o.iter_mut().zip(b) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (i, o) in o.iter_mut().enumerate() {
                    let i = i as isize;
                    *o = f(a[(ia + i * sa) as usize], b[(ib + i * sb) as usize]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_exp<const FMA: bool>() {
        let mut worst = 0f32;
        for i in -8700..=8870 {
            let x = i as f32 * 0.01 + 0.003;
            let (got, want) = (exp::<FMA>(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "fma {FMA}: worst relative error {worst}");
        assert_eq!(exp::<FMA>(-100.0), 0.0);
        assert_eq!(exp::<FMA>(100.0), f32::INFINITY);
        assert!(exp::<FMA>(f32::NAN).is_nan());
        assert_eq!(exp::<FMA>(0.0), 1.0);
        for x in [-200.0f32, -30.0, -1.0, 0.0, 0.5, 30.0, 200.0] {
            let want = 1.0 / (1.0 + (-x).exp());
            assert!((sigmoid::<FMA>(x) - want).abs() <= 1e-7, "sigmoid({x})");
        }
        assert!(sigmoid::<FMA>(f32::NAN).is_nan());
    }

    fn check_sin_cos<const FMA: bool>() {
        let xs = (-1_000_000..=1_000_000)
            .map(|i| i as f32 * 0.008_192_7)
            // Near multiples of π/2, where the reduction cancels most.
            .chain((-5000..=5000).map(|k| (k as f64 * std::f64::consts::FRAC_PI_2) as f32))
            .chain([0.0, -0.0, 1e-30, 8191.9, -8192.0, 8192.5, 1e6, -3e30]);
        let xs: Vec<f32> = xs.collect();
        let mut out = vec![0.0; xs.len()];
        for (quadrant, f) in [(0, f64::sin as fn(f64) -> f64), (1, f64::cos)] {
            sin_slices::<FMA>(&xs, &mut out, quadrant);
            let worst = xs
                .iter()
                .zip(&out)
                .map(|(&x, &y)| (y as f64 - f(x as f64)).abs())
                .fold(0f64, f64::max);
            assert!(
                worst < 1.2e-7,
                "fma {FMA}, quadrant {quadrant}: worst error {worst}"
            );
        }
        sin_slices::<FMA>(&[0.0, -0.0], &mut out[..2], 0);
        assert_eq!(
            out[..2].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            [0, 0]
        );
        for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            sin_slices::<FMA>(&[x], &mut out[..1], 0);
            assert!(out[0].is_nan(), "sin({x})");
        }
    }

    #[test]
    fn the_polynomial_sine_and_cosine_match_libm() {
        check_sin_cos::<false>();
        check_sin_cos::<true>();
    }

    #[test]
    fn the_polynomial_exponential_matches_libm() {
        check_exp::<false>();
        // Software fused multiply-add where the CPU has none: slow but the same values.
        check_exp::<true>();
    }
}
