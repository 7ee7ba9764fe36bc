#!/usr/bin/env python3
"""Training speed of `vpfb-train` against an exact PyTorch replica of the same network, loss and
optimiser, measured in one run (this machine is shared; only the ratio means anything).

The replicas (the MLP and the UNet of `vpfb-train fit`, with the same parameter names; the `ritz` loss
with the per-record time term 0.1·mean(s²) through double backprop, create_graph=True; the Adam variant
with per-element clipping and the weight EMA of docs/method.md §4) are first checked against the shipped
models: ψ and ∇ₓψ on random inputs, with the model file's weights loaded by name and evaluated in
float64, must equal ONNX Runtime's float32 values to rounding (ψ relative to max(1, |ψ|), ∇ₓψ absolute:
median difference ≤ 2e-6, largest ≤ 5e-5). Then both train the MLP on moons (batch 512) and the UNet on
Fashion-MNIST (batch 32) for the same steps, with 1 and 2 threads, and the script prints steps/s and
the ratio vpfb / PyTorch. Both sides are timed step by step and the median step is compared: the first
steps of a process fault in their memory (seconds for the UNet on this virtual machine, and different
from run to run), and a median is not moved by them or by a stray slow step of a shared machine.

    cargo build --release -p vpfb-trainer
    python3 -m venv ~/torchenv && ~/torchenv/bin/pip install torch numpy onnx onnxruntime
    ~/torchenv/bin/python scripts/bench_train.py [--mlp-steps 1500] [--unet-steps 20] [--images PATH|none]
"""
import argparse, json, math, os, subprocess, tempfile, time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn


class TimeEmbedding(nn.Module):
    """Sinusoids of scale·t (max period 1e4), Linear → SiLU → Linear."""

    def __init__(self, features, dim, scale=1.0):
        super().__init__()
        half = features // 2
        freqs = scale * torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("freqs", freqs.float(), persistent=False)
        self.linear1 = nn.Linear(features, dim)
        self.linear2 = nn.Linear(dim, dim)

    def forward(self, t):
        a = t[:, None] * self.freqs[None, :]
        return self.linear2(nn.functional.silu(self.linear1(torch.cat([a.sin(), a.cos()], 1))))


class MlpU(nn.Module):
    def __init__(self, dim, hidden, layers, time_features, time_dim, time_scale=1.0):
        super().__init__()
        self.temb = TimeEmbedding(time_features, time_dim, time_scale)
        self.mlp = nn.Module()
        widths = [dim + time_dim] + [hidden] * layers
        self.mlp.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.mlp.out = nn.Linear(hidden, dim)

    def forward(self, x, t):
        h = torch.cat([x, self.temb(t)], 1)
        for layer in self.mlp.layers:
            h = nn.functional.silu(layer(h))
        return self.mlp.out(h)


def conv(c_in, c_out, k):
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


class GroupNorm(nn.Module):
    """Normalisation over channel groups (eps 1e-5) with a per-channel scale and shift."""

    def __init__(self, c, groups):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, h):
        return nn.functional.group_norm(h, self.groups, self.weight, self.bias, 1e-5)


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, groups, t_dim):
        super().__init__()
        self.norm1 = GroupNorm(c_in, min(groups, c_in))
        self.conv1 = conv(c_in, c_out, 3)
        self.norm2 = GroupNorm(c_out, groups)
        self.film = nn.Linear(t_dim, 2 * c_out)
        self.conv2 = conv(c_out, c_out, 3)
        if c_in != c_out:
            self.skip = conv(c_in, c_out, 1)

    def forward(self, h, temb):
        silu = nn.functional.silu
        a = self.conv1(silu(self.norm1(h)))
        gamma, beta = self.film(temb)[:, :, None, None].chunk(2, 1)
        a = self.conv2(silu(self.norm2(a) * (1 + gamma) + beta))
        return (self.skip(h) if hasattr(self, "skip") else h) + a


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = GroupNorm(c, groups)
        self.q, self.k, self.v, self.proj = (conv(c, c, 1) for _ in range(4))

    def forward(self, h):
        n, c, hh, ww = h.shape
        x = self.norm(h)
        q, k, v = (f(x).reshape(n, c, hh * ww) for f in (self.q, self.k, self.v))
        w = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=2)
        mixed = (w @ v.transpose(1, 2)).transpose(1, 2).reshape(n, c, hh, ww)
        return h + self.proj(mixed)


