#!/usr/bin/env python3
"""torchvision's side of tests/interop/test_augment_torchvision.cpp.

  ops  --image IN --width W --height H --ops LIST --out DIR [--fill R,G,B]
       applies each line "OpName magnitude" of LIST with torchvision.transforms.autoaugment._apply_op (uint8
       tensor path, nearest interpolation) to the raw HWC RGB image IN; writes DIR/<line>.raw (HWC bytes).
  bins --width W --height H --bins N --out FILE
       writes the magnitudes of TrivialAugmentWide's and RandAugment's augmentation spaces, one line per op:
       "<policy> <op> <signed> <values...>" (values as float reprs; "-" for none).
"""
import argparse

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import RandAugment, TrivialAugmentWide, _apply_op


def read_image(path, width, height):
    data = open(path, "rb").read()
    assert len(data) == width * height * 3, "image size mismatch"
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(height, width, 3)
    return t.permute(2, 0, 1).contiguous()


def run_ops(a):
    img = read_image(a.image, a.width, a.height)
    fill = [float(v) for v in a.fill.split(",")] if a.fill else None
    for k, line in enumerate(open(a.ops).read().splitlines()):
        name, mag = line.split()
        out = _apply_op(img, name, float(mag), interpolation=InterpolationMode.NEAREST, fill=fill)
        with open(f"{a.out}/{k}.raw", "wb") as f:
            f.write(bytes(out.permute(1, 2, 0).contiguous().flatten().tolist()))


def run_bins(a):
    lines = []
    spaces = [("trivialaugment", TrivialAugmentWide()._augmentation_space(a.bins)),
              ("randaugment", RandAugment()._augmentation_space(a.bins, (a.height, a.width)))]
    for policy, space in spaces:
        for op, (mags, signed) in space.items():
            vals = [repr(float(v)) for v in mags.flatten().tolist()] if mags.ndim > 0 else ["-"]
            lines.append(f"{policy} {op} {int(signed)} " + " ".join(vals))
    open(a.out, "w").write("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ops", "bins"])
    p.add_argument("--image")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--ops")
    p.add_argument("--out")
    p.add_argument("--fill")
    p.add_argument("--bins", type=int, default=31)
    a = p.parse_args()
    run_ops(a) if a.mode == "ops" else run_bins(a)


if __name__ == "__main__":
    main()
