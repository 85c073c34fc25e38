#!/usr/bin/python3
"""PyTorch side of bench_infer: images/s of a torchvision ResNet in eval mode under no_grad, unfused and with
conv + BatchNorm folded (torch.fx.experimental.optimization.fuse), same shapes and threads as ours.
Prints one line per variant: `torch <variant> <images_per_s>`. Exits 77 without torch."""
import argparse
import sys
import time

try:
    import torch
    import torchvision
    from torch.fx.experimental.optimization import fuse
except ImportError as e:  # pragma: no cover
    print(f"bench_infer_torch: cannot import torch ({e})", file=sys.stderr)
    sys.exit(77)

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet18")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--size", type=int, default=128)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--classes", type=int, default=1000)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = getattr(torchvision.models, a.arch)(num_classes=a.classes).eval()
x = torch.randn(a.batch, 3, a.size, a.size)
for name, m in (("unfused", model), ("fused", fuse(model))):
    with torch.no_grad():
        for _ in range(a.warmup):
            m(x)
        t = time.perf_counter()
        for _ in range(a.steps):
            m(x)
        dt = time.perf_counter() - t
    print(f"torch {name} {a.batch * a.steps / dt:.2f}", flush=True)
