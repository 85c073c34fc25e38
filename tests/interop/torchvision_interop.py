#!/usr/bin/python3
"""Weights interoperability between resnet (C++) and torchvision, through safetensors files.

  export --arch resnet18 --out DIR   builds a torchvision model with random weights and random BatchNorm
                                     statistics, writes DIR/<arch>_torch_weights.safetensors (its state_dict)
                                     and DIR/<arch>_torch_io.safetensors (an input batch and its eval logits).
  check --arch resnet18 --weights W --io IO
                                     loads our checkpoint W into torchvision (strict: every name, dtype and
                                     shape must match; our optimizer.* tensors are skipped), runs IO's input
                                     in eval mode and compares with IO's logits (relative error under 1e-4).

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision). Exits 77 when torch is missing, so
callers can report a skip. The safetensors reader and writer are written out here on purpose: the
`safetensors` package is not in Debian, and a second, independent implementation is a better test.
"""
import argparse
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"torchvision_interop: {sys.executable} cannot import torch/torchvision ({e})", file=sys.stderr)
    sys.exit(77)

TO_ST = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.int64: "I64",
         torch.int32: "I32", torch.uint8: "U8"}
FROM_ST = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        blob = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": TO_ST[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(FROM_ST[info["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(arr.copy()).reshape(info["shape"])
    return tensors, metadata


def build(arch):
    return getattr(torchvision.models, arch)(weights=None)


def randomize_batchnorm(model, gen):
    # Default BN state (weight 1, bias 0, mean 0, var 1) would hide a swapped or ignored statistic.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))


def relative_error(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-12))


def export(args):
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = build(args.arch)
    randomize_batchnorm(model, gen)
    model.eval()
    x = torch.randn(2, 3, args.size, args.size, generator=gen)
    with torch.no_grad():
        logits = model(x)
    os.makedirs(args.out, exist_ok=True)
    save_safetensors(os.path.join(args.out, f"{args.arch}_torch_weights.safetensors"), model.state_dict())
    save_safetensors(os.path.join(args.out, f"{args.arch}_torch_io.safetensors"), {"input": x, "logits": logits})
    print(f"exported torchvision {args.arch} ({sum(p.numel() for p in model.parameters())} parameters), "
          f"logits {tuple(logits.shape)}")
    return 0


def check(args):
    weights, metadata = load_safetensors(args.weights)
    if metadata.get("arch", args.arch) != args.arch:
        print(f"check: {args.weights} holds a {metadata['arch']}, not a {args.arch}", file=sys.stderr)
        return 1
    state = {k: v for k, v in weights.items() if not k.startswith("optimizer.")}
    model = build(args.arch)
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k}: {state[k].dtype}{list(state[k].shape)} vs torchvision {v.dtype}{list(v.shape)}"
                 for k, v in expected.items() if k in state and (state[k].dtype != v.dtype or state[k].shape != v.shape)]
    if problems:
        print(f"check: {args.weights} does not match torchvision {args.arch}:\n  " + "\n  ".join(problems[:20]),
              file=sys.stderr)
        return 1
    model.load_state_dict(state, strict=True)
    model.eval()
    io, _ = load_safetensors(args.io)
    with torch.no_grad():
        logits = model(io["input"])
    err = relative_error(logits, io["logits"])
    ok = err < 1e-4
    print(f"torchvision {args.arch} with our weights: logits {tuple(logits.shape)}, relative error {err:.3g} "
          f"({'ok' if ok else 'TOO LARGE'}, limit 1e-4)")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--arch", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--size", type=int, default=64)
    c = sub.add_parser("check")
    c.add_argument("--arch", required=True)
    c.add_argument("--weights", required=True)
    c.add_argument("--io", required=True)
    args = p.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return export(args) if args.cmd == "export" else check(args)


if __name__ == "__main__":
    sys.exit(main())
