//! vpfb-trainer: learns a VPFB potential ψθ(x, t) with Candle and exports it, together with its
//! explicit input gradient, to the ONNX model-file contract of `vpfb-runtime`.

pub mod export;
pub mod graph;
pub mod nn;
pub mod numeric;
