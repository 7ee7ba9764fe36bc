//! Potential networks written over the graph op set: ψ(x, t) = ½‖x − U(x, t)‖².

mod conv_layers;
mod mlp;
mod param_gradient;
mod params;
mod potential;
mod time_embedding;
mod unet;

pub use mlp::MlpConfig;
pub use param_gradient::{
    param_gradient_graph, ParamGradientGraph, COTANGENT_DPSI_DT, COTANGENT_PSI, COTANGENT_VELOCITY,
};
pub use params::{init_params, Init, ParamSpec, Scope};
pub use potential::{add_hvp, build_potential, HvpNodes, Network, PotentialGraph};
pub use time_embedding::TimeEmbedding;
pub use unet::{UnetConfig, UnetPreset};
