#!/usr/bin/python3
"""make_seeds.py — writes the seed corpora fuzz/corpus/<target>/ (run by hand, from the
repository root: /usr/bin/python3 fuzz/make_seeds.py; needs only the standard library).

Seeds are the test fixtures (tests/fixtures/...) in the layout each target reads
(fuzz/fuzz_util.h: parts cut at the separator line), plus a few hand-written files that
reach code the fixtures do not (a tiny one-block model, results entries of every kind).
Files the fuzzer found interesting are added to the corpora by `-merge=1` runs
(docs/reliability.md); this script only writes the seeds (files named seed_*)."""
import glob
import json
import os
import struct

SEP = b"\n--8<--\n"
FIX = "tests/fixtures"


def out(target, name, data):
    d = os.path.join("fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def image():
    for p in sorted(glob.glob(FIX + "/images/*.jpg") + glob.glob(FIX + "/images/*.png")):
        if os.path.getsize(p) <= 4096:
            out("image", os.path.basename(p), read(p))


def safetensors(meta, tensors):
    """tensors: list of (name, shape, list of floats), written in that order"""
    header = {"__metadata__": meta}
    data, off = b"", 0
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def model():
    for p in sorted(glob.glob(FIX + "/models/*.safetensors")):
        out("model", os.path.basename(p), read(p))
    # one block of 1 filter on a 1-channel 8x8 input: 8 -> 6 -> 3, 9 dense inputs
    meta = {"format": "pt", "preset": "tiny", "input_size": "8", "in_channels": "1",
            "filters": "1", "dropout": "0", "bn_epsilon": "0.001", "bn_momentum": "0.99"}
    t = [("conv1.weight", [1, 1, 3, 3], [0.1 * k for k in range(9)]),
         ("conv1.bias", [1], [0.5]), ("bn1.weight", [1], [1.0]), ("bn1.bias", [1], [0.0]),
         ("bn1.running_mean", [1], [0.0]), ("bn1.running_var", [1], [1.0]),
         ("dense.weight", [1, 9], [0.01 * k for k in range(9)]), ("dense.bias", [1], [-0.1])]
    tiny = safetensors(meta, t)
    out("model", "tiny.safetensors", tiny)
    out("model", "tiny_truncated.safetensors", tiny[:-5])
    out("model", "header_only.safetensors", tiny[:8])


def coco():
    for p in sorted(glob.glob(FIX + "/labels/coco/*.json") + glob.glob(FIX + "/labels/bad/*.json")):
        out("coco", os.path.basename(p), read(p))
    # sizes left to the image file, a traversal and a box object
    out("coco", "probe.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "x/c.png"},
                   {"id": 3, "file_name": "../../etc/passwd", "width": 9, "height": 9}],
        "categories": [{"id": 1, "name": "Node"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
                        {"id": 1, "image_id": 2, "category_id": 1,
                         "bbox": {"x": 1, "y": 1, "width": 48.5, "height": 20}}]}).encode())


def voc():
    out("voc", "pair.xml", read(FIX + "/labels/voc/a.xml") + SEP + read(FIX + "/labels/voc/b.xml"))
    for d in sorted(glob.glob(FIX + "/labels/voc_*")):
        out("voc", os.path.basename(d) + ".xml", read(d + "/a.xml"))


def yolo():
    for d in sorted(glob.glob(FIX + "/labels/yolo_*")):
        names = d + "/classes.txt" if os.path.exists(d + "/classes.txt") else d + "/data.yaml"
        parts = [read(names), read(d + "/a.txt")]
        if os.path.exists(d + "/b.txt"):
            parts.append(read(d + "/b.txt"))
        out("yolo", os.path.basename(d) + ".txt", SEP.join(parts))
    out("yolo", "no_names.txt", SEP.join([b"", b"0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.1 0.1\n",
                                          b"1 0.5 0.5 1 1"]))


def results():
    e = [{"image_id": 1, "file_name": "a.png", "category_id": 1, "bbox": [1.5, 2, 10, 8],
          "score": 0.97},
         {"image_id": 7, "category_id": 2, "bbox": [0, 0, 50, 20], "score": 1},
         {"image_id": 2, "file_name": "b.jpg", "category_id": 1, "bbox": [3, 4, 0, 0],
          "score": 0}]
    out("results", "ok.json", json.dumps(e).encode())
    out("results", "empty.json", b"[]\n")
    out("results", "wrong_name.json", json.dumps([dict(e[0], image_id=2)]).encode())
    out("results", "bad_values.json",
        b'[{"image_id": 1.0, "category_id": 3, "bbox": [1e308, -1, 2, 2], "score": 2}]')


