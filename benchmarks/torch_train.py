#!/usr/bin/python3
"""PyTorch baseline for bench_train: one measurement of torchvision's ResNet, the same step as ours.

Run by bench_train with the same shapes, threads and step counts; prints one line
    RESULT images_per_s=<float> peak_mem_mb=<float> base_mem_mb=<float> device=<str> dtype=<str>
or, when torch (or the asked-for device) is missing,
    SKIP <reason>
and exits 0 either way, so a missing baseline never fails the benchmark.

peak_mem_mb counts what the measurement itself added: on the CPU the process's resident high-water mark
minus its resident size before the model was built (the interpreter and libraries are not counted); on the
GPU the caching allocator's peak.
"""
import argparse
import resource
import sys
import time


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--channels-last", action="store_true", help="use torch.channels_last memory format")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (PyTorch 2.0 and newer; SKIP where it is missing)")
    a = ap.parse_args()

    try:
        import torch
        import torchvision
    except ImportError as e:  # the baseline is optional
        print(f"SKIP torch/torchvision not importable ({e})")
        return 0
    if a.device == "cuda" and not torch.cuda.is_available():
        print("SKIP torch has no usable CUDA device")
        return 0

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.device == "cuda":
        # As a PyTorch user tuning for speed would: let cuDNN time its algorithms per shape (ours does too).
        # TF32 stays at PyTorch's defaults (on for convolutions, off for matrix products); ours has it on
        # for both (RESNET_TF32=0 turns it off), which only touches the small classifier here.
        torch.backends.cudnn.benchmark = True
    dev = torch.device(a.device)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[a.dtype]
    if a.device == "cpu" and a.dtype == "float16":
        print("SKIP float16 is measured on the GPU only (the CPU baseline is bfloat16 autocast)")
        return 0

    if a.compile and not hasattr(torch, "compile"):
        print(f"SKIP torch {torch.__version__} has no torch.compile (PyTorch 2.0 and newer)")
        return 0

    base = rss_mb()
    model = getattr(torchvision.models, a.arch)(num_classes=a.classes).to(dev)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if a.compile:
        # The default mode, as a user's first try would be; compilation happens in the warm-up steps.
        model = torch.compile(model)
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev).to(memory_format=fmt)
    labels = torch.randint(0, a.classes, (a.batch,), device=dev)
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    if a.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        loss_fn = torch.nn.CrossEntropyLoss()
        # Lower precision: autocast, as a PyTorch user would write it (master weights float32); on the CPU
        # that is torch.autocast("cpu", dtype=torch.bfloat16), best in channels_last.
        use_amp = a.dtype != "float32"

        def step():
            opt.zero_grad(set_to_none=False)
            if use_amp:
                with torch.autocast(device_type=a.device, dtype=dtype):
                    loss = loss_fn(model(x), labels)
            else:
                loss = loss_fn(model(x), labels)
            loss.backward()
            opt.step()
    else:
        model.eval()
        if a.dtype != "float32":
            model = model.to(dtype)
            x = x.to(dtype)

        def step():
            with torch.inference_mode():
                model(x)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = time.perf_counter() - t0
    if a.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / (1024.0 * 1024.0)
    else:
        peak = hwm_mb() - base
    print(f"RESULT images_per_s={a.batch * a.steps / dt:.3f} peak_mem_mb={peak:.1f} base_mem_mb={base:.1f} "
          f"device={a.device} dtype={a.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
