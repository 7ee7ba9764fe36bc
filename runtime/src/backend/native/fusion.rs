//! Which elementwise steps of a plan run together as one [`Fused`] pass.
//!
//! Steps are taken in plan order. An elementwise step joins the open chain of its output shape
//! when it reads that chain's values element for element (not broadcast) and the chain keeps at
//! most [`MAX_LEAVES`] inputs. Only steps whose other inputs are cheap to read in blocks take
//! part: laid out like the output, repeated along leading axes (a bias), or a scalar. A step
//! that broadcasts along inner axes (a per-channel scale over `[N, C, H, W]`) runs faster alone,
//! with its own broadcasting loop, than gathered into a chain's blocks (measured on the UNet).
//! Any other step that reads a chain's value closes the chain. A chain runs where its last member
//! was, so every value it computes exists before anything outside it reads it, and every input it
//! reads was computed before the member that reads it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::fused::{Arg, Fused, Instr, Op, MAX_LEAVES};
use super::step::{Operand, Step};
use super::walk::natural_strides;

/// What fusion needs to know of an elementwise step: its output shape and each operand's
/// strides, broadcast to that shape.
#[derive(Clone, Debug)]
pub(super) struct Elementwise {
    pub shape: Vec<usize>,
    pub strides: Vec<Vec<isize>>,
}

/// A chain's input: an operand read with some strides.
type Leaf = (Operand, Vec<isize>);

struct Chain {
    /// The members' output shape without its axes of extent 1.
    shape: Vec<usize>,
    /// Member steps, in plan order, and the values they write.
    members: Vec<usize>,
    values: Vec<usize>,
    leaves: Vec<Leaf>,
    /// The member steps, collected as the plan's steps are consumed.
    taken: Vec<(Step, usize)>,
}

/// The plan's steps (each writing one virtual buffer; `elementwise[i]` set for the unary and
/// binary ones) with chains of elementwise steps merged into [`Step::Fused`] steps, which write
/// every value of the chain that a step outside it or the plan's outputs (`kept`) read.
pub(super) fn fuse(
    steps: Vec<(Step, usize)>,
    elementwise: &[Option<Elementwise>],
    kept: &[usize],
) -> Vec<(Step, Vec<usize>)> {
    let mut chains: Vec<Chain> = Vec::new();
    let mut chain_of_value: HashMap<usize, usize> = HashMap::new();
    let mut chain_of_step: Vec<Option<usize>> = vec![None; steps.len()];
    // The open chain of each shape (axes of extent 1 dropped).
    let mut open: HashMap<Vec<usize>, usize> = HashMap::new();
    for (i, (step, out)) in steps.iter().enumerate() {
        let reads = step.operands();
        // An elementwise step that can take part in a chain.
        let fusable = elementwise[i].as_ref().filter(|e| fusable(e));
        let joins = fusable.and_then(|e| {
            let &c = open.get(&squeezed(&e.shape))?;
            Some((c, grown(&chains[c], &reads, e)?))
        });
        let joined = joins.as_ref().map(|j| j.0);
        for o in &reads {
            if let Operand::Buffer(v) = o {
                match chain_of_value.get(v) {
                    Some(&c) if Some(c) != joined => {
                        open.retain(|_, &mut d| d != c);
                    }
                    _ => {}
                }
            }
        }
        let c = match (joins, fusable) {
            (Some((c, leaves)), _) => {
                chains[c].leaves = leaves;
                c
            }
            (None, Some(e)) => {
                let shape = squeezed(&e.shape);
                open.insert(shape.clone(), chains.len());
                let fresh = Chain {
                    shape,
                    members: Vec::new(),
                    values: Vec::new(),
                    leaves: Vec::new(),
                    taken: Vec::new(),
                };
                let leaves = grown(&fresh, &reads, e).expect("one step has at most two leaves");
                chains.push(Chain { leaves, ..fresh });
                chains.len() - 1
            }
            (None, None) => continue,
        };
        chains[c].members.push(i);
        chains[c].values.push(*out);
        chain_of_value.insert(*out, c);
        chain_of_step[i] = Some(c);
    }

    // A chain writes the values read outside it.
    let mut stored: HashSet<usize> = kept.iter().copied().collect();
    for (i, (step, _)) in steps.iter().enumerate() {
        for o in step.operands() {
            if let Operand::Buffer(v) = o {
                if let Some(&c) = chain_of_value.get(v) {
                    if chain_of_step[i] != Some(c) {
                        stored.insert(*v);
                    }
                }
            }
        }
    }

    let mut planned = Vec::with_capacity(steps.len());
    for (i, (step, out)) in steps.into_iter().enumerate() {
        match chain_of_step[i] {
            Some(c) if chains[c].members.len() > 1 => {
                let chain = &mut chains[c];
                chain.taken.push((step, out));
                if chain.members.last() == Some(&i) {
                    planned.extend(compile(chain, elementwise, &stored));
                }
            }
            _ => planned.push((step, vec![out])),
        }
    }
    planned
}

