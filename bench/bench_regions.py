"""Bench: exact plane partition, this engine vs regioncam, on the same networks and planes.

Networks: MLPs at default torch init and "trained" (a few epochs of Adam on scikit-learn's
digits upsampled from 8x8 to 28x28 = 784 inputs; no MNIST download needed). Planes pass
through three digits of distinct classes (box per DESIGN.md section 1). Regioncam gets the
same box with the plane folded into its first layer (its fastest use; `through_points`
is slower). Each run happens in a fresh process so peak memory is its own:
CPU = growth of max RSS during the run, CUDA = torch.cuda.max_memory_allocated.

    python bench/bench_regions.py                     # CPU, 784-300-100-10 and 784-500-500-10
    python bench/bench_regions.py --device cuda
    python bench/bench_regions.py --archs 784-300-100-10 --planes 3 --no-regioncam
    python bench/bench_regions.py --archs lenet5 --lenet-scale 0.05   # conv net (regioncam: MLPs only)

`lenet5` is the toolkit's LeNet-5 (conv-ReLU-avgpool x2, fc 120-84-10); its planes use a
box of `--lenet-scale` (default 0.05) x the anchors' offset, since a full box holds
millions of regions.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
import torch
from torch import nn


def digits784() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x.reshape(len(x), -1).numpy(), d.target


def make_net(arch: list[int] | str, trained: bool, epochs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if arch == "lenet5":
        from loaders.models import build_lenet5

        net = build_lenet5(10)
    else:
        mods: list[nn.Module] = []
        for i in range(len(arch) - 1):
            mods.append(nn.Linear(arch[i], arch[i + 1]))
            if i < len(arch) - 2:
                mods.append(nn.ReLU())
        net = nn.Sequential(*mods)
    if trained:
        x, y = digits784()
        x, y = torch.tensor(x), torch.tensor(y)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
    return net.eval()


def anchors(y: np.ndarray, plane: int) -> list[int]:
    """Three instances of distinct classes, different for every plane."""
    rng = np.random.default_rng(plane)
    classes = rng.choice(10, 3, replace=False)
    return [int(rng.choice(np.flatnonzero(y == c))) for c in classes]


def regioncam_layers(model: nn.Module, plane):
    import regioncam

    from toolkit.regions.network import pl_network

    pn = pl_network(model)
    umin, umax, vmin, vmax = plane.box
    centre = np.array([(umin + umax) / 2, (vmin + vmax) / 2])
    basis, w1 = torch.tensor(plane.basis), pn.layers[0].weight
    shift = torch.tensor(plane.origin) + torch.tensor(centre) @ basis
    f32 = lambda t: t.numpy().astype(np.float32)  # noqa: E731
    layers = [regioncam.nn.Linear(f32(basis @ w1.T), f32(w1 @ shift + pn.layers[0].bias)), regioncam.nn.ReLU()]
    for lay in pn.layers[1:]:
        layers += [regioncam.nn.Linear(f32(lay.weight.T), f32(lay.bias)), regioncam.nn.ReLU()]
    layers.append(regioncam.nn.Linear(f32(pn.out_weight.T), f32(pn.out_bias)))
    return regioncam.Regioncam, layers, (umax - umin) / 2


def job(args: tuple) -> tuple[int, float, float]:
    """(regions, best seconds, peak MiB of the first run) of one tool on one network and plane.

    Runs in a fresh process; the best of `repeat` runs damps noise from other processes.
    """
    tool, arch, trained, epochs, plane_nr, device, chunk, repeat, threads, scale = args
    torch.set_num_threads(threads)
    from toolkit.regions.partition import partition
    from toolkit.regions.plane import plane_from_anchors

    x, y = digits784()
    net = make_net(arch, trained, epochs)
    plane = plane_from_anchors(*x[anchors(y, plane_nr)], scale=scale)
    if tool == "regioncam":
        cam, layers, half = regioncam_layers(net, plane)

        def run() -> tuple[int, float]:
            t0 = time.perf_counter()
            rc = cam(size=half)
            rc.add(layers)
            return rc.num_faces, time.perf_counter() - t0
    else:
        def run() -> tuple[int, float]:
            part = partition(net, plane, device=device, chunk=chunk)
            return part.count, part.seconds

    cuda = tool == "ours" and device == "cuda"
    if tool == "ours":  # warm-up on a tiny network: library start-up is not partition memory
        partition(make_net([784, 8, 8, 10], False, 0), plane, device=device)
    if cuda:
        run()  # warm-up: CUDA kernels and caching allocator
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count, best = run()
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    for _ in range(repeat - 1):
        best = min(best, run()[1])
    return count, best, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="784-300-100-10,784-500-500-10")
    ap.add_argument("--planes", type=int, default=1, help="planes per network")
    ap.add_argument("--epochs", type=int, default=5, help="training epochs on upsampled digits")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--chunk", type=int, default=None, help="regions per slice (default: from memory budget)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best time is reported")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: regioncam is single-threaded, and OpenMP "
                         "threads degrade badly on a shared machine)")
    ap.add_argument("--no-regioncam", action="store_true")
    ap.add_argument("--lenet-scale", type=float, default=0.05, help="box scale of the lenet5 planes")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    ctx = mp.get_context("spawn")
    head = f"{'network':<16} {'weights':<8} {'plane':>5} {'regions':>8} {'rc regions':>10} {'ours s':>8} {'rc s':>8} {'speed-up':>8} {'ours MiB':>9} {'rc MiB':>8}"
    print(f"device: {device}, torch threads: {args.threads}, regioncam: 1 thread; weights trained "
          f"{args.epochs} epochs on digits upsampled to 784")
    print(head)
    print("-" * len(head))
    for arch_s in args.archs.split(","):
        conv = arch_s == "lenet5"
        arch = arch_s if conv else [int(a) for a in arch_s.split("-")]
        scale = args.lenet_scale if conv else 1.2
        for trained in (False, True):
            for plane_nr in range(args.planes):
                common = (arch, trained, args.epochs, plane_nr, device, args.chunk, args.repeat, args.threads, scale)
                with ctx.Pool(1) as pool:
                    n, s, m = pool.apply(job, (("ours", *common),))
                rn = rs = rm = float("nan")
                if not (args.no_regioncam or conv):
                    with ctx.Pool(1) as pool:
                        rn, rs, rm = pool.apply(job, (("regioncam", *common),))
                flag = "" if args.no_regioncam or conv or n == rn else "  COUNT MISMATCH"
                if conv:  # regioncam takes MLPs only
                    print(f"{arch_s:<16} {'trained' if trained else 'init':<8} {plane_nr:>5} {n:>8} {'-':>10} "
                          f"{s:>8.3f} {'-':>8} {'-':>8} {m:>9.0f} {'-':>8}  (box scale {scale:g})", flush=True)
                    continue
                print(f"{arch_s:<16} {'trained' if trained else 'init':<8} {plane_nr:>5} {n:>8} {rn:>10} "
                      f"{s:>8.3f} {rs:>8.3f} {rs / s:>7.2f}x {m:>9.0f} {rm:>8.0f}{flag}", flush=True)


if __name__ == "__main__":
    main()
