//! Files that violate the model-file contract are refused with a typed, readable error.

use candle_core::DType;
use prost::Message;
use vpfb_runtime::onnx_proto::{tensor_shape_proto::dimension, type_proto, ModelProto};
use vpfb_runtime::{ContractError, Error, ModelFile};
use vpfb_testkit::models::random_mlp;
use vpfb_testkit::scratch;
use vpfb_trainer::export::{model_proto, param_values};
use vpfb_trainer::graph::onnx::ElemType;

fn valid() -> ModelProto {
    let (pg, varmap, meta) = random_mlp(2, 16, 2, 3, DType::F32);
    model_proto(&pg, &param_values(&varmap).unwrap(), &meta, ElemType::F32).unwrap()
}

fn load(bytes: &[u8], name: &str) -> Result<ModelFile, Error> {
    let path = scratch(&format!("contract-{name}")).join(name);
    std::fs::write(&path, bytes).unwrap();
    ModelFile::load(&path)
}

fn message(e: &Error) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "error message spans lines: {m}");
    m
}

#[test]
fn a_valid_export_passes() {
    let m = load(&valid().encode_to_vec(), "ok.onnx").expect("valid model");
    assert_eq!(m.meta.data_shape, vec![2]);
}

#[test]
fn truncated_file_is_not_onnx() {
    let bytes = valid().encode_to_vec();
    let e = load(&bytes[..bytes.len() / 2], "truncated.onnx").unwrap_err();
    assert!(matches!(e, Error::NotOnnx { .. }), "{e:?}");
    assert!(message(&e).contains("truncated.onnx"));
}

#[test]
fn text_file_and_empty_file_are_not_onnx() {
    for (bytes, name) in [
        (&b"hello, I am not a model\n"[..], "text.onnx"),
        (&b""[..], "empty.onnx"),
    ] {
        let e = load(bytes, name).unwrap_err();
        assert!(matches!(e, Error::NotOnnx { .. }), "{name}: {e:?}");
        message(&e);
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let e = ModelFile::load("/nonexistent/model.onnx").unwrap_err();
    assert!(matches!(e, Error::Read { .. }));
    assert!(message(&e).contains("/nonexistent/model.onnx"));
}

#[test]
fn missing_output_is_refused() {
    let mut p = valid();
    p.graph
        .as_mut()
        .unwrap()
        .output
        .retain(|o| o.name != "dpsi_dt");
    let e = load(&p.encode_to_vec(), "no-dpsi.onnx").unwrap_err();
    assert!(
        matches!(&e, Error::Contract { source: ContractError::MissingOutput(n), .. } if n == "dpsi_dt"),
        "{e:?}"
    );
    assert!(message(&e).contains("dpsi_dt"));
}

#[test]
fn wrong_input_rank_is_refused() {
    let mut p = valid();
    let x = p
        .graph
        .as_mut()
        .unwrap()
        .input
        .iter_mut()
        .find(|i| i.name == "x")
        .unwrap();
    let Some(type_proto::Value::TensorType(t)) = x.r#type.as_mut().unwrap().value.as_mut() else {
        panic!()
    };
    t.shape.as_mut().unwrap().dim.truncate(1);
    let e = load(&p.encode_to_vec(), "rank.onnx").unwrap_err();
    assert!(
        matches!(&e, Error::Contract { source: ContractError::WrongRank { name, found: 1, expected: 2 }, .. } if name == "x"),
        "{e:?}"
    );
    message(&e);
}

#[test]
fn wrong_data_dimension_is_refused() {
    let mut p = valid();
    let x = p
        .graph
        .as_mut()
        .unwrap()
        .input
        .iter_mut()
        .find(|i| i.name == "x")
        .unwrap();
    let Some(type_proto::Value::TensorType(t)) = x.r#type.as_mut().unwrap().value.as_mut() else {
        panic!()
    };
    t.shape.as_mut().unwrap().dim[1].value = Some(dimension::Value::DimValue(3));
    let e = load(&p.encode_to_vec(), "dim.onnx").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Contract {
                source: ContractError::WrongDim { .. },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_format_version_is_refused() {
    let mut p = valid();
    p.metadata_props
        .iter_mut()
        .find(|m| m.key == "vpfb.format_version")
        .unwrap()
        .value = "99".into();
    let e = load(&p.encode_to_vec(), "v99.onnx").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Contract {
                source: ContractError::UnsupportedVersion { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(message(&e).contains("99"));
}

#[test]
fn missing_or_bad_metadata_is_refused() {
    let mut p = valid();
    p.metadata_props.retain(|m| m.key != "vpfb.normalization");
    let e = load(&p.encode_to_vec(), "nonorm.onnx").unwrap_err();
    assert!(
        matches!(&e, Error::Contract { source: ContractError::MissingMetadata(k), .. } if k == "vpfb.normalization")
    );

    let mut p = valid();
    p.metadata_props
        .iter_mut()
        .find(|m| m.key == "vpfb.normalization")
        .unwrap()
        .value = r#"{"kind":"standardize","mean":[0.0],"std":[1.0,1.0]}"#.into();
    let e = load(&p.encode_to_vec(), "badnorm.onnx").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Contract {
                source: ContractError::BadMetadata { .. },
                ..
            }
        ),
        "{e:?}"
    );
    message(&e);
}

#[test]
fn extra_input_is_refused() {
    let mut p = valid();
    let g = p.graph.as_mut().unwrap();
    let mut extra = g.input[0].clone();
    extra.name = "label".into();
    g.input.push(extra);
    let e = load(&p.encode_to_vec(), "extra.onnx").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Contract {
                source: ContractError::UnexpectedValue { .. },
                ..
            }
        ),
        "{e:?}"
    );
}
