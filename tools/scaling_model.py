#!/usr/bin/python3
"""Data-parallel scaling model for ResNet-50: ring all-reduce of the gradients, bucketed in
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


def layer_table(arch="resnet50", size=224):
    """[(param numel, layer MACs share key)] in registration order, and MACs per module."""
    model = getattr(torchvision.models, arch)()
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
        model(torch.zeros(1, 3, size, size))
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


def ready_from_macs(params, macs, backward_s):
    """[(name, numel, ready s)] in registration order: backward visits modules in reverse, each taking its
    share of the MACs of backward_s; a module's parameters are ready when its backward is done."""
    total_macs = sum(macs.values())
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
    return [(name, numel, ready_at[module]) for name, numel, module in params]


def make_buckets(ready, bucket_bytes, grad_bytes):
    """[(bytes, ready s)] in launch order from [(name, numel, ready s)] in registration order."""
    buckets = []
    cur_bytes, cur_ready = 0, 0.0
    for name, numel, t in reversed(ready):
        nb = numel * grad_bytes
        # dist::DataParallel's rule: a parameter that would overflow a non-empty bucket starts the next one.
        if cur_bytes > 0 and cur_bytes + nb > bucket_bytes:
            buckets.append((cur_bytes, cur_ready))
            cur_bytes, cur_ready = 0, 0.0
        cur_bytes += nb
        cur_ready = max(cur_ready, t)
    if cur_bytes:
        buckets.append((cur_bytes, cur_ready))
    return buckets


def overlap(buckets, backward_s, allreduce_s):
    """One collective at a time, each launched when its bucket is ready: (comm s, exposed s), exposed being
    what is left after backward ends."""
    end = 0.0
    comm = 0.0
    for nbytes, ready in buckets:
        d = allreduce_s(nbytes)
        comm += d
        end = max(end, ready) + d
    return comm, max(0.0, end - backward_s)


def overlap_shared(buckets, backward_s, alpha, wire, link_bps, mpi_bps, share, dt=1e-4):
    """overlap() for ranks with no core to spare: communication and the backward pass share the cores.
    While a collective is in flight during the backward, the backward runs at (1 - share) of its speed and
    the collective gets `share` of the CPU it needs: each byte waits for the link (link_bps) and then for
    the communication thread's turn on a core (share * mpi_bps, MPI's rate when the CPU is the limit), one
    after the other, as the thread feeds the socket only when it runs; once the backward is done the
    collective has the CPU to itself and moves at link_bps.
    A collective of n bytes costs alpha, then wire(n) bytes to send at that rate. Bucket ready times and
    backward_s are in backward-alone seconds. Returns (exposed s, stretch s): what is left after the
    backward ends, and how much longer the backward took."""
    t = work = 0.0
    i = 0
    queue = []  # [alpha left, bytes left] of launched collectives, the first in flight
    end_backward = None
    while True:
        computing = work < backward_s
        if not computing and end_backward is None:
            end_backward = t
        while i < len(buckets) and (not computing or buckets[i][1] <= work):
            queue.append([alpha, wire(buckets[i][0])])
            i += 1
        if not computing and not queue:
            return t - end_backward, end_backward - backward_s
        if computing:
            work += dt * ((1 - share) if queue else 1.0)
        if queue:
            c = queue[0]
            if c[0] > 0:
                c[0] -= dt
            else:
                if not computing:
                    rate = link_bps
                else:
                    rate = 1 / (1 / link_bps + 1 / (mpi_bps * share)) if share > 0 else 0.0
                c[1] -= dt * rate / 8
            if c[0] <= 0 and c[1] <= 0:
                queue.pop(0)
        t += dt


def simulate(params, macs, bucket_bytes, grad_bytes, step_s, machines, gpus, nic_per_gpu):
    backward_s = step_s * 2 / 3
    buckets = make_buckets(ready_from_macs(params, macs, backward_s), bucket_bytes, grad_bytes)
    comm, exposed = overlap(buckets, backward_s, lambda nb: allreduce_time(nb, machines, gpus, nic_per_gpu))
    return dict(buckets=len(buckets), last_mb=buckets[-1][0] / 1e6, comm_ms=comm * 1e3,
                exposed_ms=exposed * 1e3, eff=step_s / (step_s + exposed),
                no_overlap_eff=step_s / (step_s + comm))


