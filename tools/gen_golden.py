#!/usr/bin/python3
"""gen_golden.py — PyTorch reference for the paper's CNN, written to tests/golden/paper_net.bin.

Run by hand (or `make golden`) with the interpreter that has torch:
    /usr/bin/python3 tools/gen_golden.py tests/golden

It builds the network of Taciuc et al. (2025, Table 1) independently of the C code,
with the Keras semantics of SPEC §2.7 expressed in PyTorch:
  - conv: F.conv2d (cross-correlation, valid, bias);
  - batch norm: F.batch_norm(eps=1e-3, momentum=0.01). PyTorch's momentum is the
    weight of the NEW value (running = (1-mom) running + mom batch), so 0.01 here is
    Keras's 0.99; and PyTorch, like Keras 2's fused kernel, feeds the unbiased batch
    variance (var * n/(n-1)) to running_var. Both facts are asserted below against
    the formula written out by hand, so a torch change would stop this script;
  - relu, max_pool2d(2, 2) (floor), then dropout as a multiplication by an explicit
    mask (0 or 1/(1-rate)) so the C test can inject exactly the same mask;
  - flatten in C,H,W order, linear 800 -> 1;
  - loss: TensorFlow's sigmoid_cross_entropy_with_logits, max(z,0) - z*y + log1p(exp(-|z|)),
    averaged over the batch;
  - Adam in Keras's form written out by hand (not torch.optim.Adam, whose epsilon sits
    inside the bias correction): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    a = lr sqrt(1-b2^t)/(1-b1^t), w -= a m / (sqrt(v) + eps), trainable tensors only.
Weights, inputs and masks are float32 values (as the C library holds them); the
computation runs in float64 and the results are stored rounded to float32, so the golden
values are the exact answer for those inputs, to float32 precision. That choice matters:
a conv bias followed by training-mode batch norm has an analytically ZERO gradient (the
batch mean removes it), so in float32 its gradient is pure rounding noise (torch's
float32 gives ~1e-6, float64 ~1e-14), and Adam, which divides by sqrt(v), turns noise of
that size into steps as large as the learning rate. torch's own float32 run therefore
drifts from the exact trajectory in the conv biases by up to ~4e-3 after ten steps
(printed below; every other tensor stays within ~1e-6). The C library uses the exact
zero for that gradient and accumulates batch sums in double, and follows the exact
trajectory within the test's tolerance.

File format (little-endian), documented in tests/golden/README.md:
    "LDGOLD01"  uint32 record_count
    per record: uint32 name_len, name (ASCII, no NUL), uint8 dtype, uint8 ndim,
                uint32 shape[ndim], data
    dtype 0 = float32 (4 bytes each), 1 = uint8 (1 byte each),
          2 = bits (ceil(numel/8) bytes, element i is bit i%8 of byte i/8)
The file ends exactly after the last record.
"""
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 1                   # first seed tried (see main)
N = 5                      # the paper's batch size
SIZE, CH = 100, 3
FILTERS = [4, 4, 8]
RATE = 0.25                # dropout rate (the C default)
EPS, MOMENTUM = 1e-3, 0.99  # Keras convention
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)  # lr 10x the paper's: bigger, more telling steps
STEPS = 10
MARGIN = 2e-6              # smallest allowed distance to a relu/max-pool kink (see main)
LABELS = [1.0, 0.0, 1.0, 0.0, 1.0]

DT_F32, DT_U8, DT_BITS = 0, 1, 2


def names():
    out = []
    for k in range(1, len(FILTERS) + 1):
        out += [f"conv{k}.weight", f"conv{k}.bias", f"bn{k}.weight", f"bn{k}.bias",
                f"bn{k}.running_mean", f"bn{k}.running_var"]
    return out + ["dense.weight", "dense.bias"]


def trainable(name):
    return not name.endswith(("running_mean", "running_var"))


def make_weights(gen):
    """Seeded weights with every tensor non-trivial (biases, BN statistics and affine
    parameters away from their 0/1 initial values, so each one is actually tested)."""
    def uni(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float32)
    w, cin, s = {}, CH, SIZE
    for k, f in enumerate(FILTERS, start=1):
        lim = math.sqrt(6.0 / (cin * 9 + f * 9))           # Glorot-uniform
        w[f"conv{k}.weight"] = uni((f, cin, 3, 3), -lim, lim)
        w[f"conv{k}.bias"] = uni((f,), -0.1, 0.1)
        w[f"bn{k}.weight"] = uni((f,), 0.7, 1.3)
        w[f"bn{k}.bias"] = uni((f,), -0.2, 0.2)
        w[f"bn{k}.running_mean"] = uni((f,), -0.3, 0.3)
        w[f"bn{k}.running_var"] = uni((f,), 0.5, 1.5)
        cin, s = f, (s - 2) // 2
    d = cin * s * s
    lim = math.sqrt(6.0 / (d + 1))
    w["dense.weight"] = uni((1, d), -lim, lim)
    w["dense.bias"] = uni((1,), -0.1, 0.1)
    return w


