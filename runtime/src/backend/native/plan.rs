//! A graph planned for one batch size: every shape known, everything that does not depend on the
//! fed inputs computed once (weight transposes, kernel flips, `Shape` → `Expand` chains), and the
//! remaining operations given buffers that are reused as soon as their values are dead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::elementwise::{Binary, Unary};
use super::fusion::{fuse, Elementwise};
use super::graph::{decode, Graph, Konst, Node, Source};
use super::linear::{Conv2d, MatMul};
use super::reduce::Reduce;
use super::step::{Operand, Step};
use super::walk::{broadcast_shape, broadcast_strides, natural_strides, Walk};
use super::NativeError;

/// A value while planning: its shape and where it is.
#[derive(Clone, Debug)]
struct Val {
    shape: Vec<usize>,
    at: At,
}

#[derive(Clone, Debug)]
enum At {
    Konst(Konst),
    /// A buffer of the run (a virtual number until buffers are assigned).
    Buffer(usize),
}

/// Buffers of one run of a plan, kept between runs.
#[derive(Default)]
struct Scratch {
    buffers: Vec<Vec<f32>>,
    work: Vec<f32>,
    /// The output buffers of the step running.
    outs: Vec<Vec<f32>>,
}

/// A graph ready to run at one batch size.
pub(super) struct Plan {
    /// Each step and the buffers it writes.
    steps: Vec<(Step, Vec<usize>)>,
    /// Length of each buffer.
    sizes: Vec<usize>,
    /// The buffer each fed input is copied to (`None`: the outputs do not read it).
    inputs: Vec<Option<usize>>,
    outputs: Vec<Operand>,
    workspace: usize,
    /// Scratch sets not in use (one per thread running the plan at once).
    idle: Mutex<Vec<Scratch>>,
}

impl Plan {
    /// Plans `graph` for fed inputs of the given shapes.
    pub fn build(graph: &Graph, fed: &[Vec<usize>]) -> Result<Self, NativeError> {
        let mut readers = vec![0usize; graph.sources.len()];
        for &id in graph
            .nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .chain(&graph.outputs)
        {
            readers[id] += 1;
        }
        let mut b = Builder {
            vals: vec![None; graph.sources.len()],
            readers,
            steps: Vec::new(),
            elementwise: Vec::new(),
            sizes: Vec::new(),
        };
        let mut inputs = vec![None; fed.len()];
        for (id, source) in graph.sources.iter().enumerate() {
            b.vals[id] = match source {
                Source::Fed(i) => {
                    let shape = fed[*i].clone();
                    let v = b.buffer(shape.iter().product());
                    inputs[*i] = Some(v);
                    Some(Val {
                        shape,
                        at: At::Buffer(v),
                    })
                }
                Source::Konst(shape, k) => Some(Val {
                    shape: shape.clone(),
                    at: At::Konst(k.clone()),
                }),
                Source::Computed | Source::Absent => None,
            };
        }
        for node in &graph.nodes {
            let out = b.node(node).map_err(|e| e.at(node))?;
            b.vals[node.outputs[0]] = Some(out);
        }
        let mut outputs = Vec::new();
        for &o in &graph.outputs {
            let val = b.vals[o].as_ref().expect("every output is computed");
            outputs.push(operand(val).map_err(|_| {
                NativeError::Graph(format!("output `{}` is not a float tensor", graph.names[o]))
            })?);
        }
        let kept: Vec<usize> = outputs
            .iter()
            .filter_map(|o| match o {
                Operand::Buffer(v) => Some(*v),
                Operand::Konst(_) => None,
            })
            .collect();
        let steps = fuse(std::mem::take(&mut b.steps), &b.elementwise, &kept);
        Ok(assign_buffers(steps, &b.sizes, inputs, outputs))
    }

    /// Runs the plan on `inputs` (in fed order, each of its planned size); returns each output.
    pub fn run(&self, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
        let mut s = self
            .idle
            .lock()
            .expect("scratch lock")
            .pop()
            .unwrap_or_default();
        if s.buffers.is_empty() {
            s.buffers = self.sizes.iter().map(|&n| vec![0.0; n]).collect();
            s.work = vec![0.0; self.workspace];
        }
        for (slot, value) in self.inputs.iter().zip(inputs) {
            if let Some(b) = slot {
                s.buffers[*b].copy_from_slice(value);
            }
        }
        for (step, outs) in &self.steps {
            s.outs
                .extend(outs.iter().map(|&o| std::mem::take(&mut s.buffers[o])));
            let buffers = &s.buffers;
            step.run(&|op| read(op, buffers), &mut s.outs, &mut s.work);
            for (&o, value) in outs.iter().zip(s.outs.drain(..)) {
                s.buffers[o] = value;
            }
        }
        let outputs = self
            .outputs
            .iter()
            .map(|o| read(o, &s.buffers).to_vec())
            .collect();
        self.idle.lock().expect("scratch lock").push(s);
        outputs
    }
}

fn read<'a>(op: &'a Operand, buffers: &'a [Vec<f32>]) -> &'a [f32] {
    match op {
        Operand::Konst(k) => k,
        Operand::Buffer(b) => &buffers[*b],
    }
}

fn operand(v: &Val) -> Result<Operand, NativeError> {
    match &v.at {
        At::Konst(Konst::F32(k)) => Ok(Operand::Konst(k.clone())),
        At::Buffer(b) => Ok(Operand::Buffer(*b)),
        At::Konst(Konst::I64(_)) => Err(NativeError::Unsupported(
            "integer tensors are only supported as constant shapes, axes and indices".into(),
        )),
    }
}

