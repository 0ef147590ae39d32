#!/usr/bin/env python3
"""Copies the bundled demo subset of BUSI into data/busi-demo/.

Deterministic: every image whose COCO id is a multiple of 13 (60 of 780 images:
benign, malignant and normal), with its annotations and every per-image field
unchanged. Usage: python3 tools/make_demo_subset.py ../shared/data/busi data/busi-demo
"""
import json
import os
import shutil
import sys


def main(src, dst):
    with open(os.path.join(src, "annotations.json")) as f:
        coco = json.load(f)
    images = [im for im in coco["images"] if im["id"] % 13 == 0]
    keep = {im["id"] for im in images}
    coco["images"] = images
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    coco["info"]["description"] += " -- lymphdet demo subset: image ids that are multiples of 13"
    os.makedirs(os.path.join(dst, "images"), exist_ok=True)
    for im in images:
        shutil.copyfile(os.path.join(src, "images", im["file_name"]),
                        os.path.join(dst, "images", im["file_name"]))
    with open(os.path.join(dst, "annotations.json"), "w") as f:
        json.dump(coco, f, indent=1)
        f.write("\n")
    print(f"{len(images)} images, {len(coco['annotations'])} boxes -> {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