def kink_margin(pre, mask):
    """How far the batch is from a kink of relu + max-pool, over the windows whose
    output dropout keeps (elsewhere the gradient is 0 either way). The gradient jumps
    when a window's top two pre-ReLU values swap, or its maximum changes sign, so the
    margin of a window is -top1 if top1 <= 0, else top1 - max(second, 0)."""
    n, f, c, _ = pre.shape
    p = c // 2
    v = pre[:, :, :2 * p, :2 * p].reshape(n, f, p, 2, p, 2).permute(0, 1, 2, 4, 3, 5)
    top = v.reshape(n, f, p, p, 4).topk(2, dim=-1).values
    t1, t2 = top[..., 0], top[..., 1]
    m = torch.where(t1 <= 0, -t1, t1 - t2.clamp(min=0))
    m = torch.where(mask != 0, m, torch.full_like(m, float("inf")))
    return float(m.min())


def forward(w, x, training, masks=None, margins=None):
    """logits [n]; in training mode updates w's running stats in place and, if
    margins is a list, appends each block's kink margin to it."""
    h = x
    for k in range(1, len(FILTERS) + 1):
        h = F.conv2d(h, w[f"conv{k}.weight"], w[f"conv{k}.bias"])
        rm, rv = w[f"bn{k}.running_mean"], w[f"bn{k}.running_var"]
        if training:
            m = h.shape[0] * h.shape[2] * h.shape[3]
            old_m, old_v = rm.clone(), rv.clone()
            mean = h.detach().mean(dim=(0, 2, 3))
            var = h.detach().var(dim=(0, 2, 3), unbiased=False)
            h = F.batch_norm(h, rm, rv, w[f"bn{k}.weight"], w[f"bn{k}.bias"], training=True,
                             momentum=1.0 - MOMENTUM, eps=EPS)
            # Keras 2 fused kernel: moving = 0.99 moving + 0.01 * (mean, var * m/(m-1))
            want_m = MOMENTUM * old_m + (1 - MOMENTUM) * mean
            want_v = MOMENTUM * old_v + (1 - MOMENTUM) * var * m / (m - 1)
            tol = 1e-12 if h.dtype == torch.float64 else 1e-6
            assert torch.allclose(rm, want_m, atol=tol, rtol=tol), "torch running_mean formula changed"
            assert torch.allclose(rv, want_v, atol=tol, rtol=tol), "torch running_var formula changed"
        else:
            h = F.batch_norm(h, rm, rv, w[f"bn{k}.weight"], w[f"bn{k}.bias"], training=False,
                             eps=EPS)
        if training and margins is not None:
            margins.append(kink_margin(h.detach(), masks[k - 1]))
        h = F.max_pool2d(F.relu(h), 2, 2)
        if training:
            h = h * masks[k - 1]
    flat = h.reshape(h.shape[0], -1)                       # C, H, W order
    return (flat @ w["dense.weight"].t() + w["dense.bias"]).reshape(-1)


def bce_logits(z, y):
    return (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()


def adam_step(w, grads, state, t):
    b1, b2, lr, eps = ADAM["beta1"], ADAM["beta2"], ADAM["lr"], ADAM["eps"]
    a = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
    with torch.no_grad():
        for name in names():
            if not trainable(name):
                continue
            g = grads[name]
            m, v = state[name]
            m.mul_(b1).add_((1 - b1) * g)
            v.mul_(b2).add_((1 - b2) * g * g)
            w[name] -= a * m / (v.sqrt() + eps)


def run(w0, x, y, masks, dtype, margins=None):
    """The whole experiment in one precision; returns a dict of named results and,
    if margins is a list, appends every training forward's kink margins to it."""
    w = {k: v.to(dtype).clone() for k, v in w0.items()}
    x, y = x.to(dtype), y.to(dtype)
    masks = [[m.to(dtype) for m in step] for step in masks]
    out = {}
    with torch.no_grad():
        z = forward(w, x, training=False)
    out["infer.logits"], out["infer.probs"] = z.clone(), torch.sigmoid(z)
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in w.items()}
    for t in range(1, STEPS + 1):
        leaves = {k: (v.requires_grad_(True) if trainable(k) else v) for k, v in w.items()}
        z = forward(leaves, x, training=True, masks=masks[t - 1], margins=margins)
        loss = bce_logits(z, y)
        loss.backward()
        grads = {k: v.grad.detach().clone() for k, v in leaves.items() if trainable(k)}
        w = {k: v.detach().clone() for k, v in leaves.items()}
        if t == 1:
            out["train.logits"], out["train.probs"] = z.detach().clone(), torch.sigmoid(z.detach())
            out["train.loss"] = loss.detach().reshape(())
            for k, g in grads.items():
                out["grad." + k] = g
            for k in range(1, len(FILTERS) + 1):
                for s in ("running_mean", "running_var"):
                    out[f"train.bn{k}.{s}"] = w[f"bn{k}.{s}"].clone()
        out[f"step{t}.loss"] = loss.detach().reshape(())
        adam_step(w, grads, state, t)
        for k in names():
            out[f"step{t}.{k}"] = w[k].clone()
    return out


