#!/usr/bin/python3
"""Data-parallel scaling model for ResNet-50 (issue 13): ring all-reduce of the gradients, bucketed in
reverse registration order as dist::DataParallel does, overlapped with the backward pass.

  /usr/bin/python3 tools/scaling_model.py   (Debian python3-torch, python3-torchvision) [--bucket-mb 25] [--batch 128]

Inputs, all stated so the model can be re-run with better ones:
- Parameters and per-layer multiply-accumulates from torchvision's resnet50 (the same tensors as ours, in
  registration order); the backward pass takes 2/3 of a step and each layer's share of it is its share of
  the MACs (convolution backward is two GEMMs of the forward's size; BatchNorm and ReLU are ignored).
- Step times measured on one H200 (benchmarks/RESULTS.md, bench_train, batch 128, 224 px): float32
  2,766 img/s, bfloat16 activations 4,138 img/s.
- Ring all-reduce of S bytes over n ranks: t = alpha + 2 (n-1)/n * S / busbw (NCCL's bus bandwidth), one
  collective at a time on one stream.
- Links: NVLink 4 at 450 GB/s bus bandwidth inside a machine (8 x H200); between machines 400 Gb/s
  InfiniBand at 90% of line rate (45 GB/s) per NIC, either one NIC per GPU (8 per machine, HGX) or one
  per machine; hierarchical: reduce-scatter in the machine, all-reduce of each GPU's 1/8 across machines,
  all-gather in the machine.
- Gradients are float32 (our master weights are float32 whatever the activations); the bfloat16 rows
  show what all-reducing them in bfloat16 would leave.
"""
import argparse

import torch
import torchvision

NVLINK_BUSBW = 450e9
NIC_BW = 400e9 / 8 * 0.9
ALPHA_NVLINK = 15e-6
ALPHA_IB = 30e-6


def layer_table():
    """[(param numel, layer MACs share key)] in registration order, and MACs per module."""
    model = torchvision.models.resnet50()
    macs = {}

    def hook(name):
        def f(mod, inp, out):
            if isinstance(mod, torch.nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                macs[name] = out.numel() * k
            elif isinstance(mod, torch.nn.Linear):
                macs[name] = mod.in_features * mod.out_features

        return f

    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            mod.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    params = []
    for name, p in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        params.append((name, p.numel(), module))
    return params, macs


def ring(nbytes, n, busbw, alpha):
    if n <= 1:
        return 0.0
    return alpha + 2 * (n - 1) / n * nbytes / busbw


def allreduce_time(nbytes, machines, gpus, nic_per_gpu):
    """Hierarchical: in-machine reduce-scatter + all-gather on NVLink, across machines on IB."""
    if machines == 1:
        return ring(nbytes, gpus, NVLINK_BUSBW, ALPHA_NVLINK)
    intra = ring(nbytes, gpus, NVLINK_BUSBW, ALPHA_NVLINK)  # reduce-scatter + all-gather = one ring's bytes
    shard = nbytes / gpus
    per_gpu_bw = NIC_BW if nic_per_gpu else NIC_BW / gpus  # one NIC shared by the machine's 8 GPUs
    inter = ring(shard, machines, per_gpu_bw, ALPHA_IB)
    return intra + inter


def simulate(params, macs, bucket_bytes, grad_bytes, step_s, machines, gpus, nic_per_gpu):
    backward_s = step_s * 2 / 3
    total_macs = sum(macs.values())
    # Backward visits modules in reverse; a module's parameters are ready when its backward is done.
    order = []
    seen = set()
    for name, numel, module in reversed(params):
        if module not in seen:
            seen.add(module)
            order.append(module)
    t = 0.0
    ready_at = {}
    for module in order:
        # BN modules have no MACs here: ready when the convolution before them (in backward: after) runs.
        t += backward_s * macs.get(module, 0) / total_macs
        ready_at[module] = t
    buckets = []  # (bytes, ready time)
    cur_bytes, cur_ready = 0, 0.0
    for name, numel, module in reversed(params):
        nb = numel * grad_bytes
        # dist::DataParallel's rule: a parameter that would overflow a non-empty bucket starts the next one.
        if cur_bytes > 0 and cur_bytes + nb > bucket_bytes:
            buckets.append((cur_bytes, cur_ready))
            cur_bytes, cur_ready = 0, 0.0
        cur_bytes += nb
        cur_ready = max(cur_ready, ready_at[module])
    if cur_bytes:
        buckets.append((cur_bytes, cur_ready))
    end = 0.0
    comm = 0.0
    for nbytes, ready in buckets:
        d = allreduce_time(nbytes, machines, gpus, nic_per_gpu)
        comm += d
        end = max(end, ready) + d
    exposed = max(0.0, end - backward_s)
    return dict(buckets=len(buckets), last_mb=buckets[-1][0] / 1e6, comm_ms=comm * 1e3,
                exposed_ms=exposed * 1e3, eff=step_s / (step_s + exposed),
                no_overlap_eff=step_s / (step_s + comm))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bucket-mb", type=float, default=25)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    params, macs = layer_table()
    n = sum(p[1] for p in params)
    print(f"ResNet-50: {n:,} parameters; float32 gradients {n * 4 / 1e6:.1f} MB, bfloat16 {n * 2 / 1e6:.1f} MB")
    rates = {"float32": 2766.0, "bfloat16": 4138.0}
    print("| activations | gradients | machines x GPUs | inter-machine | step ms | all-reduce ms (sum) | exposed ms "
          "| efficiency | without overlap |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for act, rate in rates.items():
        step = args.batch / rate
        for grad_name, grad_bytes in (("float32", 4), ("bfloat16", 2)):
            if act == "float32" and grad_name == "bfloat16":
                continue
            for machines, nic in ((1, True), (2, True), (4, True), (16, True), (2, False), (16, False)):
                r = simulate(params, macs, args.bucket_mb * 2**20, grad_bytes, step, machines, 8, nic)
                link = "NVLink" if machines == 1 else ("8 NICs" if nic else "1 NIC")
                print(f"| {act} | {grad_name} | {machines} x 8 | {link} | {step * 1e3:.1f} | {r['comm_ms']:.2f} | "
                      f"{r['exposed_ms']:.2f} | {r['eff'] * 100:.1f}% | {r['no_overlap_eff'] * 100:.1f}% |")
    print()
    print("Bucket size, float32, 16 x 8 GPUs with 1 NIC per machine (the tightest row):")
    print("| bucket MB | buckets | last bucket MB | exposed ms | efficiency |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for mb in (1, 5, 25, 100, 1000):
        r = simulate(params, macs, mb * 2**20, 4, args.batch / rates["float32"], 16, 8, False)
        print(f"| {mb} | {r['buckets']} | {r['last_mb']:.1f} | {r['exposed_ms']:.2f} | {r['eff'] * 100:.1f}% |")


if __name__ == "__main__":
    main()
