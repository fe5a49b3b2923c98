"""The per-sample NMF layer in a small image classifier (scikit-learn's 8 x 8 digits).

A small convolutional network: conv 3x3 (1 -> C channels) + ReLU gives a C x 64 feature map
per image; the *NMF* variant adds ``NMFLayer(C, rank)`` as a residual "hamburger" (the map
plus its rank-r per-sample factorization, Geng et al., 2021), the *plain* variant is the same
network without it; then a linear head on the flattened map. Both trained with Adam for
the same epochs from the same seeds; reported: the test accuracy of each (mean over seeds),
and the time of one forward + backward per sample of the NMF layer (one-step and unrolled)
against NNLSLayer coding the same C-dimensional columns. Writes
experiments/results/nmf_layer_classifier.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from _l1_common import machine_info, print_table, save
from torchnmf_l1 import NMFLayer, NNLSLayer


class Net(nn.Module):
    def __init__(self, channels: int, rank: int | None, n_iter: int, backward: str, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.ham = None if rank is None else NMFLayer(channels, rank, n_iter=n_iter, backward=backward, seed=seed)
        self.head = nn.Linear(channels * 64, 10)

    def forward(self, images):
        features = torch.relu(self.conv(images))  # (B, C, 8, 8), nonnegative
        if self.ham is not None:
            B, C = features.shape[:2]
            flat = features.reshape(B, C, -1)
            features = (flat + self.ham(flat)).reshape(features.shape)
        return self.head(features.flatten(1))


def train(net, x, y, xt, yt, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=g)
        for start in range(0, x.shape[0], 64):
            batch = order[start:start + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
            if net.ham is not None:
                with torch.no_grad():
                    net.ham.dictionary.clamp_(min=0)
    with torch.no_grad():
        return float((net(xt).argmax(dim=1) == yt).float().mean())


def layer_seconds(layer, x, repeats=5):
    start = time.perf_counter()
    for _ in range(repeats):
        out = layer(x)
        out.square().sum().backward()
    return (time.perf_counter() - start) / repeats


def main(argv=None):
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    split = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train_idx, test_idx = split[:1300], split[1300:]
    C, r, n_iter = 16, 4, 6
    rows = []
    for name, rank, backward in (("plain", None, "one-step"), ("NMF one-step", r, "one-step"),
                                 ("NMF unrolled", r, "unrolled")):
        accuracies = [train(Net(C, rank, n_iter, backward, seed), images[train_idx], labels[train_idx],
                            images[test_idx], labels[test_idx], args.epochs, seed) for seed in range(args.seeds)]
        rows.append(dict(network=name, test_accuracy=statistics.mean(accuracies), worst=min(accuracies)))
        print_table(rows[-1:], list(rows[-1]))
    # one forward + backward per sample: a batch of 256 feature maps of C x 64
    x = torch.rand(256, C, 64)
    timing = {}
    for backward in ("one-step", "unrolled"):
        timing[f"NMFLayer {backward}"] = layer_seconds(NMFLayer(C, r, n_iter=n_iter, backward=backward, seed=0), x) / 256
    codes = NNLSLayer(C, r, solver="mu", n_iter=50, backward="implicit", seed=0)
    columns = x.transpose(1, 2).reshape(-1, C)  # the same C-dimensional columns, coded by NNLS
    timing["NNLSLayer mu implicit (50 iterations)"] = layer_seconds(codes, columns) / 256
    print_table(rows, list(rows[0]))
    for key, value in timing.items():
        print(f"{key}: {1e6 * value:.1f} us per sample (forward + backward)")
    save("nmf_layer_classifier", {"machine": machine_info("cpu"), "channels": C, "rank": r, "n_iter": n_iter,
                                  "epochs": args.epochs, "seeds": args.seeds, "rows": rows,
                                  "seconds_per_sample_forward_backward": timing})


if __name__ == "__main__":
    main()
