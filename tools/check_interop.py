#!/usr/bin/python3
"""check_interop.py — does a lymphdet model file mean the same thing to PyTorch?

Reads a lymphdet model (safetensors, parsed here with struct/json/numpy: no safetensors
package needed), loads it with `load_state_dict` into an independent PyTorch module of the
architecture its metadata describes, runs the given patch images through it, runs
`lymphdet classify` on the same images, and prints the largest absolute difference between
the two sets of probabilities. Exit status 1 if it exceeds --tol.

    /usr/bin/python3 tools/check_interop.py --model M.safetensors [--lymphdet build/lymphdet]
                                            [--tol 1e-5] PATCH...

Images are prepared as lymphdet does: grey (PIL's "L" conversion: ITU-R BT.601 luma,
rounded), resized to the input size with PIL's BILINEAR filter when they are not already
that size, divided by 255, and copied into every input channel. Use patches of the input
size (100 x 100 for the paper) to compare the networks alone.

    --perturb OUT [--seed N]
writes OUT: the model with random but plausible biases, batch-norm scales, shifts and
moving statistics (so a swapped or ignored tensor shows), saved the way the safetensors
library saves (tensors in name order, not state-dict order), with PyTorch's probabilities
for two fixed synthetic inputs stored in its metadata ("torch_prob_ramp",
"torch_prob_checker"; see synthetic_inputs). The comparison then runs on OUT. The test
suite's tests/fixtures/models/paper_torch.safetensors is made this way.
"""
import argparse
import json
import struct
import subprocess
import sys

import numpy as np
import torch
from PIL import Image


def read_safetensors(path):
    """(metadata dict, {name: float32 array}) with every structural check the format needs."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n == 0 or 8 + n > len(blob):
        raise ValueError(f"{path}: bad header length {n}")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors, spans = {}, []
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: {name}: dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        if end - begin != 4 * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: {name}: offsets do not match the shape")
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(shape).astype(np.float32)
        spans.append((begin, end))
    spans.sort()
    at = 0
    for begin, end in spans:
        if begin != at:
            raise ValueError(f"{path}: data offsets are not contiguous at {at}")
        at = end
    if at != len(data):
        raise ValueError(f"{path}: data section is {len(data)} bytes, tensors cover {at}")
    return meta, tensors


def write_safetensors(path, tensors, meta):
    """As the safetensors library writes: metadata first, tensors sorted by name, offsets
    in that order, header padded with spaces to a multiple of 8."""
    header, blobs, at = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [at, at + a.nbytes]}
        blobs.append(a.tobytes())
        at += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class Net(torch.nn.Module):
    """SPEC §2.7 in PyTorch terms: per block conv 3x3 valid -> BN -> ReLU -> max-pool 2x2
    (floor) -> dropout; flatten in C,H,W order; dense -> 1 logit. Keras' BN momentum 0.99
    is PyTorch's 0.01; epsilon 1e-3 is passed as is."""

    def __init__(self, meta):
        super().__init__()
        cin, side = int(meta["in_channels"]), int(meta["input_size"])
        filters = [int(f) for f in meta["filters"].split(",")]
        eps, momentum = float(meta["bn_epsilon"]), 1.0 - float(meta["bn_momentum"])
        self.n_blocks = len(filters)
        for k, f in enumerate(filters, start=1):
            setattr(self, f"conv{k}", torch.nn.Conv2d(cin, f, 3))
            setattr(self, f"bn{k}", torch.nn.BatchNorm2d(f, eps=eps, momentum=momentum))
            cin, side = f, (side - 2) // 2
        self.dropout = torch.nn.Dropout(float(meta["dropout"]))
        self.dense = torch.nn.Linear(cin * side * side, 1)

    def forward(self, x):
        for k in range(1, self.n_blocks + 1):
            x = getattr(self, f"bn{k}")(getattr(self, f"conv{k}")(x))
            x = self.dropout(torch.nn.functional.max_pool2d(torch.relu(x), 2))
        return torch.sigmoid(self.dense(torch.flatten(x, 1)))[:, 0]


