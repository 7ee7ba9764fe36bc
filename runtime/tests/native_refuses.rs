//! The native evaluator refuses, at load time and with an error naming the node and the operator,
//! a file whose graph uses an operator it does not implement; other backends are unaffected.

use prost::Message;
use vpfb_runtime::onnx_proto::ModelProto;
use vpfb_runtime::{Error, LoadOptions, Model};

#[test]
fn an_unknown_operator_is_a_load_error_naming_it() {
    let bytes = std::fs::read(vpfb_testkit::shipped_model("moons.onnx")).unwrap();
    let mut proto = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let node = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "Sigmoid")
        .expect("the moons potential has SiLU activations");
    node.op_type = "Erf".into();
    let name = node.name.clone();
    let result = Model::from_bytes(
        &proto.encode_to_vec(),
        "edited.onnx",
        &LoadOptions::default(),
    );
    let Err(err) = result else {
        panic!("a graph with Erf loaded");
    };
    let message = err.to_string();
    assert!(matches!(err, Error::NotOnnx { .. }), "{message}");
    assert!(
        message.contains("edited.onnx")
            && message.contains("operator Erf")
            && message.contains(&name),
        "{message}"
    );
}
