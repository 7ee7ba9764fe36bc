//! Several elementwise operators over one output shape evaluated in one pass: the output is
//! walked in chunks of a few hundred values, each operator runs over the chunk in a small register
//! file that stays in L1, and only the values read outside the chain are written to buffers.
//!
//! Each operator computes exactly what it computes alone (the same operations in the same order),
//! so a fused plan gives bit-identical results.

use super::dispatch::fastest;
use super::elementwise::{binary_slices, unary_slices, Binary, Unary};
use super::walk::Walk;

/// Most distinct inputs (leaves) of one fused chain.
pub(super) const MAX_LEAVES: usize = 7;
/// Values per chunk: registers of this length stay in L1.
const CHUNK: usize = 512;

/// Where an instruction reads a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arg {
    /// Input `i` of the chain, at the chunk's position.
    Leaf(usize),
    /// The value of an earlier instruction.
    Value(usize),
}

/// An elementwise operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Unary(Unary),
    Binary(Binary),
}

/// One operator of a chain: `Value(i)` for the `i`-th instruction; `store` names the output it
/// is also written to.
#[derive(Clone, Debug)]
pub(super) struct Instr {
    pub op: Op,
    /// The operands (the second is ignored by unary operators).
    pub args: [Arg; 2],
    pub store: Option<usize>,
}

/// Where a value is while a block runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Leaf(usize),
    /// A register of the workspace.
    Reg(usize),
    /// The output buffer it is stored to (read back from there).
    Out(usize),
}

/// An instruction with its values placed.
#[derive(Clone, Debug)]
struct Slot {
    op: Op,
    args: [Loc; 2],
    /// Never a place one of `args` reads.
    dst: Loc,
}

/// How a leaf is read for a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafRead {
    /// Straight from the leaf: its values for the block are contiguous.
    Direct,
    /// Copied into its stage once per run: the same values on every row (a bias, a scalar).
    Repeated,
    /// Gathered into its stage for every block.
    Gathered,
}

/// A planned chain of elementwise operators.
#[derive(Clone, Debug)]
pub(super) struct Fused {
    code: Vec<Slot>,
    /// Over the output shape: column 0 the outputs (all contiguous), then each leaf.
    walk: Walk<{ MAX_LEAVES + 1 }>,
    reads: Vec<LeafRead>,
    registers: usize,
}

impl Fused {
    /// A chain over `shape`, leaf `i` read with `leaf_strides[i]` (its strides broadcast to
    /// `shape`). Instructions read leaves and earlier instructions only.
    pub fn new(shape: &[usize], leaf_strides: &[Vec<isize>], code: &[Instr]) -> Self {
        assert!(leaf_strides.len() <= MAX_LEAVES, "too many leaves");
        let natural = super::walk::natural_strides(shape);
        let zeros = vec![0isize; shape.len()];
        let columns: [&[isize]; MAX_LEAVES + 1] = std::array::from_fn(|k| match k {
            0 => natural.as_slice(),
            k if k <= leaf_strides.len() => leaf_strides[k - 1].as_slice(),
            _ => zeros.as_slice(),
        });
        let walk = Walk::new(shape, columns, [0; MAX_LEAVES + 1]);
        // Several rows share a block when rows are short: a leaf is then read in place only if
        // it is laid out like the output.
        let short_rows = walk.inner < CHUNK;
        let reads = (1..=leaf_strides.len())
            .map(|k| {
                if walk.inner_strides[k] == 1 && (!short_rows || walk.steps_alike(k, 0)) {
                    LeafRead::Direct
                } else if short_rows && walk.repeats_rows(k) {
                    LeafRead::Repeated
                } else {
                    LeafRead::Gathered
                }
            })
            .collect();
        // Stored values live in their output; the others in registers, free again after their
        // last reader. The register an instruction writes is taken before the ones it reads are
        // given back.
        let mut last_read = vec![0; code.len()];
        for (i, instr) in code.iter().enumerate() {
            for arg in operands(instr.op, &instr.args) {
                if let Arg::Value(v) = arg {
                    assert!(*v < i, "instruction {i} reads a later value");
                    last_read[*v] = i;
                }
            }
        }
        let (mut place, mut free, mut registers) = (Vec::with_capacity(code.len()), Vec::new(), 0);
        let mut slots = Vec::with_capacity(code.len());
        for (i, instr) in code.iter().enumerate() {
            let dst = match instr.store {
                Some(o) => Loc::Out(o),
                None => Loc::Reg(free.pop().unwrap_or_else(|| {
                    registers += 1;
                    registers - 1
                })),
            };
            place.push(dst);
            let args = instr.args.map(|a| match a {
                Arg::Value(v) => place[v],
                Arg::Leaf(j) => Loc::Leaf(j),
            });
            for arg in operands(instr.op, &instr.args) {
                if let Arg::Value(v) = arg {
                    if let Loc::Reg(r) = place[*v] {
                        if last_read[*v] == i && !free.contains(&r) {
                            free.push(r);
                        }
                    }
                }
            }
            if let Loc::Reg(r) = dst {
                if last_read[i] <= i {
                    // Never read: the register is free at once.
                    free.push(r);
                }
            }
            slots.push(Slot {
                op: instr.op,
                args,
                dst,
            });
        }
        Self {
            code: slots,
            walk,
            reads,
            registers,
        }
    }

