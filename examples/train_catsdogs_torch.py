#!/usr/bin/python3
"""The train_catsdogs recipe in PyTorch/torchvision, as a baseline measured on the same machine.

Mirrors `train_catsdogs train` flag for flag (same data subset for --limit, same augmentation, schedule,
optimizer and label smoothing) and prints the same log lines, so the two programs' curves can be compared.
Needs Debian's python3-torch and python3-torchvision (call /usr/bin/python3).

    /usr/bin/python3 examples/train_catsdogs_torch.py --data ../shared/data/catsdogs-128 --size 96 --epochs 20
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms
from PIL import Image


def image_folder(root, limit):
    """(path, label) pairs as train_catsdogs reads them: sorted classes, sorted files, --limit split evenly."""
    classes = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    samples = []
    for c, name in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(root, name))
                       if not f.startswith(".") and f.lower().endswith((".jpg", ".jpeg", ".png")))
        if limit:
            files = files[:limit // len(classes) + (1 if c < limit % len(classes) else 0)]
        samples += [(os.path.join(root, name, f), c) for f in files]
    return classes, samples


class Files(torch.utils.data.Dataset):
    def __init__(self, samples, transform):
        self.samples, self.transform = samples, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with Image.open(path) as img:
            return self.transform(img.convert("RGB")), label


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--crop-scale", type=float, default=0.25)
    p.add_argument("--eval-crop", type=float, default=0.875)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cycle-momentum", action="store_true", help="OneCycleLR's momentum cycling (train_catsdogs: off)")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    train_tf = transforms.Compose([
        transforms.RandomResizedCrop(a.size, scale=(a.crop_scale, 1.0)),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std)])
    test_tf = transforms.Compose([
        transforms.Resize(round(a.size / a.eval_crop)), transforms.CenterCrop(a.size), transforms.ToTensor(),
        transforms.Normalize(mean, std)])
    classes, train = image_folder(os.path.join(a.data, "train"), a.limit)
    _, test = image_folder(os.path.join(a.data, "test"), a.limit)
    train_loader = torch.utils.data.DataLoader(Files(train, train_tf), batch_size=a.batch, shuffle=True,
                                               drop_last=len(train) > a.batch, num_workers=a.workers)
    test_loader = torch.utils.data.DataLoader(Files(test, test_tf), batch_size=a.batch, num_workers=a.workers)
    model = getattr(torchvision.models, a.arch)(num_classes=len(classes))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, nesterov=True, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * len(train_loader),
                                                cycle_momentum=a.cycle_momentum)
    print(f"torch {torch.__version__}: {a.arch} on cpu, {torch.get_num_threads()} threads; "
          f"{len(train)} train / {len(test)} test images", flush=True)
    start = time.time()
    for epoch in range(1, a.epochs + 1):
        model.train()
        total, window = 0.0, 0.0
        for i, (x, y) in enumerate(train_loader, 1):
            loss = F.cross_entropy(model(x), y, label_smoothing=a.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            total += loss.item()
            window += loss.item()
            if i % 20 == 0:
                print(f"[epoch {epoch}, batch {i}] loss: {window / 20:.3f}", flush=True)
                window = 0.0
        print(f"epoch {epoch} av_train_loss: {total / len(train_loader):.3f} lr: {lr:.5f}", flush=True)
        model.eval()
        correct = n = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
                n += len(y)
        print(f"epoch {epoch} av_test_acc: {correct / n:.3f}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
