//! One way for every kernel to use the widest vector instructions the CPU has.
//!
//! x86-64 builds target SSE2 only, so each kernel is written once, generic over `FMA` (whether
//! the code it is compiled into has fused multiply-adds), and [`fastest`] calls the build made
//! for AVX2 + FMA when the CPU has them. aarch64 always has fused multiply-add; other targets
//! run the baseline.

/// Calls `path::<FMA>(args)`, a function returning `()` whose only generic is `const FMA: bool`,
/// compiled for AVX2 + FMA (`FMA = true`) when the CPU has them, else as built. The arguments
/// are named with their types: `fastest!(Conv2d::direct_loops::<FMA>(g: &Conv2d, x: &[f32]))`.
/// `fastest!(conv path(geometry, x, kernel, bias, out, work))` names the arguments of a
/// convolution kernel (those of `Conv2d::forward`) once for all of them.
macro_rules! fastest {
    (conv $($f:ident)::+ ($g:expr, $x:expr, $k:expr, $b:expr, $out:expr, $work:expr)) => {{
        let (g, x, kernel, bias, out, work) = ($g, $x, $k, $b, $out, $work);
        fastest!($($f)::+::<FMA>(
            g: &Conv2d,
            x: &[f32],
            kernel: &[f32],
            bias: Option<&[f32]>,
            out: &mut [f32],
            work: &mut [f32],
        ))
    }};
    ($($f:ident)::+ ::<FMA>($($arg:ident: $ty:ty),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn wide($($arg: $ty),*) {
                $($f)::+::<true>($($arg),*)
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features the function was compiled for.
                unsafe { wide($($arg),*) }
            } else {
                $($f)::+::<false>($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        $($f)::+::<{ cfg!(target_arch = "aarch64") }>($($arg),*)
    }};
}
pub(super) use fastest;