struct Builder {
    vals: Vec<Option<Val>>,
    /// How many node inputs and graph outputs read each value.
    readers: Vec<usize>,
    /// Steps and their (virtual) output buffers.
    steps: Vec<(Step, usize)>,
    /// For each step, its shape and operand strides when it is elementwise (for fusion).
    elementwise: Vec<Option<Elementwise>>,
    /// Length of each virtual buffer.
    sizes: Vec<usize>,
}

impl Builder {
    fn buffer(&mut self, len: usize) -> usize {
        self.sizes.push(len);
        self.sizes.len() - 1
    }

    fn input(&self, node: &Node, i: usize) -> Result<&Val, NativeError> {
        node.inputs
            .get(i)
            .and_then(|&id| self.vals[id].as_ref())
            .ok_or_else(|| NativeError::Graph(format!("input {i} is missing")))
    }

    fn optional(&self, node: &Node, i: usize) -> Option<&Val> {
        node.inputs.get(i).and_then(|&id| self.vals[id].as_ref())
    }

    /// The integers of a constant input (shapes, axes, pads, indices).
    fn ints(&self, node: &Node, i: usize) -> Result<Vec<i64>, NativeError> {
        match &self.input(node, i)?.at {
            At::Konst(Konst::I64(v)) => Ok(v.to_vec()),
            _ => Err(NativeError::Unsupported(format!(
                "input {i} must be a constant int64 tensor"
            ))),
        }
    }

    /// Axes given as an attribute or (newer opsets) as input `i`.
    fn axes(&self, node: &Node, i: usize) -> Result<Option<Vec<i64>>, NativeError> {
        if let Some(a) = node.ints("axes") {
            return Ok(Some(a.to_vec()));
        }
        match self.optional(node, i) {
            Some(_) => Ok(Some(self.ints(node, i)?)),
            None => Ok(None),
        }
    }

    /// A step's output: computed now when it reads only constants, else scheduled.
    fn emit(&mut self, step: Step, shape: Vec<usize>) -> Val {
        self.emit_elementwise(step, shape, None)
    }

    /// [`Self::emit`] for a unary or binary step, with each operand's strides over `shape`.
    fn emit_elementwise(
        &mut self,
        step: Step,
        shape: Vec<usize>,
        strides: Option<Vec<Vec<isize>>>,
    ) -> Val {
        let len = shape.iter().product();
        let constant = step
            .operands()
            .iter()
            .all(|o| matches!(o, Operand::Konst(_)));
        if constant {
            let mut out = [vec![0.0; len]];
            let mut work = vec![0.0; step.workspace()];
            step.run(&|op| read(op, &[]), &mut out, &mut work);
            let [out] = out;
            return Val {
                shape,
                at: At::Konst(Konst::F32(Arc::new(out))),
            };
        }
        let v = self.buffer(len);
        self.elementwise.push(strides.map(|strides| Elementwise {
            shape: shape.clone(),
            strides,
        }));
        self.steps.push((step, v));
        Val {
            shape,
            at: At::Buffer(v),
        }
    }

    /// A tensor of `shape` copied out of `source` read as a view: each output element at index
    /// `i` reads `source` at `offset + Σ i[axis]·strides[axis]` (a transpose, a slice, a broadcast).
    fn view_copy(
        &mut self,
        source: Operand,
        shape: Vec<usize>,
        strides: &[isize],
        offset: isize,
    ) -> Val {
        let walk = Walk::new(&shape, [&natural_strides(&shape), strides], [0, offset]);
        let step = Step::Copy {
            parts: vec![(source, walk)],
            fill: None,
        };
        self.emit(step, shape)
    }