class UnetU(nn.Module):
    """The `unet` network of vpfb-train, with the same parameter names."""

    def __init__(self, image, base, mults, blocks, attention, groups, time_features, time_dim):
        super().__init__()
        self.attn_levels, self.blocks = attention, blocks
        self.temb = TimeEmbedding(time_features, time_dim)
        self.conv_in = conv(image[0], base, 3)
        widths, chans, c = [base * m for m in mults], [base], base
        self.down = nn.ModuleList()
        for l, w in enumerate(widths):
            level = nn.Module()
            level.res = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(blocks):
                level.res.append(ResBlock(c, w, groups, time_dim))
                c = w
                if l in attention:
                    level.attn.append(Attention(c, groups))
                chans.append(c)
            if l + 1 < len(widths):
                chans.append(c)
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.res = nn.ModuleList([ResBlock(c, c, groups, time_dim), ResBlock(c, c, groups, time_dim)])
        if attention:
            self.mid.attn = Attention(c, groups)
        self.up = nn.ModuleList([nn.Module() for _ in widths])
        for l in reversed(range(len(widths))):
            level = self.up[l]
            level.res = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(blocks + 1):
                level.res.append(ResBlock(c + chans.pop(), widths[l], groups, time_dim))
                c = widths[l]
                if l in attention:
                    level.attn.append(Attention(c, groups))
        self.norm_out = GroupNorm(c, groups)
        self.conv_out = conv(c, image[0], 3)

    def forward(self, x, t):
        temb = nn.functional.silu(self.temb(t))
        h = self.conv_in(x)
        skips = [h]
        for l, level in enumerate(self.down):
            for b, block in enumerate(level.res):
                h = block(h, temb)
                if l in self.attn_levels:
                    h = level.attn[b](h)
                skips.append(h)
            if l + 1 < len(self.down):
                h = nn.functional.avg_pool2d(h, 2)
                skips.append(h)
        h = self.mid.res[0](h, temb)
        if self.attn_levels:
            h = self.mid.attn(h)
        h = self.mid.res[1](h, temb)
        for l in reversed(range(len(self.up))):
            level = self.up[l]
            for b, block in enumerate(level.res):
                h = block(torch.cat([h, skips.pop()], 1), temb)
                if l in self.attn_levels:
                    h = level.attn[b](h)
            if l > 0:
                h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv_out(nn.functional.silu(self.norm_out(h)))


def network_for(arch):
    """The replica of an exported model's `vpfb.architecture`."""
    cfg = arch["config"]
    if arch["arch"] == "mlp":
        return MlpU(cfg["dim"], cfg["hidden"], cfg["layers"], cfg["time_features"], cfg["time_dim"],
                    cfg.get("time_scale", 1.0))
    return UnetU(cfg["image"], cfg["base"], cfg["mults"], cfg["blocks"], cfg["attention"], cfg["groups"],
                 cfg["time_features"], cfg["time_dim"])


def psi_of(net, x, t):
    return 0.5 * (x - net(x, t)).pow(2).flatten(1).sum(1)


def load_onnx_weights(net, path):
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    state = net.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise SystemExit(f"{path} has no weights named {missing[:3]}: the replica's names differ")
    # Conv and GroupNorm vectors are stored as [C]; PyTorch's shapes are the same.
    net.load_state_dict({k: torch.from_numpy(weights[k].copy()).reshape(v.shape) for k, v in state.items()})


