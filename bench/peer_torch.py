#!/usr/bin/python3
"""peer_torch.py — the work of bench/bench.c done with PyTorch, the peer lymphdet is
measured against (issue 8; docs/performance.md). Run with the interpreter that has
Debian's torch:

    /usr/bin/python3 bench/peer_torch.py [--threads N] [--quick] [--tsv] [--only KEYS]

The network is the paper's (Table 1), written with torch.nn as a PyTorch user would:
Conv2d / BatchNorm2d(eps 1e-3, momentum 0.01 = Keras's 0.99) / ReLU / MaxPool2d /
Dropout, flatten, Linear(800, 1). Same keys, same work, same timing rule as bench.c:

  sgemm                     a 2048 x 2048 float32 matrix product with torch's oneDNN
                            (mkldnn_linear): the peak that "% of peak" refers to
                            (2 n^3 flop). Debian's torch links the netlib reference
                            BLAS, whose torch.mm (sgemm_blas, shown for the record)
                            runs at a few GFLOP/s and measures nothing of the core
  scan469/938/1876          the network fully-convolutionally over a frame (the dense
                            layer as a 10 x 10 conv: every window at stride 8 in one
                            pass), eval mode, no_grad, 3 input channels
  pyramid469                the same over the pyramid 2,1.41,1,0.71,0.5,0.35 (bilinear
                            antialiased resize), threshold 0.95, NMS (IoU 0.3)
  windows469                the 2209 windows of a 469 frame cut out and classified in
                            batches of 64 (the paper's sliding window)
  train_step                one training step of 5 patches: forward (train mode),
                            binary cross-entropy from the logit, backward, Keras Adam
                            written out (w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v)+eps))
  train_epoch_434/868/1736  one epoch over that many patches, batch 5, shuffled
  train_paper               1562 + 174 patches, 20 epochs, validation after each

Timing: a warm-up run, then repeats until about a second has passed (at least 5, at
most 200; runs over a second: 3, or 1 with --quick) and the median, in ms. GFLOP
counts the multiply-adds x 2 of convolutions and the dense layer as executed here.
Output: a table, or with --tsv: key, ms, work, unit, GFLOP per line."""
import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FILTERS = [4, 4, 8]
PYRAMID = [2, 1.41, 1, 0.71, 0.5, 0.35]


class PaperNet(nn.Module):
    """Taciuc et al. (2025), Table 1, with Keras's batch-norm constants."""

    def __init__(self, dropout=0.25):
        super().__init__()
        layers, cin = [], 3
        for f in FILTERS:
            layers += [nn.Conv2d(cin, f, 3), nn.BatchNorm2d(f, eps=1e-3, momentum=0.01),
                       nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout)]
            cin = f
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(cin * 10 * 10, 1)

    def forward(self, x):
        return self.dense(torch.flatten(self.features(x), 1)).squeeze(1)

    def scan(self, frame):
        """Logits of every 100 x 100 window at stride 8: the dense layer as a conv."""
        k = self.dense.weight.view(1, FILTERS[-1], 10, 10)
        return F.conv2d(self.features(frame), k, self.dense.bias)[0, 0]


def make_net(seed=1):
    torch.manual_seed(seed)
    net = PaperNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(0, 0.1)
                m.running_var.uniform_(0.05, 0.15)
    return net


def make_frame(side, seed=7):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    base = 90 + 60 * np.sin(x * 0.021 + 0.7 * np.sin(y * 0.013)) * np.cos(y * 0.017)
    px = np.clip(base * (0.6 + 0.8 * rng.random((side, side))), 0, 255).astype(np.uint8)
    return torch.from_numpy(px.astype(np.float32) / 255.0)


def make_patches(n, seed):
    rng = np.random.default_rng(seed)
    px = (110 + 60 * rng.random((n, 100, 100))).astype(np.float32)
    y, x = np.mgrid[0:100, 0:100]
    labels = np.arange(n) % 2
    for i in range(1, n, 2):
        cx, cy, r = 30 + 40 * rng.random(), 30 + 40 * rng.random(), 12 + 15 * rng.random()
        px[i][(x - cx) ** 2 + (y - cy) ** 2 < r * r] *= 0.35
    return torch.from_numpy(px.astype(np.uint8)), torch.from_numpy(labels.astype(np.float32))


