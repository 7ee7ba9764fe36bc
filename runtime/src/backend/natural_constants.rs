//! Gives every constant of an optimised tract model the natural (C-order) strides of its shape.
//!
//! tract folds a per-channel parameter reshaped to `[1, C, 1, 1]` (GroupNorm's scale and shift,
//! FiLM's) into a constant whose size-1 axes carry stride 1 instead of `C`. The memory layout is
//! the same, but tract's fused elementwise kernels take their fast path only when strides equal
//! the natural ones, and otherwise fall back to a scalar broadcasting loop: on the shipped UNet
//! that fallback was 40 % of an evaluation. Restriding the constants once, when the plan is
//! built, keeps every such operation on the vectorised path; values are unchanged.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;

/// Rewrites, in place, each plain constant whose strides differ from its shape's natural strides
/// on size-1 axes only (those hold the same bytes in the same order); returns how many it
/// rewrote. A constant with a genuinely different layout (a transposed view) is left alone.
pub(super) fn naturalise_constants(model: &mut TypedModel) -> TractResult<usize> {
    let mut rewritten = 0;
    for node in model.nodes.iter_mut() {
        let Some(konst) = node.op_as::<Const>() else {
            continue;
        };
        if konst.exotic_fact().is_some() {
            continue;
        }
        let tensor = konst.val();
        let natural = Tensor::natural_strides(tensor.shape());
        if tensor.strides() == &*natural || !same_layout(tensor.shape(), tensor.strides(), &natural)
        {
            continue;
        }
        let shape = tensor.shape().to_vec();
        let mut restrided = (**tensor).clone();
        // A change of shape recomputes natural strides; going through the flat shape forces it.
        restrided.set_shape(&[restrided.len()])?;
        restrided.set_shape(&shape)?;
        let restrided = Arc::new(restrided);
        node.op = Box::new(Const::new(Arc::clone(&restrided))?);
        if let Some(out) = node.outputs.first_mut() {
            out.fact.konst = Some(restrided);
        }
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Whether `strides` address the elements of `shape` in the same order as `natural` does: they
/// may differ only on axes of size 1, which are never stepped along.
fn same_layout(shape: &[usize], strides: &[isize], natural: &[isize]) -> bool {
    strides.len() == natural.len()
        && shape
            .iter()
            .zip(strides.iter().zip(natural))
            .all(|(&dim, (s, n))| dim == 1 || s == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_one_axes_may_differ_but_real_axes_may_not() {
        // [1, 3, 1, 1] after insert_axis: strides [1, 1, 1, 1]; natural [3, 1, 1, 1].
        assert!(same_layout(&[1, 3, 1, 1], &[1, 1, 1, 1], &[3, 1, 1, 1]));
        // A transposed [2, 3] view: strides [1, 2] against natural [3, 1].
        assert!(!same_layout(&[2, 3], &[1, 2], &[3, 1]));
    }

    #[test]
    fn a_constant_with_an_inserted_axis_is_restrided_and_keeps_its_values() -> TractResult<()> {
        let mut tensor = tensor1(&[1.0f32, 2.0, 3.0]);
        tensor.insert_axis(0)?;
        tensor.insert_axis(2)?;
        assert_ne!(tensor.strides(), &*Tensor::natural_strides(tensor.shape()));
        let mut model = TypedModel::default();
        let k = model.add_const("k", tensor)?;
        model.select_output_outlets(&[k])?;

        assert_eq!(naturalise_constants(&mut model)?, 1);
        let konst = model.nodes[k.node]
            .op_as::<Const>()
            .expect("still a constant");
        assert_eq!(konst.val().shape(), &[1, 3, 1]);
        assert_eq!(konst.val().strides(), &*Tensor::natural_strides(&[1, 3, 1]));
        assert_eq!(
            konst.val().try_as_plain_ram()?.as_slice::<f32>()?,
            &[1.0, 2.0, 3.0]
        );
        // A second pass finds nothing left to do.
        assert_eq!(naturalise_constants(&mut model)?, 0);
        Ok(())
    }
}
