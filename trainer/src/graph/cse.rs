//! Common-subexpression elimination: nodes with the same op on the same arguments are one node.
//!
//! Differentiating a graph twice (the training step's parameter gradient is a VJP of a graph that
//! already holds a VJP) writes some terms again: each SiLU's sigmoid, for one, is built once by the
//! input gradient's rule and once more by the parameter gradient's. Merging them saves whole passes
//! over image-sized tensors.

use std::collections::HashMap;

use super::{Graph, NodeId};

/// `graph` with duplicate nodes merged, and each old node's id in the new graph. Nodes keep their
/// order; a node is a duplicate of an earlier one when its op, parameters and (merged) arguments are
/// equal. Inputs and parameters are unique by name, so they are never merged.
pub fn eliminate_common_subexpressions(graph: &Graph) -> (Graph, Vec<NodeId>) {
    let mut out = Graph::new();
    let mut remap = Vec::with_capacity(graph.nodes().len());
    let mut seen: HashMap<String, NodeId> = HashMap::new();
    for node in graph.nodes() {
        let op = node.op.map_args(|a| remap[a.index()]);
        // The debug form names the op, its settings and its argument ids: equal forms are equal
        // computations.
        let key = format!("{op:?}");
        let id = match seen.get(&key) {
            Some(&id) => id,
            None => {
                let id = out.push_node(op, node.shape.clone());
                seen.insert(key, id);
                id
            }
        };
        remap.push(id);
    }
    (out, remap)
}

#[cfg(test)]
mod tests {
    use super::eliminate_common_subexpressions;
    use crate::graph::{Dim, Graph, Op};

    #[test]
    fn merges_repeated_terms_and_keeps_distinct_ones() {
        let mut g = Graph::new();
        let x = g.input("x", vec![Dim::Batch, Dim::Fixed(3)]);
        let s1 = g.sigmoid(x);
        let s2 = g.sigmoid(x);
        let t = g.tanh(x);
        let a = g.mul(s1, t).unwrap();
        let b = g.mul(s2, t).unwrap();
        let c = g.mul(t, s2).unwrap();
        let sum = g.add(a, b).unwrap();
        let (out, remap) = eliminate_common_subexpressions(&g);
        assert_eq!(remap[s1.index()], remap[s2.index()]);
        assert_eq!(remap[a.index()], remap[b.index()]);
        // Argument order matters to the key: s·t and t·s stay two nodes.
        assert_ne!(remap[a.index()], remap[c.index()]);
        assert_ne!(remap[s1.index()], remap[t.index()]);
        // x, sigmoid, tanh, s·t, t·s, and the sum of the merged product with itself.
        assert_eq!(out.nodes().len(), 6);
        match &out.node(remap[sum.index()]).op {
            Op::Binary(_, l, r) => assert_eq!((l, r), (&remap[a.index()], &remap[a.index()])),
            other => panic!("expected the sum, got {other:?}"),
        }
    }
}
