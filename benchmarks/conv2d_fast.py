"""Time the answer key's conv2d_fast (lesson 09) against F.conv2d on ResNet-like layers.

    .venv/bin/python benchmarks/conv2d_fast.py                 # CPU, float32
    .venv/bin/python benchmarks/conv2d_fast.py --device cuda   # GPU

Prints times and the ratio conv2d_fast / F.conv2d (the target on CPU is <= 1.5), the two timed in turns,
call by call. Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import torch.nn.functional as F

from _notebook_code import load_function

SHAPES = [  # (batch, in_channels, out_channels, size, kernel, padding)
    (32, 64, 64, 56, 3, 1),
    (16, 128, 128, 28, 3, 1),
]


def measure(fns: dict, *args, device: str, repeat: int, **kwargs) -> dict:
    """Median seconds per call of each function, after two warm-up calls each. The functions take turns
    call by call, so a change in the machine's load affects them alike and their ratio stays fair."""

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for fn in fns.values():
        for _ in range(2):
            fn(*args, **kwargs)
    sync()
    times: dict = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(*args, **kwargs)
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--notebook", default="solutions/09_vectorized/09_vectorized.ipynb")
    args = parser.parse_args(argv)
    conv2d_fast = load_function(args.notebook, "conv2d_fast")
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, device {device}, {args.dtype}, threads {torch.get_num_threads()}, "
        f"median of {args.repeat}"
    )
    print(f"{'shape':42s} {'F.conv2d':>10s} {'conv2d_fast':>12s} {'ratio':>6s} {'max |diff|':>11s}")
    generator = torch.Generator().manual_seed(0)
    for n, c_in, c_out, size, k, p in SHAPES:
        x = torch.randn(n, c_in, size, size, generator=generator, dtype=dtype).to(device)
        w = torch.randn(c_out, c_in, k, k, generator=generator, dtype=dtype).to(device) / (c_in * k * k) ** 0.5
        b = torch.randn(c_out, generator=generator, dtype=dtype).to(device)
        with torch.no_grad():
            diff = float((conv2d_fast(x, w, b, padding=p) - F.conv2d(x, w, b, padding=p)).abs().max())
            medians = measure(
                {"torch": F.conv2d, "fast": conv2d_fast}, x, w, b, padding=p, device=args.device, repeat=args.repeat
            )
            t_torch, t_fast = medians["torch"], medians["fast"]
        label = f"N={n} {c_in}->{c_out} {size}x{size} k={k} p={p}"
        print(f"{label:42s} {t_torch * 1e3:8.2f}ms {t_fast * 1e3:10.2f}ms {t_fast / t_torch:6.2f} {diff:11.2e}")


if __name__ == "__main__":
    main()