def load_net(meta, tensors):
    net = Net(meta)
    # strict: every name and shape must match the module's state dict (BatchNorm's
    # num_batches_tracked, absent from the file, is filled in by PyTorch itself)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    return net.eval()


def image_input(path, size, channels):
    img = Image.open(path).convert("L")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    grey = np.asarray(img, dtype=np.float32) / np.float32(255)
    return np.repeat(grey[None], channels, axis=0)


def synthetic_inputs(size, channels):
    """ramp: ((7i + 3j + 11c) mod 256) / 255; checker: 1 where (i//10 + j//10) is odd,
    else 0.2 — the same formulas as tests/test_model_file.c."""
    c, i, j = np.meshgrid(np.arange(channels), np.arange(size), np.arange(size), indexing="ij")
    ramp = ((7 * i + 3 * j + 11 * c) % 256).astype(np.float32) / np.float32(255)
    checker = np.where((i // 10 + j // 10) % 2 == 1, np.float32(1.0), np.float32(0.2))
    return np.stack([ramp, checker.astype(np.float32)])


def perturb(tensors, seed):
    rng = np.random.default_rng(seed)
    out = dict(tensors)
    for name, a in tensors.items():
        u = lambda lo, hi: rng.uniform(lo, hi, a.shape).astype(np.float32)
        if name.endswith(".bias") and name.startswith(("conv", "dense")):
            out[name] = u(-0.05, 0.05)
        elif name.startswith("bn") and name.endswith(".weight"):
            out[name] = u(0.5, 1.5)
        elif name.startswith("bn") and name.endswith(".bias"):
            out[name] = u(-0.2, 0.2)
        elif name.endswith(".running_mean"):
            out[name] = u(-0.1, 0.1)
        elif name.endswith(".running_var"):
            out[name] = u(0.02, 0.3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--lymphdet", default="build/lymphdet")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--perturb", metavar="OUT")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("patches", nargs="*")
    args = ap.parse_args()

    meta, tensors = read_safetensors(args.model)
    model_path = args.model
    size, channels = int(meta["input_size"]), int(meta["in_channels"])
    if args.perturb:
        tensors = perturb(tensors, args.seed)
        net = load_net(meta, tensors)
        with torch.no_grad():
            p = net(torch.from_numpy(synthetic_inputs(size, channels))).numpy()
        meta = dict(meta)
        meta["source"] = f"tools/check_interop.py --perturb --seed {args.seed} from {args.model}"
        meta["torch_prob_ramp"] = f"{p[0]:.9g}"
        meta["torch_prob_checker"] = f"{p[1]:.9g}"
        write_safetensors(args.perturb, tensors, meta)
        print(f"wrote {args.perturb}: torch p(ramp) = {p[0]:.9g}, p(checker) = {p[1]:.9g}")
        model_path = args.perturb
    if not args.patches:
        return 0

    net = load_net(meta, tensors)
    x = np.stack([image_input(p, size, channels) for p in args.patches])
    with torch.no_grad():
        torch_p = net(torch.from_numpy(x)).numpy().astype(np.float64)
    run = subprocess.run([args.lymphdet, "classify", "--quiet", "--model", model_path]
                         + args.patches, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        return 1
    c_p = {}
    for line in run.stdout.splitlines():
        path, prob = line.rsplit("\t", 1)
        c_p[path] = float(prob)
    diffs = np.array([abs(c_p[p] - t) for p, t in zip(args.patches, torch_p)])
    print(f"{len(diffs)} patches, probabilities {torch_p.min():.7f} .. {torch_p.max():.7f}")
    print(f"max |lymphdet - torch| = {diffs.max():.3g} "
          f"(lymphdet prints 7 decimals: rounding alone is up to 5e-8)")
    return 0 if diffs.max() <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