def batch(px, idx):
    """uint8 [n, 100, 100] -> float [n, 3, 100, 100] / 255, as lymphdet forms batches."""
    return (px[idx].float() / 255.0).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def conv_gflop(sizes, train):
    """Network GFLOP for conv input sides `sizes` (one per block) and the dense layer."""
    fl, cin = 0.0, 3
    for k, (h, w) in enumerate(sizes):
        c = 2.0 * 9 * cin * FILTERS[k] * (h - 2) * (w - 2)
        fl += c if not train else (c + c + (c if k > 0 else 0))
        cin = FILTERS[k]
    return fl


def scan_gflop(h, w):
    sizes = []
    for _ in FILTERS:
        sizes.append((h, w))
        h, w = (h - 2) // 2, (w - 2) // 2
    nh, nw = h - 9, w - 9
    return (conv_gflop(sizes, False) + 2.0 * FILTERS[-1] * 100 * nh * nw) * 1e-9, nh * nw


def net_gflop(n, train):
    fl = conv_gflop([(100, 100), (49, 49), (23, 23)], train) + 2.0 * 800 * (3 if train else 1)
    return n * fl * 1e-9


class KerasAdam:
    """Keras's Adam: the bias corrections fold into the step, eps outside them."""

    def __init__(self, params, lr=1e-4, b1=0.9, b2=0.999, eps=1e-7):
        self.params = [p for p in params if p.requires_grad]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        a = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for p, m, v in zip(self.params, self.m, self.v):
            m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-a)