/// Whether an elementwise step can take part in a chain: every operand is cheap to read in
/// blocks, laid out like the output or repeated along leading axes (see the module's
/// documentation).
fn fusable(e: &Elementwise) -> bool {
    let natural = natural_strides(&squeezed(&e.shape));
    e.strides.iter().all(|s| {
        let s = squeezed_strides(&e.shape, s);
        let lead = s.iter().take_while(|&&x| x == 0).count();
        s[lead..] == natural[lead..]
    })
}

/// The chain's leaves once it also holds a step reading `reads` (shape and strides `e`);
/// `None` when the step reads a chain value broadcast or the leaves would be too many.
fn grown(chain: &Chain, reads: &[&Operand], e: &Elementwise) -> Option<Vec<Leaf>> {
    let natural = natural_strides(&chain.shape);
    let mut leaves = chain.leaves.clone();
    for (&o, s) in reads.iter().zip(&e.strides) {
        let s = squeezed_strides(&e.shape, s);
        match o {
            Operand::Buffer(v) if chain.values.contains(v) => {
                if s != natural {
                    return None;
                }
            }
            _ => {
                if !leaves.iter().any(|(l, ls)| same(l, o) && *ls == s) {
                    leaves.push((o.clone(), s));
                }
            }
        }
    }
    (leaves.len() <= MAX_LEAVES).then_some(leaves)
}

/// `shape` without its axes of extent 1.
fn squeezed(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// `strides` over `shape` without the axes of extent 1 (along which no stride matters).
fn squeezed_strides(shape: &[usize], strides: &[isize]) -> Vec<isize> {
    shape
        .iter()
        .zip(strides)
        .filter(|&(&d, _)| d != 1)
        .map(|(_, &s)| s)
        .collect()
}

/// Whether two operands are the same tensor.
fn same(a: &Operand, b: &Operand) -> bool {
    match (a, b) {
        (Operand::Buffer(x), Operand::Buffer(y)) => x == y,
        (Operand::Konst(x), Operand::Konst(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// The fused step of a complete chain and the values it writes; nothing when no value of it is
/// read.
fn compile(
    chain: &mut Chain,
    elementwise: &[Option<Elementwise>],
    stored: &HashSet<usize>,
) -> Option<(Step, Vec<usize>)> {
    let mut code = Vec::new();
    let mut outs = Vec::new();
    for (k, (step, out)) in chain.taken.iter().enumerate() {
        let e = elementwise[chain.members[k]]
            .as_ref()
            .expect("members are elementwise");
        let (op, reads) = match step {
            Step::Unary { op, a } => (Op::Unary(*op), vec![a]),
            Step::Binary { op, a, b, .. } => (Op::Binary(*op), vec![a, b]),
            _ => unreachable!("members are unary or binary steps"),
        };
        let arg = |(o, s): (&Operand, &Vec<isize>)| match o {
            Operand::Buffer(v) if chain.values[..k].contains(v) => Arg::Value(
                chain
                    .values
                    .iter()
                    .position(|w| w == v)
                    .expect("a member value"),
            ),
            _ => Arg::Leaf(
                chain
                    .leaves
                    .iter()
                    .position(|(l, ls)| same(l, o) && ls == s)
                    .expect("every operand is a leaf or a value"),
            ),
        };
        let strides: Vec<Vec<isize>> = e
            .strides
            .iter()
            .map(|s| squeezed_strides(&e.shape, s))
            .collect();
        let args: Vec<Arg> = reads.into_iter().zip(&strides).map(arg).collect();
        let store = stored.contains(out).then(|| {
            outs.push(*out);
            outs.len() - 1
        });
        code.push(Instr {
            op,
            args: [args[0], *args.last().expect("an operand")],
            store,
        });
    }
    if outs.is_empty() {
        return None;
    }
    let strides: Vec<Vec<isize>> = chain.leaves.iter().map(|(_, s)| s.clone()).collect();
    let kernel = Fused::new(&chain.shape, &strides, &code);
    let leaves = chain.leaves.iter().map(|(o, _)| o.clone()).collect();
    Some((Step::Fused { leaves, kernel }, outs))
}