    fn node(&mut self, node: &Node) -> Result<Val, NativeError> {
        if node.outputs.len() != 1 {
            return Err(NativeError::Unsupported(format!(
                "{} outputs (one is supported)",
                node.outputs.len()
            )));
        }
        if let Some(op) = Unary::from_onnx(&node.op) {
            let a = self.input(node, 0)?;
            let step = Step::Unary { op, a: operand(a)? };
            let natural = natural_strides(&a.shape);
            return Ok(self.emit_elementwise(step, a.shape.clone(), Some(vec![natural])));
        }
        if let Some(op) = Binary::from_onnx(&node.op) {
            if let Some(folded) = self.bias_folded(node, op)? {
                return Ok(folded);
            }
            let mut acc = self.input(node, 0)?.clone();
            for i in 1..node.inputs.len() {
                let b = self.input(node, i)?.clone();
                acc = self.binary(op, &acc, &b)?;
            }
            return Ok(acc);
        }
        match node.op.as_str() {
            "Identity" => Ok(self.input(node, 0)?.clone()),
            "Constant" => {
                let t = node
                    .tensor("value")
                    .ok_or_else(|| NativeError::Unsupported("a Constant without `value`".into()))?;
                let (shape, k) = decode(t)?;
                Ok(Val {
                    shape,
                    at: At::Konst(k),
                })
            }
            "Shape" => {
                let shape = &self.input(node, 0)?.shape;
                let rank = shape.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let (start, end) = (clamp(node.int("start", 0)), clamp(node.int("end", rank)));
                let dims: Vec<i64> = shape[start..end.max(start)]
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                Ok(Val {
                    shape: vec![dims.len()],
                    at: At::Konst(Konst::I64(Arc::new(dims))),
                })
            }
            "Reshape" => {
                let a = self.input(node, 0)?.clone();
                let target = self.ints(node, 1)?;
                let shape = reshaped(&a.shape, &target, node.int("allowzero", 0) != 0)?;
                Ok(Val { shape, at: a.at })
            }
            "Flatten" => {
                let a = self.input(node, 0)?.clone();
                let axis = axis(node.int("axis", 1), a.shape.len() + 1)?;
                let shape = vec![
                    a.shape[..axis].iter().product(),
                    a.shape[axis..].iter().product(),
                ];
                Ok(Val { shape, at: a.at })
            }
            "Unsqueeze" => {
                let a = self.input(node, 0)?.clone();
                let axes = self
                    .axes(node, 1)?
                    .ok_or_else(|| NativeError::Graph("Unsqueeze without axes".into()))?;
                let rank = a.shape.len() + axes.len();
                let mut axes = axes
                    .iter()
                    .map(|&x| axis(x, rank))
                    .collect::<Result<Vec<_>, _>>()?;
                axes.sort_unstable();
                let mut shape = a.shape.clone();
                for x in axes {
                    shape.insert(x.min(shape.len()), 1);
                }
                Ok(Val { shape, at: a.at })
            }
            "Squeeze" => {
                let a = self.input(node, 0)?.clone();
                let rank = a.shape.len();
                let axes = match self.axes(node, 1)? {
                    Some(axes) => axes
                        .iter()
                        .map(|&x| axis(x, rank))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => (0..rank).filter(|&x| a.shape[x] == 1).collect(),
                };
                if axes.iter().any(|&x| a.shape[x] != 1) {
                    return Err(NativeError::Shape(format!(
                        "cannot squeeze axes {axes:?} of shape {:?}",
                        a.shape
                    )));
                }
                let shape = (0..rank)
                    .filter(|x| !axes.contains(x))
                    .map(|x| a.shape[x])
                    .collect();
                Ok(Val { shape, at: a.at })
            }
            "MatMul" => {
                let (a, b) = (self.input(node, 0)?, self.input(node, 1)?);
                let (plan, shape) = MatMul::plan(&a.shape, &b.shape)?;
                let step = Step::MatMul {
                    a: operand(a)?,
                    b: operand(b)?,
                    plan,
                };
                Ok(self.emit(step, shape))
            }
            "Transpose" => {
                let a = self.input(node, 0)?;
                let rank = a.shape.len();
                let perm: Vec<usize> = match node.ints("perm") {
                    Some(p) => p.iter().map(|&x| axis(x, rank)).collect::<Result<_, _>>()?,
                    None => (0..rank).rev().collect(),
                };
                let mut seen = perm.clone();
                seen.sort_unstable();
                if seen != (0..rank).collect::<Vec<_>>() {
                    return Err(NativeError::Graph(format!("perm {perm:?} for rank {rank}")));
                }
                let shape: Vec<usize> = perm.iter().map(|&p| a.shape[p]).collect();
                let natural = natural_strides(&a.shape);
                let src: Vec<isize> = perm.iter().map(|&p| natural[p]).collect();
                let source = operand(a)?;
                Ok(self.view_copy(source, shape, &src, 0))
            }
            "Slice" => self.slice(node),
            "Pad" => self.pad(node),
            "Concat" => self.concat(node),
            "Expand" => {
                let a = self.input(node, 0)?;
                let target: Vec<usize> = self
                    .ints(node, 1)?
                    .iter()
                    .map(|&d| usize::try_from(d))
                    .collect::<Result<_, _>>()
                    .map_err(|_| NativeError::Shape("negative Expand shape".into()))?;
                let shape = broadcast_shape(&a.shape, &target).ok_or_else(|| {
                    NativeError::Shape(format!("cannot expand {:?} to {target:?}", a.shape))
                })?;
                let src = broadcast_strides(&a.shape, &shape).expect("shapes broadcast");
                let source = operand(a)?;
                Ok(self.view_copy(source, shape, &src, 0))
            }
            "Gather" => self.gather(node),
            "ReduceSum" => self.reduce(node, Reduce::Sum),
            "ReduceMean" => self.reduce(node, Reduce::Mean),
            "ReduceMax" => self.reduce(node, Reduce::Max),
            "Conv" => self.conv(node, false),
            "ConvTranspose" => self.conv(node, true),
            other => Err(NativeError::Unsupported(format!("operator {other}"))),
        }
    }

    fn binary(&mut self, op: Binary, a: &Val, b: &Val) -> Result<Val, NativeError> {
        let shape = broadcast_shape(&a.shape, &b.shape).ok_or_else(|| {
            NativeError::Shape(format!("{:?} and {:?} do not broadcast", a.shape, b.shape))
        })?;
        let sa = broadcast_strides(&a.shape, &shape).expect("shapes broadcast");
        let sb = broadcast_strides(&b.shape, &shape).expect("shapes broadcast");
        let walk = Walk::new(&shape, [&natural_strides(&shape), &sa, &sb], [0, 0, 0]);
        let step = Step::Binary {
            op,
            a: operand(a)?,
            b: operand(b)?,
            walk,
        };
        Ok(self.emit_elementwise(step, shape, Some(vec![sa, sb])))
    }

    /// `Add(conv, b)` (either order) with `b` a constant per-channel bias and the convolution's
    /// output read by this Add alone: the convolution takes `b` as its bias and the Add costs no
    /// pass of its own (the exporter writes every bias as such an Add). Each convolution adds its
    /// bias as the Add would: one rounding of `conv + b`.
    /// The step that writes virtual buffer `v` (each is written by one step until buffers are
    /// assigned), for the foldings that rewrite it.
    fn producer(&mut self, v: usize) -> Option<&mut Step> {
        self.steps
            .iter_mut()
            .rev()
            .find(|(_, out)| *out == v)
            .map(|(step, _)| step)
    }

