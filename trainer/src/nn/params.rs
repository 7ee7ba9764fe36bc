//! Parameter declaration while building a network, and their seeded initialisation into a VarMap.
//! Names are dot-separated paths (`mlp.layers.0.weight`), the same keys the checkpoints use.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::graph::{Graph, GraphError, NodeId};

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform on `[-bound, bound]` (PyTorch's default for linear layers: bound = 1/√fan_in).
    Uniform(f64),
    /// All zeros (the last layer of U, so that ψ = ½‖x‖² at initialisation).
    Zeros,
    /// All ones (normalisation scales).
    Ones,
}

/// A declared parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub dims: Vec<usize>,
    pub init: Init,
}

/// A naming scope over a graph, in the manner of candle-nn's `VarBuilder::pp`.
pub struct Scope<'g> {
    pub graph: &'g mut Graph,
    prefix: Vec<String>,
    specs: &'g mut Vec<ParamSpec>,
}

impl<'g> Scope<'g> {
    pub fn new(graph: &'g mut Graph, specs: &'g mut Vec<ParamSpec>) -> Self {
        Self {
            graph,
            prefix: vec![],
            specs,
        }
    }

    /// Runs `f` in the sub-scope `name`.
    pub fn within<T>(&mut self, name: impl ToString, f: impl FnOnce(&mut Scope<'_>) -> T) -> T {
        self.prefix.push(name.to_string());
        let out = f(self);
        self.prefix.pop();
        out
    }

    /// Declares (or reuses) the parameter `prefix.name`.
    pub fn param(&mut self, name: &str, dims: &[usize], init: Init) -> Result<NodeId, GraphError> {
        let mut full = self.prefix.join(".");
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(name);
        let id = self.graph.param(&full, dims)?;
        if !self.specs.iter().any(|s| s.name == full) {
            self.specs.push(ParamSpec {
                name: full,
                dims: dims.to_vec(),
                init,
            });
        }
        Ok(id)
    }

    /// A linear layer `[.., in] → [.., out]` with a `[out, in]` weight and a bias.
    pub fn linear(
        &mut self,
        name: &str,
        x: NodeId,
        fan_in: usize,
        fan_out: usize,
        zero: bool,
    ) -> Result<NodeId, GraphError> {
        let init = if zero {
            Init::Zeros
        } else {
            Init::Uniform(1.0 / (fan_in as f64).sqrt())
        };
        self.within(name, |s| {
            let w = s.param("weight", &[fan_out, fan_in], init)?;
            let b = s.param("bias", &[fan_out], init)?;
            s.graph.linear(x, w, Some(b))
        })
    }
}

/// Creates every declared parameter in `varmap`, drawing values from a generator seeded by `seed`
/// in declaration order, so the same seed always gives the same weights.
pub fn init_params(
    specs: &[ParamSpec],
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = varmap.data().lock().expect("varmap lock");
    for spec in specs {
        let n: usize = spec.dims.iter().product();
        let values: Vec<f64> = match spec.init {
            Init::Uniform(b) => (0..n).map(|_| rng.gen_range(-b..=b)).collect(),
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
        };
        let t = Tensor::from_vec(values, spec.dims.as_slice(), device)?.to_dtype(dtype)?;
        data.insert(spec.name.clone(), Var::from_tensor(&t)?);
    }
    Ok(())
}
