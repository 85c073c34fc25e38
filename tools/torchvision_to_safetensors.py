#!/usr/bin/python3
"""Turns torchvision ResNet weights (.pth) into a resnet checkpoint (safetensors with our metadata), so
`train_catsdogs train --init` and `infer::Classifier` can start from ImageNet weights.

  torchvision_to_safetensors.py WEIGHTS.pth OUT.safetensors --arch resnet50 [--classes FILE]
      [--eval-size 224] [--eval-crop 0.875]
      WEIGHTS.pth: a state_dict saved with torch.save (e.g. from torchvision's download cache,
      ~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth) or a whole pickled model. --classes: a text
      file with one class name a line (default: "0" .. "N-1").
  torchvision_to_safetensors.py --random ARCH OUT.pth [--num-classes N] [--seed S]
      writes a randomly initialised torchvision model's state_dict (random BatchNorm statistics too), for
      tests: there is no network here to download pretrained weights.

PyTorch side only (Debian's python3-torch, python3-torchvision). Exits 77 when torch is missing.
"""
import argparse
import json
import os
import struct
import sys

try:
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"torchvision_to_safetensors: {sys.executable} cannot import torch/torchvision ({e})", file=sys.stderr)
    sys.exit(77)

ARCHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
TO_ST = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in TO_ST:
            sys.exit(f"torchvision_to_safetensors: tensor '{name}' has unsupported dtype {t.dtype}")
        blob = t.numpy().tobytes()  # little-endian on every machine we run on
        header[name] = {"dtype": TO_ST[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:  # a temporary, renamed: an interrupted run never leaves half a file
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        sys.exit(f"torchvision_to_safetensors: '{path}' holds no state_dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def convert(args):
    sd = load_state_dict(args.weights)
    if "fc.weight" not in sd:
        sys.exit(f"torchvision_to_safetensors: '{args.weights}' has no fc.weight: not a torchvision ResNet")
    num_classes = sd["fc.weight"].shape[0]
    # Check names and shapes against torchvision's own model of that architecture.
    ref = getattr(torchvision.models, args.arch)(num_classes=num_classes).state_dict()
    missing = sorted(set(ref) - set(sd))
    unexpected = sorted(set(sd) - set(ref))
    bad = [k for k in ref if k in sd and tuple(ref[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or bad:
        sys.exit(f"torchvision_to_safetensors: '{args.weights}' is not a torchvision {args.arch}: "
                 f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad[:3]}")
    if args.classes:
        with open(args.classes, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != num_classes:
            sys.exit(f"torchvision_to_safetensors: {args.classes} has {len(names)} names, the model {num_classes} classes")
    else:
        names = [str(i) for i in range(num_classes)]
    tensors = {k: sd[k] for k in ref}  # torchvision's order
    meta = {"format": "resnet.checkpoint", "format_version": "1", "arch": args.arch, "epoch": "0", "step": "0",
            "lr": "0", "optimizer": "", "schedule": "", "seed": "0", "class_names": json.dumps(names),
            "extra.eval-size": str(args.eval_size), "extra.eval-crop": repr(args.eval_crop),
            "extra.source": os.path.basename(args.weights)}
    save_safetensors(args.out, tensors, meta)
    print(f"wrote {args.out}: {args.arch}, {num_classes} classes, {len(tensors)} tensors")


def make_random(args):
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)(num_classes=args.num_classes)
    with torch.no_grad():  # random statistics, so BatchNorm folding and loading are really tested
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out}: random {args.arch}, {args.num_classes} classes")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random", metavar="ARCH", choices=ARCHS, help="write a random torchvision model instead")
    p.add_argument("weights", nargs="?", help="torchvision .pth file")
    p.add_argument("out", nargs="?", help="output file")
    p.add_argument("--arch", choices=ARCHS)
    p.add_argument("--classes")
    p.add_argument("--eval-size", type=int, default=224)
    p.add_argument("--eval-crop", type=float, default=0.875)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.random:
        if not args.weights or args.out:
            p.error("--random ARCH takes one argument, OUT.pth")
        args.arch, args.out = args.random, args.weights
        make_random(args)
        return
    if not args.weights or not args.out or not args.arch:
        p.error("need WEIGHTS.pth OUT.safetensors --arch ARCH")
    convert(args)


if __name__ == "__main__":
    main()