class Writer:
    def __init__(self):
        self.records = []

    def add(self, name, arr, dtype=DT_F32):
        arr = np.asarray(arr)
        shape = arr.shape
        if dtype == DT_F32:
            data = arr.astype("<f4").tobytes()
        elif dtype == DT_U8:
            data = arr.astype(np.uint8).tobytes()
        else:
            data = np.packbits(arr.astype(np.uint8).reshape(-1), bitorder="little").tobytes()
        head = struct.pack("<I", len(name)) + name.encode() + struct.pack("<BB", dtype, len(shape))
        head += b"".join(struct.pack("<I", d) for d in shape)
        self.records.append(head + data)

    def write(self, path):
        blob = b"LDGOLD01" + struct.pack("<I", len(self.records)) + b"".join(self.records)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        return len(blob)


def make_case(seed):
    """Weights, 8-bit inputs, labels and per-step dropout keep masks for one seed."""
    gen = torch.Generator().manual_seed(seed)
    w0 = make_weights(gen)
    # inputs as the library sees images: 8-bit pixels / 255 in float32
    pixels = torch.randint(0, 256, (N, CH, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    x = pixels.to(torch.float32) / torch.tensor(255.0, dtype=torch.float32)
    y = torch.tensor(LABELS, dtype=torch.float32)
    keep = []       # [STEPS][blocks] boolean keep masks
    for _ in range(STEPS):
        step, s = [], SIZE
        for f in FILTERS:
            s = (s - 2) // 2
            step.append(torch.rand((N, f, s, s), generator=gen) >= RATE)
        keep.append(step)
    scale = np.float32(1.0) / np.float32(1.0 - RATE)
    masks = [[k.to(torch.float32) * float(scale) for k in step] for step in keep]
    return w0, pixels, x, y, keep, masks


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/golden"
    os.makedirs(outdir, exist_ok=True)
    # A float32 implementation can only follow the exact trajectory if no step sits
    # on a kink (a max-pool near-tie or a pooled maximum near 0): there the gradient
    # jumps, and a rounding-size difference picks the other side. With ~36,000 kept
    # windows per batch, margins of 1e-6..1e-5 are common, so seeds are tried in order
    # until every step of the exact (float64) run keeps MARGIN away from any kink.
    for seed in range(SEED, SEED + 200):
        w0, pixels, x, y, keep, masks = make_case(seed)
        margins = []
        res64 = run(w0, x, y, masks, torch.float64, margins)
        if min(margins) >= MARGIN:
            break
    else:
        sys.exit("gen_golden.py: no seed keeps every step away from a kink")
    print(f"seed {seed} (tried {seed - SEED + 1}): smallest kink margin {min(margins):.3g}")
    res32 = run(w0, x, y, masks, torch.float32)
    worst = max(((float((res32[k].double() - res64[k]).abs().max()), k) for k in res32))
    print(f"torch float32 vs the float64 golden: worst {worst[0]:.3g} in {worst[1]}")
    for k in ("infer.probs", "train.loss", "grad.conv1.weight", "grad.conv1.bias",
              "grad.dense.weight", f"step{STEPS}.conv1.weight", f"step{STEPS}.conv1.bias",
              f"step{STEPS}.loss"):
        print(f"  {k:28s} {float((res32[k].double() - res64[k]).abs().max()):.3g}")

    wr = Writer()
    for name, val in (("seed", seed), ("kink_margin", min(margins)), ("arch.dropout", RATE), ("arch.bn_eps", EPS), ("arch.bn_momentum", MOMENTUM),
                      ("adam.lr", ADAM["lr"]), ("adam.beta1", ADAM["beta1"]),
                      ("adam.beta2", ADAM["beta2"]), ("adam.eps", ADAM["eps"])):
        wr.add(name, np.float32(val))
    for k in names():
        wr.add("init." + k, w0[k].numpy())
    wr.add("x.pixels", pixels.numpy(), DT_U8)
    wr.add("y", y.numpy())
    for t in range(STEPS):
        for b in range(len(FILTERS)):
            wr.add(f"step{t + 1}.keep{b + 1}", keep[t][b].numpy(), DT_BITS)
    for k, v in res64.items():
        wr.add(k, v.detach().to(torch.float32).numpy())
    path = os.path.join(outdir, "paper_net.bin")
    size = wr.write(path)
    print(f"wrote {path}: {len(wr.records)} records, {size} bytes")


if __name__ == "__main__":
    main()