    fn bias_folded(&mut self, node: &Node, op: Binary) -> Result<Option<Val>, NativeError> {
        if op != Binary::Add || node.inputs.len() != 2 {
            return Ok(None);
        }
        for (i, j) in [(0, 1), (1, 0)] {
            let (conv, b) = (self.input(node, i)?.clone(), self.input(node, j)?.clone());
            let (At::Buffer(v), At::Konst(Konst::F32(k))) = (&conv.at, &b.at) else {
                continue;
            };
            if self.readers[node.inputs[i]] != 1 || conv.shape.len() != 4 {
                continue;
            }
            // The bias varies along the channels at most, and leaves the shape as it is.
            let Some(strides) = broadcast_strides(&b.shape, &conv.shape) else {
                continue;
            };
            if broadcast_shape(&conv.shape, &b.shape).as_ref() != Some(&conv.shape)
                || strides.iter().enumerate().any(|(a, &s)| a != 1 && s != 0)
            {
                continue;
            }
            let Some(Step::Conv { bias, .. } | Step::Winograd { bias, .. }) = self.producer(*v)
            else {
                continue;
            };
            if bias.is_some() {
                continue;
            }
            let channels = (0..conv.shape[1]).map(|c| k[c * strides[1] as usize]);
            *bias = Some(Operand::Konst(Arc::new(channels.collect())));
            return Ok(Some(conv));
        }
        Ok(None)
    }

    fn slice(&mut self, node: &Node) -> Result<Val, NativeError> {
        let a = self.input(node, 0)?.clone();
        let rank = a.shape.len();
        let (starts, ends) = (self.ints(node, 1)?, self.ints(node, 2)?);
        let axes = match self.optional(node, 3) {
            Some(_) => self
                .ints(node, 3)?
                .iter()
                .map(|&x| axis(x, rank))
                .collect::<Result<Vec<_>, _>>()?,
            None => (0..starts.len()).collect(),
        };
        let steps = match self.optional(node, 4) {
            Some(_) => self.ints(node, 4)?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(NativeError::Graph(
                "Slice inputs of different lengths".into(),
            ));
        }
        let natural = natural_strides(&a.shape);
        let mut shape = a.shape.clone();
        let mut src = natural.clone();
        let mut base = 0isize;
        for i in 0..starts.len() {
            let (x, step) = (axes[i], steps[i]);
            let d = a.shape[x] as i64;
            if step == 0 {
                return Err(NativeError::Graph("Slice step 0".into()));
            }
            let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
            let (s, e) = if step > 0 {
                (wrap(starts[i]).clamp(0, d), wrap(ends[i]).clamp(0, d))
            } else {
                (
                    wrap(starts[i]).clamp(0, d - 1),
                    wrap(ends[i]).clamp(-1, d - 1),
                )
            };
            let len = if step > 0 {
                (e - s + step - 1).max(0) / step
            } else {
                (s - e - step - 1).max(0) / -step
            };
            shape[x] = len as usize;
            if len > 0 {
                base += s as isize * natural[x];
            }
            src[x] = natural[x] * step as isize;
        }
        if let Some(folded) = self.columns_folded(node, &a, &shape, &src, base) {
            return Ok(folded);
        }
        let source = operand(&a)?;
        Ok(self.view_copy(source, shape, &src, base))
    }

    /// A slice of consecutive columns (last axis, step 1, other axes whole) of a matrix product
    /// by a constant that nothing else reads: the product multiplies by those columns of the
    /// constant instead, and the slice costs nothing. An exported gradient slices `x`'s part out
    /// of the gradient of a layer whose input concatenates `x` and the time embedding; when the
    /// embedding's part is not asked for (the velocity alone), this skips computing it.
    fn columns_folded(
        &mut self,
        node: &Node,
        a: &Val,
        shape: &[usize],
        src: &[isize],
        base: isize,
    ) -> Option<Val> {
        let At::Buffer(v) = a.at else {
            return None;
        };
        let rank = a.shape.len();
        let natural = natural_strides(&a.shape);
        let whole_but_last = rank >= 2
            && shape[..rank - 1] == a.shape[..rank - 1]
            && src == natural.as_slice()
            && shape[rank - 1] > 0
            && (base as usize) < a.shape[rank - 1];
        if self.readers[node.inputs[0]] != 1 || !whole_but_last {
            return None;
        }
        let Some(Step::MatMul { b, plan, .. }) = self.producer(v) else {
            return None;
        };
        let Operand::Konst(k) = b else {
            return None;
        };
        // One product whose output's last axis is its columns (not a vector rhs's dropped axis).
        if plan.batches != [(0, 0, 0)]
            || k.len() != plan.k * plan.n
            || a.shape[rank - 1] != plan.n
            || a.shape.iter().product::<usize>() != plan.m * plan.n
        {
            return None;
        }
        let (first, width) = (base as usize, shape[rank - 1]);
        let columns: Vec<f32> = k
            .chunks_exact(plan.n)
            .flat_map(|row| &row[first..first + width])
            .copied()
            .collect();
        *b = Operand::Konst(Arc::new(columns));
        plan.n = width;
        self.sizes[v] = plan.m * width;
        Some(Val {
            shape: shape.to_vec(),
            at: At::Buffer(v),
        })
    }