def train_step(net, opt, x, y):
    net.train()
    for p in opt.params:
        p.grad = None
    loss = F.binary_cross_entropy_with_logits(net(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def fit(train_px, train_y, val_px, val_y, epochs, seed=1):
    net = make_net(seed)
    opt = KerasAdam(net.parameters())
    g = torch.Generator().manual_seed(seed)
    n = len(train_y)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for b in range(0, n, 5):
            idx = order[b:b + 5]
            train_step(net, opt, batch(train_px, idx), train_y[idx])
        if val_px is not None:
            net.eval()
            with torch.no_grad():
                for b in range(0, len(val_y), 5):
                    idx = torch.arange(b, min(b + 5, len(val_y)))
                    F.binary_cross_entropy_with_logits(net(batch(val_px, idx)), val_y[idx])


def nms(boxes, scores, iou):
    order, keep = torch.argsort(scores, descending=True).tolist(), []
    for i in order:
        ok = True
        for j in keep:
            xx1, yy1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            xx2, yy2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
            a_i = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
            a_j = (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1])
            if inter / (a_i + a_j - inter) > iou:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def time_median(fn, quick):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first < 0.2:
        fn()
    reps = 3 if first > 1.0 else int(1.0 / max(first, 1e-6))
    if quick:
        reps //= 4
    reps = max(reps, 1 if first > 1.0 else 5)
    reps = min(reps, 200)
    t = []
    for _ in range(reps):
        a = time.perf_counter()
        fn()
        t.append(time.perf_counter() - a)
    t.sort()
    med = t[reps // 2] if reps % 2 else 0.5 * (t[reps // 2 - 1] + t[reps // 2])
    return med * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tsv", action="store_true")
    ap.add_argument("--only", default=None, help="comma list of keys (trailing * for a prefix)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(False)

    def wanted(key):
        if not args.only:
            return True
        for k in args.only.split(","):
            if k == key or (k.endswith("*") and key.startswith(k[:-1])):
                return True
        return False

    def report(key, ms, work, unit, gflop, what):
        if args.tsv:
            print(f"{key}\t{ms:.4f}\t{work:.0f}\t{unit}\t{gflop:.6f}", flush=True)
        else:
            rate = f"{work / (ms / 1e3):.0f} {unit}/s" if work else ""
            gfs = f"{gflop / (ms / 1e3):.1f}" if gflop else ""
            print(f"{key:<18} {ms:10.3f} ms {rate:>18} {gfs:>8}  {what}", flush=True)

    if not args.tsv:
        print(f"peer_torch: torch {torch.__version__}, {args.threads} thread(s)")
    if wanted("sgemm"):
        # torch's oneDNN matrix product (what its mkldnn Linear runs): Debian's torch
        # links the netlib reference BLAS, so torch.mm is no measure of the core
        a, b = torch.rand(2048, 2048).to_mkldnn(), torch.rand(2048, 2048).to_mkldnn()
        ms = time_median(lambda: torch._C._nn.mkldnn_linear(a, b, None), args.quick)
        report("sgemm", ms, 0, "", 2 * 2048.0 ** 3 * 1e-9,
               "2048 x 2048 float32 product, oneDNN (torch mkldnn_linear): the peak")
    if wanted("sgemm_blas"):
        a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
        ms = time_median(lambda: torch.mm(a, b), True)
        report("sgemm_blas", ms, 0, "", 2 * 1024.0 ** 3 * 1e-9,
               "1024 x 1024 torch.mm through the system BLAS (netlib reference here)")

    net = make_net().eval()
    for side in (469, 938, 1876):
        key = f"scan{side}"
        if not wanted(key):
            continue
        frame = make_frame(side).expand(1, 3, side, side).contiguous()

        def run():
            with torch.no_grad():
                torch.sigmoid(net.scan(frame))
        gf, windows = scan_gflop(side, side)
        report(key, time_median(run, args.quick), windows, "windows", gf,
               f"{side}x{side} frame, stride 8, one scale")

    if wanted("pyramid469"):
        frame = make_frame(469)[None, None]
        gf_total, win_total = 0.0, 0
        for s in PYRAMID:
            side = round(469 * s)
            if side >= 100:
                g, w = scan_gflop(side, side)
                gf_total, win_total = gf_total + g, win_total + w

        def run():
            boxes, scores = [], []
            with torch.no_grad():
                for s in PYRAMID:
                    side = round(469 * s)
                    if side < 100:
                        continue
                    lvl = F.interpolate(frame, size=(side, side), mode="bilinear",
                                        align_corners=False, antialias=True)
                    p = torch.sigmoid(net.scan(lvl.expand(1, 3, side, side)))
                    iy, ix = torch.nonzero(p > 0.95, as_tuple=True)
                    f = 469 / side
                    for yy, xx in zip(iy.tolist(), ix.tolist()):
                        boxes.append([xx * 8 * f, yy * 8 * f, (xx * 8 + 100) * f, (yy * 8 + 100) * f])
                        scores.append(float(p[yy, xx]))
            if boxes:
                nms(boxes, torch.tensor(scores), 0.3)
        report("pyramid469", time_median(run, args.quick), win_total, "windows", gf_total,
               "469x469 frame, pyramid 2,1.41,1,0.71,0.5,0.35, stride 8, NMS")

    if wanted("windows469"):
        frame = make_frame(469)

        def run():
            with torch.no_grad():
                win = frame.unfold(0, 100, 8).unfold(1, 100, 8).reshape(-1, 100, 100)
                for b in range(0, win.shape[0], 64):
                    x = win[b:b + 64].unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
                    torch.sigmoid(net(x))
        report("windows469", time_median(run, args.quick), 2209, "windows", net_gflop(2209, False),
               "469x469 frame, 2209 windows cut out and classified in batches of 64")

    if wanted("train_step"):
        tnet = make_net()
        opt = KerasAdam(tnet.parameters())
        px, y = make_patches(5, 4)
        x = batch(px, torch.arange(5))
        report("train_step", time_median(lambda: train_step(tnet, opt, x, y), args.quick), 5,
               "patches", net_gflop(5, True),
               "one training step, batch 5 (forward, BCE, backward, Keras Adam)")

    for n in (434, 868, 1736):
        key = f"train_epoch_{n}"
        if not wanted(key):
            continue
        px, y = make_patches(n, 5)
        report(key, time_median(lambda: fit(px, y, None, None, 1), args.quick), n, "patches",
               net_gflop(n, True), f"one epoch over {n} patches, batch 5, no validation")

    if wanted("train_paper") and not args.quick:
        px, y = make_patches(1736, 6)
        perm = torch.randperm(1736, generator=torch.Generator().manual_seed(1))
        tr, va = perm[:1562], perm[1562:]
        ms = time_median(lambda: fit(px[tr], y[tr], px[va], y[va], 20), True)
        report("train_paper", ms, 1736 * 20, "patches",
               20 * (net_gflop(1562, True) + net_gflop(174, False)),
               "the paper's training: 1562 + 174 patches, 20 epochs, validation each epoch")


if __name__ == "__main__":
    sys.exit(main())
