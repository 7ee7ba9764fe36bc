use thiserror::Error;

/// Errors raised while building, differentiating or evaluating a [`Graph`](super::Graph).
#[derive(Debug, Error)]
pub enum GraphError {
    /// Two operands or an operation's arguments do not fit together.
    #[error("shape error: {0}")]
    Shape(String),
    /// An input or parameter the graph refers to was not supplied.
    #[error("missing binding for {kind} `{name}`")]
    MissingBinding { kind: &'static str, name: String },
    /// A supplied tensor does not have the shape the graph declares.
    #[error("{kind} `{name}` has shape {got:?}, the graph expects {expected}")]
    BindingShape {
        kind: &'static str,
        name: String,
        got: Vec<usize>,
        expected: String,
    },
    /// The operation has no VJP rule for this case.
    #[error("cannot differentiate: {0}")]
    NotDifferentiable(String),
    /// Candle failed while evaluating a node.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}