    fn pad(&mut self, node: &Node) -> Result<Val, NativeError> {
        let a = self.input(node, 0)?;
        let rank = a.shape.len();
        if let Some(mode) = node.string("mode") {
            if mode != "constant" {
                return Err(NativeError::Unsupported(format!("Pad mode `{mode}`")));
            }
        }
        let pads = self.ints(node, 1)?;
        if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
            return Err(NativeError::Unsupported(format!(
                "pads {pads:?} for rank {rank} (non-negative, two per axis)"
            )));
        }
        let fill = match self.optional(node, 2) {
            Some(Val {
                at: At::Konst(Konst::F32(v)),
                ..
            }) if v.len() == 1 => v[0],
            Some(_) => {
                return Err(NativeError::Unsupported(
                    "a Pad value that is not a constant scalar".into(),
                ))
            }
            None => 0.0,
        };
        let shape: Vec<usize> = (0..rank)
            .map(|x| a.shape[x] + (pads[x] + pads[x + rank]) as usize)
            .collect();
        let out = natural_strides(&shape);
        let base: isize = (0..rank).map(|x| pads[x] as isize * out[x]).sum();
        let walk = Walk::new(&a.shape, [&out, &natural_strides(&a.shape)], [base, 0]);
        let step = Step::Copy {
            parts: vec![(operand(a)?, walk)],
            fill: Some(fill),
        };
        Ok(self.emit(step, shape))
    }

    fn concat(&mut self, node: &Node) -> Result<Val, NativeError> {
        let first = self.input(node, 0)?;
        let rank = first.shape.len();
        let x = axis(node.int("axis", 0), rank)?;
        let mut shape = first.shape.clone();
        shape[x] = 0;
        let parts: Vec<Val> = (0..node.inputs.len())
            .map(|i| self.input(node, i).cloned())
            .collect::<Result<_, _>>()?;
        for p in &parts {
            let same =
                p.shape.len() == rank && (0..rank).all(|a| a == x || p.shape[a] == first.shape[a]);
            if !same {
                return Err(NativeError::Shape(format!(
                    "Concat of {:?} and {:?} on axis {x}",
                    first.shape, p.shape
                )));
            }
            shape[x] += p.shape[x];
        }
        let out = natural_strides(&shape);
        let mut offset = 0;
        let mut copies = Vec::new();
        for p in &parts {
            let walk = Walk::new(&p.shape, [&out, &natural_strides(&p.shape)], [offset, 0]);
            offset += p.shape[x] as isize * out[x];
            copies.push((operand(p)?, walk));
        }
        let step = Step::Copy {
            parts: copies,
            fill: None,
        };
        Ok(self.emit(step, shape))
    }

    fn gather(&mut self, node: &Node) -> Result<Val, NativeError> {
        let a = self.input(node, 0)?;
        let indices = self.input(node, 1)?.shape.clone();
        let picks = self.ints(node, 1)?;
        let x = axis(node.int("axis", 0), a.shape.len())?;
        let d = a.shape[x];
        let (outer, inner) = (
            a.shape[..x].iter().product::<usize>(),
            a.shape[x + 1..].iter().product::<usize>(),
        );
        let mut shape = a.shape[..x].to_vec();
        shape.extend(&indices);
        shape.extend(&a.shape[x + 1..]);
        let (j_all, src) = (picks.len(), operand(a)?);
        let mut parts = Vec::new();
        for (j, &p) in picks.iter().enumerate() {
            let p = if p < 0 { p + d as i64 } else { p };
            if p < 0 || p >= d as i64 {
                return Err(NativeError::Shape(format!(
                    "Gather index {p} for extent {d}"
                )));
            }
            let walk = Walk::new(
                &[outer, inner],
                [&[(j_all * inner) as isize, 1], &[(d * inner) as isize, 1]],
                [(j * inner) as isize, (p as usize * inner) as isize],
            );
            parts.push((src.clone(), walk));
        }
        Ok(self.emit(Step::Copy { parts, fill: None }, shape))
    }

    fn reduce(&mut self, node: &Node, op: Reduce) -> Result<Val, NativeError> {
        let a = self.input(node, 0)?;
        let rank = a.shape.len();
        let mut axes = match self.axes(node, 1)? {
            Some(axes) if !axes.is_empty() => axes
                .iter()
                .map(|&x| axis(x, rank))
                .collect::<Result<Vec<_>, _>>()?,
            _ if node.int("noop_with_empty_axes", 0) != 0 => return Ok(a.clone()),
            _ => (0..rank).collect(),
        };
        axes.sort_unstable();
        axes.dedup();
        let keep = node.int("keepdims", 1) != 0;
        let shape: Vec<usize> = (0..rank)
            .filter_map(|x| match (axes.contains(&x), keep) {
                (false, _) => Some(a.shape[x]),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        let r: usize = axes.iter().map(|&x| a.shape[x]).product();
        let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
        let (gather, dims) = if contiguous {
            let (lo, hi) = (axes[0], axes[axes.len() - 1] + 1);
            let dims = (
                a.shape[..lo].iter().product(),
                r,
                a.shape[hi..].iter().product(),
            );
            (None, dims)
        } else {
            // Kept axes first, reduced axes last, then one reduction over the trailing block.
            let order: Vec<usize> = (0..rank)
                .filter(|x| !axes.contains(x))
                .chain(axes.iter().copied())
                .collect();
            let moved: Vec<usize> = order.iter().map(|&x| a.shape[x]).collect();
            let natural = natural_strides(&a.shape);
            let src: Vec<isize> = order.iter().map(|&x| natural[x]).collect();
            let walk = Walk::new(&moved, [&natural_strides(&moved), &src], [0, 0]);
            let kept = a.shape.iter().product::<usize>() / r.max(1);
            (Some(walk), (kept, r, 1))
        };
        let step = Step::Reduce {
            op,
            a: operand(a)?,
            gather,
            dims,
        };
        Ok(self.emit(step, shape))
    }

    fn conv(&mut self, node: &Node, transposed: bool) -> Result<Val, NativeError> {
        let (x, k) = (self.input(node, 0)?, self.input(node, 1)?);
        let bias = self.optional(node, 2);
        let bad = |why: &str| {
            NativeError::Shape(format!(
                "{} of {:?} with kernel {:?}: {why}",
                node.op, x.shape, k.shape
            ))
        };
        if x.shape.len() != 4 || k.shape.len() != 4 {
            return Err(NativeError::Unsupported(format!(
                "{} of rank {} (2-D images are supported)",
                node.op,
                x.shape.len()
            )));
        }
        if node.string("auto_pad").is_some_and(|p| p != "NOTSET") {
            return Err(NativeError::Unsupported("auto_pad".into()));
        }
        if node.ints("output_shape").is_some() {
            return Err(NativeError::Unsupported(
                "ConvTranspose output_shape".into(),
            ));
        }
        let pair = |name: &str, default: usize| -> Result<[usize; 2], NativeError> {
            match node.ints(name) {
                None => Ok([default; 2]),
                Some([a, b]) if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
                Some(v) => Err(bad(&format!("{name} {v:?}"))),
            }
        };
        let (stride, dilation) = (pair("strides", 1)?, pair("dilations", 1)?);
        let pads = match node.ints("pads") {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => return Err(bad(&format!("pads {p:?}"))),
        };
        let group = usize::try_from(node.int("group", 1)).unwrap_or(0);
        if group == 0 || stride.contains(&0) || dilation.contains(&0) {
            return Err(bad("zero group, stride or dilation"));
        }
        let [n, cx, hx, wx] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let [k0, k1, kh, kw] = [k.shape[0], k.shape[1], k.shape[2], k.shape[3]];
        let span = |d: usize, kk: usize| d * (kk.max(1) - 1) + 1;
        let geometry = if !transposed {
            let (m, c) = (k0, cx);
            if k1 * group != c || m % group != 0 {
                return Err(bad("channels do not match the kernel and group"));
            }
            let (ph, pw) = (hx + pads[0] + pads[2], wx + pads[1] + pads[3]);
            if ph < span(dilation[0], kh) || pw < span(dilation[1], kw) {
                return Err(bad("the kernel is larger than the padded image"));
            }
            Conv2d {
                batch: n,
                group,
                c,
                h: hx,
                w: wx,
                m,
                ho: (ph - span(dilation[0], kh)) / stride[0] + 1,
                wo: (pw - span(dilation[1], kw)) / stride[1] + 1,
                kh,
                kw,
                stride,
                dilation,
                pad: [pads[0], pads[1]],
            }
        } else {
            let (m, c) = (cx, k1 * group);
            if k0 != m || m % group != 0 {
                return Err(bad("channels do not match the kernel and group"));
            }
            let out_pad = pair("output_padding", 0)?;
            let full = |d: usize, s: usize, dil: usize, kk: usize, op: usize| {
                s * (d.max(1) - 1) + op + span(dil, kk)
            };
            let (fh, fw) = (
                full(hx, stride[0], dilation[0], kh, out_pad[0]),
                full(wx, stride[1], dilation[1], kw, out_pad[1]),
            );
            if fh < pads[0] + pads[2] + 1 || fw < pads[1] + pads[3] + 1 || hx == 0 || wx == 0 {
                return Err(bad("the padding removes the whole output"));
            }
            Conv2d {
                batch: n,
                group,
                c,
                h: fh - pads[0] - pads[2],
                w: fw - pads[1] - pads[3],
                m,
                ho: hx,
                wo: wx,
                kh,
                kw,
                stride,
                dilation,
                pad: [pads[0], pads[1]],
            }
        };
        let channels_out = if transposed { geometry.c } else { geometry.m };
        if let Some(b) = bias {
            if b.shape != [channels_out] {
                return Err(bad(&format!("bias of shape {:?}", b.shape)));
            }
        }
        let shape = if transposed {
            vec![n, geometry.c, geometry.h, geometry.w]
        } else {
            vec![n, geometry.m, geometry.ho, geometry.wo]
        };
        let (x, kernel, bias) = (operand(x)?, operand(k)?, bias.map(operand).transpose()?);
        let step = if transposed {
            Step::ConvTranspose {
                x,
                kernel,
                bias,
                geometry,
            }
        } else if let (true, Operand::Konst(k)) = (geometry.prefers_winograd(), &kernel) {
            Step::Winograd {
                kernel: Operand::Konst(Arc::new(geometry.winograd_kernel(k))),
                x,
                bias,
                geometry,
            }
        } else {
            Step::Conv {
                x,
                kernel,
                bias,
                geometry,
            }
        };
        Ok(self.emit(step, shape))
    }
}

/// Gives the virtual buffers (lengths `sizes`) real ones: a buffer is reused once the value in it
/// is dead (after its last reader), by the next value of the same length.
fn assign_buffers(
    mut steps: Vec<(Step, Vec<usize>)>,
    sizes: &[usize],
    inputs: Vec<Option<usize>>,
    outputs: Vec<Operand>,
) -> Plan {
    const FOREVER: usize = usize::MAX;
    let mut last = vec![None::<usize>; sizes.len()];
    for (i, (step, _)) in steps.iter().enumerate() {
        for o in step.operands() {
            if let Operand::Buffer(v) = o {
                last[*v] = Some(i);
            }
        }
    }
    for o in &outputs {
        if let Operand::Buffer(v) = o {
            last[*v] = Some(FOREVER);
        }
    }
    let mut real = vec![usize::MAX; sizes.len()];
    let mut lengths = Vec::new();
    let mut free: HashMap<usize, Vec<usize>> = HashMap::new();
    let take = |len: usize, lengths: &mut Vec<usize>, free: &mut HashMap<usize, Vec<usize>>| {
        free.get_mut(&len).and_then(Vec::pop).unwrap_or_else(|| {
            lengths.push(len);
            lengths.len() - 1
        })
    };
    for v in inputs.iter().flatten() {
        real[*v] = take(sizes[*v], &mut lengths, &mut free);
    }
    let inputs = inputs
        .iter()
        .map(|v| v.filter(|v| last[*v].is_some()).map(|v| real[v]))
        .collect();
    for (i, (step, outs)) in steps.iter().enumerate() {
        // Outputs take their buffers before the step's dead inputs give theirs back: a step
        // never writes a buffer it reads.
        for &out in outs {
            real[out] = take(sizes[out], &mut lengths, &mut free);
        }
        let mut dead: Vec<usize> = step
            .operands()
            .into_iter()
            .filter_map(|o| match o {
                Operand::Buffer(v) if last[*v] == Some(i) => Some(*v),
                _ => None,
            })
            .collect();
        dead.extend(outs.iter().filter(|&&o| last[o].is_none()));
        dead.sort_unstable();
        dead.dedup();
        for v in dead {
            free.entry(sizes[v]).or_default().push(real[v]);
        }
    }
    let remap = |o: &mut Operand| {
        if let Operand::Buffer(v) = o {
            *v = real[*v];
        }
    };
    for (step, outs) in &mut steps {
        step.operands_mut().into_iter().for_each(remap);
        for out in outs {
            *out = real[*out];
        }
    }
    let mut outputs = outputs;
    outputs.iter_mut().for_each(remap);
    let workspace = steps.iter().map(|(s, _)| s.workspace()).max().unwrap_or(0);
    Plan {
        steps,
        sizes: lengths,
        inputs,
        outputs,
        workspace,
        idle: Mutex::new(Vec::new()),
    }
}

/// An axis index (negative counts from the end) checked against `rank`.
fn axis(x: i64, rank: usize) -> Result<usize, NativeError> {
    let r = rank as i64;
    let a = if x < 0 { x + r } else { x };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(NativeError::Shape(format!("axis {x} for rank {rank}")))
    }
}