    /// Workspace floats a run needs: the registers and a stage per leaf.
    pub fn workspace(&self) -> usize {
        (self.registers + self.reads.len()) * CHUNK
    }

    /// Evaluates the chain: `leaves` in order, `outs` one buffer per stored output.
    pub fn run(&self, leaves: &[&[f32]], outs: &mut [Vec<f32>], work: &mut [f32]) {
        let f = self;
        fastest!(Fused::run_loops::<FMA>(
            f: &Fused,
            leaves: &[&[f32]],
            outs: &mut [Vec<f32>],
            work: &mut [f32],
        ))
    }

    #[inline(always)]
    fn run_loops<const FMA: bool>(
        &self,
        leaves: &[&[f32]],
        outs: &mut [Vec<f32>],
        work: &mut [f32],
    ) {
        let n = self.walk.inner;
        let strides = self.walk.inner_strides;
        debug_assert!(strides[0] == 1 || n == 1);
        if n == 0 {
            return;
        }
        // A block is `k` whole rows (short rows) or a piece of one long row: contiguous in the
        // outputs, and every instruction runs over all of it before the next one starts.
        let (k, width) = ((CHUNK / n).max(1), n.min(CHUNK));
        let (regs, stage) = work.split_at_mut(self.registers * CHUNK);
        let mut rows = self.walk.rows();
        let mut block: Vec<[isize; MAX_LEAVES + 1]> = Vec::with_capacity(k);
        let mut repeated_staged = false;
        loop {
            block.clear();
            block.extend(rows.by_ref().take(k));
            if block.is_empty() {
                break;
            }
            let mut start = 0;
            while start < n {
                let m = (n - start).min(width);
                let len = block.len() * m;
                for (j, leaf) in leaves.iter().enumerate() {
                    let how = self.reads[j];
                    if how == LeafRead::Direct || (how == LeafRead::Repeated && repeated_staged) {
                        continue;
                    }
                    let s = strides[j + 1];
                    for (r, row) in block.iter().enumerate() {
                        let chunk = &mut stage[j * CHUNK + r * m..j * CHUNK + (r + 1) * m];
                        let first = row[j + 1] + start as isize * s;
                        match s {
                            1 => chunk.copy_from_slice(&leaf[first as usize..first as usize + m]),
                            0 => chunk.fill(leaf[first as usize]),
                            s => {
                                for (i, c) in chunk.iter_mut().enumerate() {
                                    *c = leaf[(first + i as isize * s) as usize];
                                }
                            }
                        }
                    }
                }
                // A repeated leaf's stage holds a whole block's rows from the first block on
                // (only the last block can be shorter, and it reads a prefix).
                repeated_staged = true;
                let o0 = block[0][0] as usize + start;
                let leaf = |j: usize| -> &[f32] {
                    match self.reads[j] {
                        LeafRead::Direct => {
                            let at = (block[0][j + 1] + start as isize) as usize;
                            &leaves[j][at..at + len]
                        }
                        _ => &stage[j * CHUNK..j * CHUNK + len],
                    }
                };
                for slot in &self.code {
                    match slot.dst {
                        Loc::Reg(d) => {
                            let (low, high) = regs.split_at_mut(d * CHUNK);
                            let (dst, high) = high.split_at_mut(CHUNK);
                            let outs: &[Vec<f32>] = outs;
                            let read = |loc: Loc| -> &[f32] {
                                match loc {
                                    Loc::Leaf(j) => leaf(j),
                                    Loc::Reg(r) if r < d => &low[r * CHUNK..r * CHUNK + len],
                                    Loc::Reg(r) => &high[(r - d - 1) * CHUNK..][..len],
                                    Loc::Out(o) => &outs[o][o0..o0 + len],
                                }
                            };
                            apply::<FMA>(
                                slot.op,
                                read(slot.args[0]),
                                read(slot.args[1]),
                                &mut dst[..len],
                            );
                        }
                        Loc::Out(d) => {
                            let (before, rest) = outs.split_at_mut(d);
                            let (dst, after) = rest.split_first_mut().expect("a stored output");
                            let regs: &[f32] = regs;
                            let read = |loc: Loc| -> &[f32] {
                                match loc {
                                    Loc::Leaf(j) => leaf(j),
                                    Loc::Reg(r) => &regs[r * CHUNK..r * CHUNK + len],
                                    Loc::Out(o) if o < d => &before[o][o0..o0 + len],
                                    Loc::Out(o) => &after[o - d - 1][o0..o0 + len],
                                }
                            };
                            apply::<FMA>(
                                slot.op,
                                read(slot.args[0]),
                                read(slot.args[1]),
                                &mut dst[o0..o0 + len],
                            );
                        }
                        Loc::Leaf(_) => unreachable!("instructions write registers or outputs"),
                    }
                }
                start += m;
            }
        }
    }
}

