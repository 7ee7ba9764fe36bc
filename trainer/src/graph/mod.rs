//! The explicit-gradient machinery: a small backend-neutral op set, a reverse-mode differentiator
//! that writes gradients as ordinary ops of the same set, and two backends that run it — Candle
//! tensors for training and an ONNX graph builder for export.
//!
//! A network's forward pass is written once into a [`Graph`]. [`vjp`] then appends the nodes of
//! ∇ₓψ and ∂ψ/∂t. Evaluated with [`candle_eval`], Candle's own first-order `backward()` of a loss
//! built on those nodes is the exact second-order parameter gradient; emitted with [`onnx`], the same
//! nodes become the `velocity` and `dpsi_dt` outputs. Every VJP rule is built from ops that have VJP
//! rules, so the differentiator can run again on its own output (Hessian-vector products).

mod builder;
mod candle_conv;
pub mod candle_eval;
mod candle_im2col;
mod cse;
mod error;
pub mod onnx;
mod op;
pub mod shape;
mod vjp;

pub use builder::{Graph, Node, NodeId};
pub use cse::eliminate_common_subexpressions;
pub use error::GraphError;
pub use op::{Binary, Op, Unary};
pub use shape::{Dim, Shape};
pub use vjp::vjp;