# ---- Measured against: 2 hosts over one TCP link (tools/bench_multinode.sh on tools/netns_cluster.sh) ----

# TCP payload per byte on the wire: 1448 of each 1514-byte Ethernet frame (MTU 1500, IPv4 and TCP headers
# with timestamps); tbf meters whole frames, so a link shaped to R carries R * 1448/1514 of payload.
FRAME_PAYLOAD = 1448 / 1514
RATES = {"1gbit": 1.0, "2500mbit": 2.5, "10gbit": 10.0}


def read_timeline(path):
    """dp_timeline's CSV: ({forward_ms, backward_ms, optimizer_ms, step_ms}, [(name, numel, ready s)])."""
    with open(path) as f:
        head = f.readline().split()
        if head[:2] != ["#", "forward_ms"]:
            raise SystemExit(f"{path}: not dp_timeline output (first line {' '.join(head)!r})")
        times = {head[i]: float(head[i + 1]) for i in range(1, 9, 2)}
        rows = [line.strip().split(",") for line in f][1:]
    return times, [(n, int(c), float(t) / 1e3) for n, c, t in rows]


def shaper_burst(link):
    """Bytes tools/netns_cluster.sh's tbf lets through at once after the link idles: 2 ms at the rate, at
    least 128 KiB (0 for an unshaped link)."""
    if link not in RATES:
        return 0.0
    return max(RATES[link] * 1e9 / 8 / 500, 131072.0)


def read_alone(path):
    """bench_link_allreduce.sh's alone.csv: {link: (alpha s, rate bit/s)}, per link a least-squares fit of
    alpha + max(0, bytes on the wire - the shaper's burst) / rate to what the rank that joins 20 ms late
    waits (in training the rank whose backward ends last is such a rank), both gradient types (the cost goes
    with the bytes on the wire). Prints how much less that rank waits than a punctual one: if the early ranks
    could send much before the last one joins, it would wait less. None when there is no such file."""
    import csv
    import os

    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    links = {}
    for link in dict.fromkeys(r["link"] for r in rows):
        mine = [r for r in rows if r["link"] == link]
        burst_mb = shaper_burst(link) / 1e6
        pts = [(max(0.0, float(r["wire_mb"]) - burst_mb), float(r["late_ms"])) for r in mine if float(r["skew_ms"]) == 20]
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)  # ms per MB
        links[link] = (max(0.0, my - slope * mx) / 1e3, 8e6 / slope * 1e3)
        late = {}
        for r in mine:
            late.setdefault((r["float_mb"], r["bf16"]), {})[float(r["skew_ms"])] = float(r["late_ms"])
        late_less = sorted(v[20.0] - v[0.0] for v in late.values() if 0.0 in v and 20.0 in v)
        print(f"alone.csv, {link}: the rank joining 20 ms late waits {late_less[0]:+.2f} to {late_less[-1]:+.2f} ms "
              f"against joining at once, over {len(late_less)} sizes")
    return links


