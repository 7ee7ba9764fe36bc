//! vpfb-trainer: learns a VPFB potential ψθ(x, t) with Candle and exports it, together with its
//! explicit input gradient, to the ONNX model-file contract of `vpfb-runtime`.

// `!(v > 0.0)` is how this code rejects NaN together with the out-of-range values; the lint's
// suggested `partial_cmp` form says the same less plainly.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod calibrate;
pub mod candle_field;
pub mod data;
pub mod detector;
pub mod detector_graph;
pub mod device;
pub mod device_check;
pub mod export;
pub mod export_ood;
pub mod graph;
pub mod loss;
pub mod metrics;
pub mod model_import;
pub mod nn;
pub mod numeric;
pub mod optim;
pub mod plot;
pub mod train;