/// ONNX Reshape's target shape: `0` copies the input's extent (unless `allowzero`), one `-1` is
/// inferred.
fn reshaped(from: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>, NativeError> {
    let len: usize = from.iter().product();
    let bad = || NativeError::Shape(format!("cannot reshape {from:?} to {target:?}"));
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            0 if !allowzero => *from.get(i).ok_or_else(bad)?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            d if d >= 0 => d as usize,
            _ => return Err(bad()),
        });
    }
    let known: usize = shape.iter().product();
    if let Some(i) = infer {
        if known == 0 || len / known * known != len {
            return Err(bad());
        }
        shape[i] = len / known;
    } else if known != len {
        return Err(bad());
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::native::graph::tests::node;
    use crate::onnx_proto as pb;

    fn constant(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: values,
            ..Default::default()
        }
    }

    /// An int64 constant (shapes, axes, slice bounds).
    fn ints(name: &str, values: &[i64]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: values.to_vec(),
            ..Default::default()
        }
    }

    /// A dense layer with SiLU and two more elementwise operators fuse into one step that
    /// writes only what is read after it; a per-row scale (broadcast along the inner axis) stays
    /// a step of its own. The outputs are those of the operators one by one.
    #[test]
    fn elementwise_chains_fuse_and_compute_what_their_operators_compute() {
        let w: Vec<f32> = (0..9).map(|i| (i as f32 * 0.7).sin()).collect();
        let bias = vec![0.1, -0.2, 0.3];
        let graph = pb::GraphProto {
            node: vec![
                node("ReduceSum", &["x", "axes"], "r"),
                node("MatMul", &["x", "w"], "mm"),
                node("Add", &["mm", "b"], "z"),
                node("Sigmoid", &["z"], "s"),
                node("Mul", &["z", "s"], "y"),
                node("Mul", &["y", "x"], "g"),
                node("Sub", &["g", "s"], "h"),
                node("Mul", &["h", "r"], "q"),
            ],
            initializer: vec![
                constant("w", &[3, 3], w.clone()),
                constant("b", &[3], bias.clone()),
                ints("axes", &[1]),
            ],
            ..Default::default()
        };
        let g = Graph::read(&graph, &["x"], &["y", "q"]).unwrap();
        let rows = 5;
        let plan = Plan::build(&g, &[vec![rows, 3]]).unwrap();
        let kinds: Vec<&str> = plan
            .steps
            .iter()
            .map(|(s, _)| match s {
                Step::Reduce { .. } => "reduce",
                Step::MatMul { .. } => "matmul",
                Step::Fused { .. } => "fused",
                Step::Binary { .. } => "binary",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["reduce", "matmul", "fused", "binary"]);
        // The chain stores y (an output) and h (read by the scale), not z, s or g.
        assert_eq!(plan.steps[2].1.len(), 2);

        let x: Vec<f32> = (0..rows * 3).map(|i| (i as f32 * 0.37).cos()).collect();
        let out = plan.run(&[&x]);
        for n in 0..rows {
            let r: f32 = x[n * 3..n * 3 + 3].iter().sum();
            for j in 0..3 {
                let mm: f32 = (0..3).map(|k| x[n * 3 + k] * w[k * 3 + j]).sum();
                let z = mm + bias[j];
                let s = 1.0 / (1.0 + (-z).exp());
                let y = z * s;
                let q = (y * x[n * 3 + j] - s) * r;
                assert!((out[0][n * 3 + j] - y).abs() < 1e-6, "y[{n}, {j}]");
                assert!((out[1][n * 3 + j] - q).abs() < 1e-5, "q[{n}, {j}]");
            }
        }
    }

    /// A slice of a product's columns becomes a product by those columns of the constant (no
    /// copy), unless the product is read elsewhere too or the slice takes rows.
    #[test]
    fn a_column_slice_of_a_product_by_a_constant_folds_into_it() {
        let (rows, k, n) = (5, 4, 6);
        let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).cos()).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.7).sin()).collect();
        // Different constants, so that the reader does not merge the products.
        let w2: Vec<f32> = w.iter().map(|v| v * 2.0).collect();
        let w3: Vec<f32> = w.iter().map(|v| v * 3.0).collect();
        let graph = pb::GraphProto {
            node: vec![
                node("MatMul", &["x", "w"], "p1"),
                node("Slice", &["p1", "s1", "e1", "axis1"], "y1"),
                node("MatMul", &["x", "w2"], "p2"),
                node("Slice", &["p2", "s1", "e1", "axis1"], "y2"),
                node("MatMul", &["x", "w3"], "p3"),
                node("Slice", &["p3", "s1", "e1", "axis0"], "y3"),
            ],
            initializer: vec![
                constant("w", &[k as i64, n as i64], w.clone()),
                constant("w2", &[k as i64, n as i64], w2.clone()),
                constant("w3", &[k as i64, n as i64], w3.clone()),
                ints("s1", &[2]),
                ints("e1", &[5]),
                ints("axis1", &[1]),
                ints("axis0", &[0]),
            ],
            ..Default::default()
        };
        // p2 is an output as well: its product keeps every column.
        let g = Graph::read(&graph, &["x"], &["y1", "y2", "p2", "y3"]).unwrap();
        let plan = Plan::build(&g, &[vec![rows, k]]).unwrap();
        let kinds: Vec<String> = plan
            .steps
            .iter()
            .map(|(s, _)| match s {
                Step::MatMul { plan, .. } => format!("matmul n{}", plan.n),
                Step::Copy { .. } => "copy".into(),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            ["matmul n3", "matmul n6", "copy", "matmul n6", "copy"]
        );
        let out = plan.run(&[&x]);
        let product = |w: &[f32], r: usize, j: usize| -> f32 {
            (0..k).map(|i| x[r * k + i] * w[i * n + j]).sum()
        };
        for r in 0..rows {
            for (c, j) in (2..5).enumerate() {
                assert!((out[0][r * 3 + c] - product(&w, r, j)).abs() < 1e-5);
                assert!((out[1][r * 3 + c] - product(&w2, r, j)).abs() < 1e-5);
            }
            for j in 0..n {
                assert!((out[2][r * n + j] - product(&w2, r, j)).abs() < 1e-5);
            }
        }
        for (i, r) in (2..5).enumerate() {
            for j in 0..n {
                assert!((out[3][i * n + j] - product(&w3, r, j)).abs() < 1e-5);
            }
        }
    }

    /// A convolution's bias written as an `Add` of a per-channel constant becomes the
    /// convolution's own bias (no step of its own, the same values), unless another node also
    /// reads the convolution's output.
    #[test]
    fn a_bias_add_after_a_conv_folds_into_it() {
        use crate::backend::native::linear::tests::{direct, values};
        let (c, m, h) = (2, 3, 4);
        let (x, k, bias) = (
            values(c * h * h, 0.3),
            values(m * c * 9, 0.9),
            values(m, 1.7),
        );
        // A second kernel (the reader would merge two identical Conv nodes into one).
        let k2: Vec<f32> = k.iter().map(|v| v * 2.0).collect();
        let graph = pb::GraphProto {
            node: vec![
                node("Conv", &["x", "w"], "c1"),
                node("Add", &["c1", "b"], "y1"),
                node("Conv", &["x", "w2"], "c2"),
                node("Add", &["b", "c2"], "y2"),
            ],
            initializer: vec![
                constant("w", &[m as i64, c as i64, 3, 3], k.clone()),
                constant("w2", &[m as i64, c as i64, 3, 3], k2.clone()),
                constant("b", &[1, m as i64, 1, 1], bias.clone()),
            ],
            ..Default::default()
        };
        let g = Graph::read(&graph, &["x"], &["y1", "y2", "c2"]).unwrap();
        let plan = Plan::build(&g, &[vec![1, c, h, h]]).unwrap();
        let kinds: Vec<&str> = plan
            .steps
            .iter()
            .map(|(s, _)| match s {
                Step::Conv { bias: Some(_), .. } => "conv+bias",
                Step::Conv { bias: None, .. } => "conv",
                Step::Binary { .. } => "binary",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["conv+bias", "conv", "binary"]);

        let geometry = Conv2d {
            batch: 1,
            group: 1,
            c,
            h,
            w: h,
            m,
            ho: h - 2,
            wo: h - 2,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
        };
        let out = plan.run(&[&x]);
        for (got, want) in [
            (&out[0], direct(&geometry, &x, &k, Some(&bias))),
            (&out[1], direct(&geometry, &x, &k2, Some(&bias))),
            (&out[2], direct(&geometry, &x, &k2, None)),
        ] {
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }
}