def compare(directory, hosts, bucket_mb):
    import csv
    import statistics

    times, timeline = read_timeline(f"{directory}/timeline.csv")
    with open(f"{directory}/measured.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        # Older runs: float32 gradients only, and rank 0's wait as the exposed time.
        r.setdefault("bf16", "off")
        if not r.get("exposed_ms"):
            r["exposed_ms"] = r["wait_ms"]
    grad_bytes = 4  # the buckets hold float32 gradients whatever travels
    total = sum(n for _, n, _ in timeline) * grad_bytes

    def med(link, key):
        v = [float(r[key]) for r in rows
             if r["link"] == link and float(r["bucket_mb"]) == bucket_mb and r["bf16"] == "off"]
        if not v:
            raise SystemExit(f"{directory}/measured.csv: no {link} run with {bucket_mb:g} MiB buckets")
        return statistics.median(v)

    # Each link's all-reduce cost. With alone.csv (tools/bench_link_allreduce.sh): per link, alpha (each
    # collective's fixed cost) and the rate the link gives MPI when the CPU is free (the shaper, TCP and
    # MPI's own CPU ceiling together; the unshaped link's rate is that ceiling), fitted by read_alone().
    # Without it (older runs): two constants fitted on the training runs' all-reduce at 32 px, alpha from
    # the slowest link and MPI's ceiling from the unshaped one, with the link's nominal rate.
    links = read_alone(f"{directory}/alone.csv")
    if links:
        mpi_gbit = links["none"][1] / 1e9
    else:
        nb = len(make_buckets(timeline, bucket_mb * 2**20, grad_bytes))
        slow = min(RATES, key=RATES.get)
        alpha = (med(slow, "comm_busy_ms") / 1e3 - total * 8 / (RATES[slow] * 1e9 * FRAME_PAYLOAD)) / nb
        mpi_gbit = total * 8 / (med("none", "comm_busy_ms") / 1e3 - nb * alpha) / 1e9
    params, macs = layer_table("resnet18", 128)

    def predict(r, slowdown):
        """For one measured run, from that run's own compute time (measured around it): the buckets, the
        last bucket's all-reduce alone, and (step, exposed) in s as the model was and as mended."""
        link, bb = r["link"], float(r["bucket_mb"]) * 2**20
        compute = float(r["compute_ms"]) / 1e3
        nominal = RATES.get(link, float(r["stream_gbit"]))
        # As the model was: backward 2/3 of the step, MAC shares, a ring at 90% of the line rate.
        bw1 = compute * 2 / 3
        b1 = make_buckets(ready_from_macs(params, macs, bw1), bb, grad_bytes)
        _, e1 = overlap(b1, bw1, lambda n: ring(n, hosts, nominal * 1e9 / 8 * 0.9, ALPHA_IB))
        # Mended: measured gradient-ready times (scaled to this run's compute), TCP's payload share of the
        # link, each collective's alpha, MPI's own ceiling, and the backward slowed while communicating.
        scale = compute / (times["step_ms"] / 1e3)
        bw2 = times["backward_ms"] / 1e3 * scale
        b2 = make_buckets([(n, c, t * scale) for n, c, t in timeline], bb, grad_bytes)
        burst = 0.0
        if links:
            a, link_bps = links[link]
            burst = shaper_burst(link)
        else:
            a, link_bps = alpha, min(nominal * 1e9 * (FRAME_PAYLOAD if link in RATES else 1.0), mpi_gbit * 1e9)
        narrow = 0.5 if r["bf16"] == "on" else 1.0  # bfloat16 on the wire: half the bytes
        # A ring's bytes per rank, less what the shaper lets through at once.
        wire = lambda n: max(0.0, 2 * (hosts - 1) / hosts * n * narrow - burst)  # noqa: E731
        e2, stretch = overlap_shared(b2, bw2, a, wire, link_bps, mpi_gbit * 1e9, slowdown)
        last = a + wire(b2[-1][0]) * 8 / link_bps
        return dict(buckets=b2, last=last, was=(compute + e1, e1), mended=(compute + stretch + e2, e2))

    def step_miss(r, slowdown):
        return predict(r, slowdown)["mended"][0] / (float(r["step_ms"]) / 1e3) - 1

    def misfit(r, slowdown):
        """Squared misses of the step and of the exposed time, both as fractions of the measured step."""
        step, exposed = predict(r, slowdown)["mended"]
        ms, mw = float(r["step_ms"]) / 1e3, float(r["exposed_ms"]) / 1e3
        return ((step - ms) / ms) ** 2 + ((exposed - mw) / ms) ** 2

    # The one constant fitted: the share of the CPU a collective in flight takes from the backward pass (and is
    # all it gets while the backward runs), fitted on the first round's runs (least squares on step and
    # exposed time) and then used for every round.
    first = [r for r in rows if r["round"] == rows[0]["round"]]
    slowdown = min((k / 50 for k in range(46)), key=lambda f: sum(misfit(r, f) for r in first))
    print(f"Timeline (dp_timeline, one rank alone): forward {times['forward_ms']:.0f} ms, backward "
          f"{times['backward_ms']:.0f} ms ({times['backward_ms'] / times['step_ms'] * 100:.0f}% of the step), "
          f"optimizer {times['optimizer_ms']:.0f} ms; {total / 1e6:.2f} MB of float32 gradients")
    if links:
        print("Each link's all-reduce alone (alone.csv, alpha + (MB on the wire - the shaper's burst) / rate): " + ", ".join(
            f"{k}: {a * 1e3:.2f} ms + MB / {b / 8e9:.3f} GB/s ({b / 1e9:.2f} Gbit/s)" for k, (a, b) in links.items()))
    else:
        print(f"From the all-reduce alone: alpha {alpha * 1e3:.1f} ms a collective, MPI over TCP at most "
              f"{mpi_gbit:.1f} Gbit/s.")
    print(f"Fitted on round {rows[0]['round']}: a collective in flight takes "
          f"{slowdown * 100:.0f}% of the CPU from the backward pass (and gets only that while it runs)")
    print()
    print("| link | gradients | buckets (MiB) | compute ms | step ms | exposed ms (share of step) | rank 0 waited ms "
          "| MPI busy ms | last bucket MB on the wire (alone ms) | model as was: step / exposed ms (miss) "
          "| mended: step / exposed ms (miss) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    keys = []
    for r in rows:
        if (r["link"], r["bucket_mb"], r["bf16"]) not in keys:
            keys.append((r["link"], r["bucket_mb"], r["bf16"]))
    worst = worst_exposed = worst_own = 0.0
    for link, bmb, bf16 in keys:
        sel = [r for r in rows if r["link"] == link and r["bucket_mb"] == bmb and r["bf16"] == bf16]
        preds = [predict(r, slowdown) for r in sel]
        m = lambda k: statistics.median(float(r[k]) for r in sel)  # noqa: E731
        pm = lambda f: statistics.median(f(p) for p in preds) * 1e3  # noqa: E731
        step, exposed, wait, busy, compute = m("step_ms"), m("exposed_ms"), m("wait_ms"), m("busy_ms"), m("compute_ms")
        s1, e1 = pm(lambda p: p["was"][0]), pm(lambda p: p["was"][1])
        s2, e2 = pm(lambda p: p["mended"][0]), pm(lambda p: p["mended"][1])
        worst = max([worst] + [abs(step_miss(r, slowdown)) for r in sel])
        # The exposed time's miss as a share of the step (a few ms on a fast link are a large share of little).
        worst_exposed = max([worst_exposed] + [abs(p["mended"][1] * 1e3 - float(r["exposed_ms"])) / float(r["step_ms"])
                                               for r, p in zip(sel, preds)])
        worst_own = max([worst_own] + [abs(p["mended"][1] * 1e3 / float(r["exposed_ms"]) - 1) for r, p in zip(sel, preds)])
        b2 = preds[0]["buckets"]
        wire_mb = b2[-1][0] / 1e6 * (0.5 if bf16 == "on" else 1.0)
        print(f"| {link} | {'bfloat16' if bf16 == 'on' else 'float32'} | {len(b2)} ({bmb}) | {compute:.0f} | {step:.0f} | "
              f"{exposed:.0f} ({exposed / step * 100:.0f}%) | {wait:.0f} | "
              f"{busy:.0f} | {wire_mb:.1f} ({pm(lambda p: p['last']):.0f}) | "
              f"{s1:.0f} / {e1:.0f} ({(s1 / step - 1) * 100:+.0f}%, {(e1 / exposed - 1) * 100:+.0f}%) | "
              f"{s2:.0f} / {e2:.0f} ({(s2 / step - 1) * 100:+.0f}%, {(e2 / exposed - 1) * 100:+.0f}%) |")
    rounds = sorted({r["round"] for r in rows})
    print(f"\n{len(rows)} runs in {len(rounds)} rounds, medians; each prediction from its own run's compute. "
          f"Largest miss of the mended model over all {len(rows)} runs: step {worst * 100:.0f}%, exposed time "
          f"{worst_exposed * 100:.0f}% of the step ({worst_own * 100:.1f}% of the exposed time itself)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bucket-mb", type=float, default=25)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--compare", metavar="DIR", help="measured 2-host runs (tools/bench_multinode.sh BUILD DIR)")
    ap.add_argument("--hosts", type=int, default=2)
    args = ap.parse_args()
    if args.compare:
        compare(args.compare, args.hosts, args.bucket_mb)
        return
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