def check_replica(path, count=64):
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    net = network_for(json.loads(meta["vpfb.architecture"]))
    load_onnx_weights(net, path)
    shape = json.loads(meta["vpfb.data_shape"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((count, *shape)).astype(np.float32)
    t = rng.uniform(0, 1, count).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feeds = {"x": x, "t": t}
    if "probe" in [i.name for i in sess.get_inputs()]:
        feeds["probe"] = np.zeros((1, *shape), np.float32)
    out = dict(zip(names, sess.run(None, feeds)))
    # The replica runs in float64: its values are then exact for these weights, and the differences
    # are ONNX Runtime's float32 rounding. ∇ₓψ = (I − Jᵀ)(x − U) cancels where the field is small, so
    # its largest absolute error is a few times ψ's.
    net = net.double()
    xt = torch.from_numpy(x).double().requires_grad_(True)
    psi = psi_of(net, xt, torch.from_numpy(t).double())
    (g,) = torch.autograd.grad(psi.sum(), xt)
    dpsi = np.abs(psi.detach().numpy() - out["psi"]) / np.maximum(1.0, np.abs(out["psi"]))
    dg = np.abs(g.numpy() - out["velocity"])
    print(f"replica check on {path}: |Δψ|/max(1, |ψ|) median {np.median(dpsi):.1e} max {dpsi.max():.1e}; "
          f"|Δ∇ψ| median {np.median(dg):.1e} max {dg.max():.1e} (limits: median 2e-6, max 5e-5)")
    if not (max(np.median(dpsi), np.median(dg)) <= 2e-6 and max(dpsi.max(), dg.max()) <= 5e-5):
        raise SystemExit("the PyTorch replica does not match the exported model")


def moons(n, rng):
    """The moons generator of vpfb-train (two half circles, noise 0.1), standardised roughly."""
    a = rng.uniform(0, math.pi, n)
    upper = rng.uniform(size=n) < 0.5
    x = np.where(upper, np.cos(a), 1 - np.cos(a))
    y = np.where(upper, np.sin(a), 0.5 - np.sin(a))
    pts = np.stack([x, y], 1) + 0.1 * rng.standard_normal((n, 2))
    return ((pts - [0.5, 0.25]) / [0.87, 0.5]).astype(np.float32)


def torch_steps_per_s(net, data, steps, threads, lr, warm, temb_weight=0.1):
    """Steps per second (of the median step) of `steps` training steps after `warm` untimed ones,
    `data()` giving x̄."""
    torch.set_num_threads(threads)
    params = list(net.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    ema = [p.detach().clone() for p in params]
    b1, b2, eps, clip, warmup = 0.9, 0.999, 1e-8, 3.0, 200
    times = []
    for k in range(steps + warm):
        start = time.perf_counter()
        xbar = data()
        n = xbar.shape[0]
        e = torch.randn_like(xbar)
        t = torch.rand(n).clamp_min(1e-5).requires_grad_(True)
        tc = t.detach().clamp(max=1 - 1e-5).reshape(n, *[1] * (xbar.dim() - 1))
        xt = (tc * xbar + (1 - tc) * e).requires_grad_(True)
        psi = psi_of(net, xt, t)
        g, s = torch.autograd.grad(psi.sum(), (xt, t), create_graph=True)
        u = xbar - e
        loss = (0.5 * g.pow(2) - g * u).flatten(1).sum(1).mean() + temb_weight * s.pow(2).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            step = k + 1
            rate = lr * min(1.0, step / warmup)
            decay = min(0.999, (1 + step) / (10 + step))
            for p, gr, mi, vi, ei in zip(params, grads, m, v, ema):
                if k >= 1:
                    bound = (vi / (1 - b2**k)).sqrt() * clip + 0.1
                    gr = torch.maximum(torch.minimum(gr, bound), -bound)
                mi.mul_(b1).add_(gr, alpha=1 - b1)
                vi.mul_(b2).addcmul_(gr, gr, value=1 - b2)
                update = (mi / (1 - b1**step)) / ((vi / (1 - b2**step)).sqrt() + eps)
                p.sub_(rate * update)
                ei.mul_(decay).add_(p, alpha=1 - decay)
        if k >= warm:
            times.append(time.perf_counter() - start)
    return 1 / float(np.median(times))


def vpfb_steps_per_s(binary, args, steps, threads, warm):
    """Steps per second of the median step of a `warm + steps`-step `vpfb-train fit` run (its
    `metrics.json` records the median)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "run")
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        subprocess.run([binary, "fit", *args, "--steps", str(warm + steps), "--temb-weight", "0.1",
                        "--time-sampling", "uniform", "--time-term", "per-record", "--lr-schedule",
                        "constant", "--no-eval", "--checkpoint-every", str(warm + steps), "--out", out],
                       check=True, capture_output=True, env=env)
        return 1 / json.load(open(os.path.join(out, "metrics.json")))["step_s_median"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlp-steps", type=int, default=1500)
    ap.add_argument("--unet-steps", type=int, default=20)
    ap.add_argument("--images", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                    help="MNIST-format images for the UNet run (`none` skips the UNet)")
    ap.add_argument("--binary", default=os.environ.get("VPFB_TRAIN", "target/release/vpfb-train"))
    a = ap.parse_args()
    check_replica("models/moons.onnx")
    check_replica("models/fashion-mnist.onnx", 16)
    rng = np.random.default_rng(0)
    cases = [("MLP 128×3, moons, batch 512", ["--data", "moons", "--batch", "512", "--lr", "1e-3"], a.mlp_steps, 20,
              lambda: (MlpU(2, 128, 3, 32, 32), lambda: torch.from_numpy(moons(512, rng)), 1e-3))]
    if a.images != "none":
        fm = json.loads({p.key: p.value for p in onnx.load("models/fashion-mnist.onnx").metadata_props}
                        ["vpfb.architecture"])
        cases.append(("UNet `--preset cpu`, Fashion-MNIST, batch 32",
                      ["--data", f"idx:{a.images}", "--arch", "unet", "--preset", "cpu", "--batch", "32",
                       "--lr", "3e-4"], a.unet_steps, 3,
                      lambda: (network_for(fm), lambda: torch.rand(32, 1, 28, 28) * 2 - 1, 3e-4)))
    print("\n| network | threads | vpfb-train steps/s | PyTorch steps/s | ratio vpfb / PyTorch |")
    print("|---|---|---|---|---|")
    for name, args, steps, warm, make in cases:
        for threads in (1, 2):
            ours = vpfb_steps_per_s(a.binary, args, steps, threads, warm)
            torch.manual_seed(0)
            net, data, lr = make()
            theirs = torch_steps_per_s(net, data, steps, threads, lr, warm)
            print(f"| {name} | {threads} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