def f32(x):
    """the double a float32 holds, as the C writer prints it"""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def ckpt_bytes(n_params, n_train, epochs_done, history, order=None):
    """a checkpoint as include/lymphdet/checkpoint.h lays it out, for fuzz_checkpoint's
    model (one block of 2 filters, 3 x 8 x 8 input, 83 parameters)"""
    header = {"format": "lymphdet-checkpoint", "version": 1,
              "arch": {"preset": "tiny", "input_size": 8, "in_channels": 3, "filters": [2],
                       "dropout": f32(0.25), "bn_epsilon": f32(1e-3), "bn_momentum": f32(0.99)},
              "n_params": n_params,
              "train": {"epochs": 3, "batch": 5, "lr": f32(1e-4), "beta1": f32(0.9),
                        "beta2": f32(0.999), "eps": f32(1e-7), "seed": "%016x" % 12345},
              "data": {"n_train": n_train, "n_val": 2, "fingerprint": "00000000deadbeef"},
              "epochs_done": epochs_done, "adam_t": 2 * epochs_done,
              "rng": ["%016x" % (k + 1) for k in range(4)], "history": history}
    h = json.dumps(header, separators=(",", ":")).encode()
    body = b"LDCKPT1\n" + struct.pack("<Q", len(h)) + h
    body += struct.pack("<%df" % n_params, *[0.5] * n_params)          # params
    body += struct.pack("<%df" % n_params, *[0.01 * k for k in range(n_params)])  # adam m
    body += struct.pack("<%df" % n_params, *[1e-4] * n_params)         # adam v
    order = order if order is not None else list(reversed(range(n_train)))
    body += struct.pack("<%di" % n_train, *order)
    return body + struct.pack("<Q", fnv1a64(body))


def det_ckpt_bytes(n_train, epochs_done, best_epoch, history):
    """a detection-preset checkpoint (checkpoint.h) for fuzz_checkpoint's box-head model
    (the same block with a 4-output box head: 159 parameters); after the order, the
    best epoch's weights"""
    n_params = 159
    header = {"format": "lymphdet-checkpoint", "version": 1, "kind": "detect",
              "arch": {"preset": "tinydet", "input_size": 8, "in_channels": 3, "filters": [2],
                       "dropout": f32(0.25), "bn_epsilon": f32(1e-3), "bn_momentum": f32(0.99),
                       "box_head": 4, "anchor": 0},
              "n_params": n_params, "settings": "window 8; batch 2; seed 3", "epochs": 4,
              "data": {"n_train": n_train, "fingerprint": "00000000feedf00d"},
              "epochs_done": epochs_done, "adam_t": 3 * epochs_done,
              "rng": ["%016x" % (k + 7) for k in range(4)],
              "best": {"epoch": best_epoch, "tune_ap50": 0.25 if best_epoch else None,
                       "tune_ap": 0.125 if best_epoch else None},
              "history": history}
    h = json.dumps(header, separators=(",", ":")).encode()
    body = b"LDCKPT1\n" + struct.pack("<Q", len(h)) + h
    body += struct.pack("<%df" % n_params, *[0.5] * n_params)
    body += struct.pack("<%df" % n_params, *[0.01 * k for k in range(n_params)])
    body += struct.pack("<%df" % n_params, *[1e-4] * n_params)
    body += struct.pack("<%di" % n_train, *reversed(range(n_train)))
    body += struct.pack("<%df" % n_params, *[0.25] * n_params)        # best weights
    return body + struct.pack("<Q", fnv1a64(body))


def checkpoint():
    hist = [{"epoch": 1, "train_loss": 0.7, "train_acc": 0.5, "val_loss": None,
             "val_acc": None, "seconds": 0.01},
            {"epoch": 2, "train_loss": 0.6, "train_acc": 0.75, "val_loss": 0.65,
             "val_acc": 0.5, "seconds": 0.02}]
    out("checkpoint", "two_epochs.ckpt", ckpt_bytes(83, 7, 2, hist))
    out("checkpoint", "fresh.ckpt", ckpt_bytes(83, 1, 0, []))
    bad = bytearray(ckpt_bytes(83, 7, 2, hist))
    bad[-12] ^= 1
    out("checkpoint", "bad_checksum.ckpt", bytes(bad))
    out("checkpoint", "not_permutation.ckpt", ckpt_bytes(83, 3, 0, [], order=[0, 0, 2]))
    out("checkpoint", "truncated.ckpt", ckpt_bytes(83, 7, 2, hist)[:-9])
    dhist = [{"epoch": 1, "loss": 2.5, "obj_loss": 1.0, "box_loss": 1.5, "pos_per_crop": 1.2,
              "tune_ap50": None, "tune_ap": None, "seconds": 0.3},
             {"epoch": 2, "loss": 1.5, "obj_loss": 0.6, "box_loss": 0.9, "pos_per_crop": 1.3,
              "tune_ap50": 0.25, "tune_ap": 0.125, "seconds": 0.3}]
    out("checkpoint", "detect_two_epochs.ckpt", det_ckpt_bytes(5, 2, 2, dhist))
    out("checkpoint", "detect_fresh.ckpt", det_ckpt_bytes(3, 0, 0, []))


def history():
    for path in sorted(glob.glob(FIX + "/evaluate/history*.csv")):
        out("history", os.path.basename(path), read(path))
    # the detection preset's form: a loss, no accuracies
    rows = ["epoch,train_loss,train_acc,val_loss,val_acc,seconds"]
    rows += ["%d,%.6f,nan,nan,nan,%.3f" % (e, 2.0 / e, 6.4) for e in range(1, 9)]
    out("history", "detect_preset.csv", ("\n".join(rows) + "\n").encode())


if __name__ == "__main__":
    for f in (image, model, coco, voc, yolo, results, checkpoint, history):
        f()
