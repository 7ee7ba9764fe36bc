//! Static shapes with one symbolic dimension, the batch size `N`.
//!
//! Every node of a [`Graph`](super::Graph) carries its shape, so the differentiator can decide at
//! build time which axes a broadcast gradient must be summed over; that keeps the exported ONNX
//! graph free of shape arithmetic while the batch size stays dynamic.

use std::fmt;

use super::GraphError;

/// One dimension: the symbolic batch size, or a fixed extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The dynamic batch size `N` (the same `N` everywhere in one graph).
    Batch,
    /// A size known when the graph is built.
    Fixed(usize),
}

/// A node's shape, outermost dimension first.
pub type Shape = Vec<Dim>;

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Batch => write!(f, "N"),
            Dim::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Formats a shape as `[N, 3]`.
pub fn show(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Builds a shape of fixed dimensions.
pub fn fixed(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Fixed(d)).collect()
}

/// NumPy-style broadcasting of two shapes (right-aligned; a fixed 1 stretches).
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Shape, GraphError> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            Dim::Fixed(1)
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            Dim::Fixed(1)
        };
        let d = match (da, db) {
            (x, y) if x == y => x,
            (Dim::Fixed(1), y) => y,
            (x, Dim::Fixed(1)) => x,
            _ => {
                return Err(GraphError::Shape(format!(
                    "cannot broadcast {} with {}",
                    show(a),
                    show(b)
                )))
            }
        };
        out.push(d);
    }
    Ok(out)
}

/// Product of the fixed dimensions and the number of batch dimensions.
pub fn fixed_volume(shape: &[Dim]) -> (usize, usize) {
    shape.iter().fold((1, 0), |(vol, nb), d| match d {
        Dim::Batch => (vol, nb + 1),
        Dim::Fixed(n) => (vol * n, nb),
    })
}

/// Resolves a shape to concrete extents for a given batch size.
pub fn concrete(shape: &[Dim], batch: usize) -> Vec<usize> {
    shape
        .iter()
        .map(|d| match d {
            Dim::Batch => batch,
            Dim::Fixed(n) => *n,
        })
        .collect()
}
