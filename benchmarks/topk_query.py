"""Benchmark the top-k knowledge query: PyTorch path vs the fused Triton kernel.

At the model's shapes: B = 16 studies, L = 98 image patches or L = 60 report tokens,
N = 41 knowledge vectors, gamma = 8, d_model = 512 in 8 heads of 64; and one decoding
step (L = 1, 48 rows: 16 studies x 3 beams). Forward, and forward + backward. The
achieved bandwidth counts the bytes the fused kernel must move (queries, keys, values,
output); the device's is measured with a large on-device copy. The Triton path needs
CUDA (on a CPU it would run in the interpreter, which measures nothing useful).

    python benchmarks/topk_query.py [--dtype float32] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cknet.kernels import knowledge_query, triton_available


def measure(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(device: torch.device, sync) -> float:
    """Bytes per second of a 256 MiB device-to-device copy (read + write)."""
    source = torch.empty(64 * 2**20, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    seconds = measure(lambda: target.copy_(source), 10, sync)
    return 2 * source.numel() * 4 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    dtype = getattr(torch, args.dtype)
    backends = ["torch"] + (["triton"] if device.type == "cuda" and triton_available(device) else [])
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} threads"
    bandwidth = copy_bandwidth(device, sync)
    print(f"top-k knowledge query, {name}, {args.dtype}, torch {torch.__version__}; "
          f"device copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    print()
    print("| shape | backend | forward ms | GB/s | % of copy | forward+backward ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    shapes = [("image patches B=16 L=98", 16, 98), ("report tokens B=16 L=60", 16, 60),
              ("decoding step 48 rows L=1", 48, 1)]
    for label, batch, length in shapes:
        q = torch.randn(batch, 8, length, 64, device=device, dtype=dtype, requires_grad=True)
        k = torch.randn(batch, 8, 41, 64, device=device, dtype=dtype, requires_grad=True)
        v = torch.randn_like(k, requires_grad=True)
        moved = (2 * q.numel() + k.numel() + v.numel()) * q.element_size()
        for backend in backends:
            def forward_only(q=q, k=k, v=v, backend=backend) -> None:
                with torch.no_grad():
                    knowledge_query(q, k, v, 8, backend=backend)

            def both(q=q, k=k, v=v, backend=backend) -> None:
                knowledge_query(q, k, v, 8, backend=backend).sum().backward()

            forward = measure(forward_only, args.repeats, sync)
            total = measure(both, max(5, args.repeats // 5), sync)
            rate = moved / forward
            print(f"| {label} | {backend} | {forward * 1e3:.3f} | {rate / 1e9:.1f} | "
                  f"{100 * rate / bandwidth:.0f}% | {total * 1e3:.3f} |")
    if "triton" not in backends:
        print("\nThe Triton path needs a CUDA device; only the PyTorch path was timed.")


if __name__ == "__main__":
    main()