/// One operator over slices of one length (`b` is ignored by unary operators).
#[inline(always)]
fn apply<const FMA: bool>(op: Op, a: &[f32], b: &[f32], out: &mut [f32]) {
    match op {
        Op::Unary(op) => unary_slices::<FMA>(op, a, out),
        Op::Binary(op) => binary_slices(op, a, b, out),
    }
}

/// The operands an operator reads.
fn operands(op: Op, args: &[Arg; 2]) -> &[Arg] {
    match op {
        Op::Unary(_) => &args[..1],
        Op::Binary(_) => &args[..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::native::elementwise::{binary, unary};
    use crate::backend::native::walk::{broadcast_strides, natural_strides};

    /// SiLU's derivative chain as the exporter writes it, `g·(s + (y − y·s))` with `y = z·s`,
    /// `s = σ(z + bias)`, over `[rows, cols]`, with a per-column bias leaf and a scalar leaf:
    /// the fused pass stores `s` and the result, and both equal the step-by-step evaluation.
    /// Short rows run several to a block; long ones in pieces.
    #[test]
    fn a_chain_equals_its_operators_one_by_one() {
        for (rows, cols) in [(1, 5), (3, 5), (300, 5), (3, 1000)] {
            let shape = [rows, cols];
            let len = rows * cols;
            let z: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
            let g: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let bias: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
            let scale = [1.5f32];
            let natural = natural_strides(&shape);
            let leaves = [
                natural.clone(),
                broadcast_strides(&[cols], &shape).unwrap(),
                natural.clone(),
                broadcast_strides(&[1], &shape).unwrap(),
            ];
            use Arg::{Leaf, Value};
            let b = |op, a, c, store| Instr {
                op: Op::Binary(op),
                args: [a, c],
                store,
            };
            let code = [
                b(Binary::Add, Leaf(0), Leaf(1), None), // 0: z + bias
                Instr {
                    op: Op::Unary(Unary::Sigmoid),
                    args: [Value(0), Value(0)],
                    store: Some(0),
                }, // 1: s
                b(Binary::Mul, Value(0), Value(1), None), // 2: y
                b(Binary::Mul, Value(2), Value(1), None), // 3: y·s
                b(Binary::Sub, Value(2), Value(3), None), // 4
                b(Binary::Add, Value(1), Value(4), None), // 5
                b(Binary::Mul, Leaf(2), Value(5), None), // 6
                b(Binary::Mul, Value(6), Leaf(3), Some(1)), // 7
            ];
            let fused = Fused::new(&shape, &leaves, &code);
            assert!(fused.registers < 6, "registers are reused");
            let mut outs = vec![vec![0.0; len], vec![0.0; len]];
            let mut work = vec![0.0; fused.workspace()];
            fused.run(&[&z, &bias, &g, &scale], &mut outs, &mut work);

            let walk = |s: &[isize]| Walk::new(&shape, [&natural, &natural, s], [0; 3]);
            let mut v0 = vec![0.0f32; len];
            binary(Binary::Add, &walk(&leaves[1]), &z, &bias, &mut v0);
            let step = |op, a: &Vec<f32>, c: &Vec<f32>, out: &mut Vec<f32>| {
                binary(op, &walk(&natural), a, c, out)
            };
            let mut v1 = vec![0.0; len];
            unary(Unary::Sigmoid, &v0, &mut v1);
            let mut v2 = vec![0.0; len];
            step(Binary::Mul, &v0, &v1, &mut v2);
            let mut v3 = vec![0.0; len];
            step(Binary::Mul, &v2, &v1, &mut v3);
            let mut v4 = vec![0.0; len];
            step(Binary::Sub, &v2, &v3, &mut v4);
            let mut v5 = vec![0.0; len];
            step(Binary::Add, &v1, &v4, &mut v5);
            let mut v6 = vec![0.0; len];
            step(Binary::Mul, &g, &v5, &mut v6);
            let mut v7 = vec![0.0; len];
            binary(Binary::Mul, &walk(&leaves[3]), &v6, &scale, &mut v7);
            assert_eq!(outs[0], v1, "{shape:?}: the stored sigmoid");
            assert_eq!(outs[1], v7, "{shape:?}: the chain's result");
        }
    }
}
