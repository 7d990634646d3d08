"""One line naming the machine a benchmark ran on: CPU model, cores, vector units, torch.

Benchmarks print it beside their tables, so that every figure in the docs says where it
was measured (machines of one kind differ: Intel or AMD, with or without AVX-512).
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_units() -> str:
    """The widest x86 vector extension the CPU reports (AVX-512, AVX2, ...), or ''."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return ""
    for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx")):
        if flag in flags:
            return name
    return ""


def describe(device: str = "cpu") -> str:
    """E.g. ``"AMD EPYC, 2 cores, AVX2, cpu, 2 threads, torch 2.14.1+cu130"``.

    Args:
        device: the device the benchmark ran on; a CUDA device is named by its card.
    """
    import torch

    parts = [cpu_model(), f"{os.cpu_count()} cores"]
    units = vector_units()
    if units:
        parts.append(units)
    if str(device).startswith("cuda") and torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(torch.device(device)))
    else:
        parts.append(str(device))
    parts += [f"{torch.get_num_threads()} threads", f"torch {torch.__version__}"]
    return ", ".join(parts)


class PeakMemory:
    """Peak memory inside a ``with`` block: on the CPU the process's resident set size
    (VmHWM, reset on entry through ``/proc/self/clear_refs``, Linux), on CUDA the memory
    PyTorch allocated on the device. ``gigabytes`` holds it after the block; ``what``
    says which of the two it is. Where the reset is refused, the CPU figure is the
    process's peak since it started (``what`` then says so).

    Args:
        device: the device the block runs on.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.cuda = str(device).startswith("cuda")
        self.device = device
        self.gigabytes = float("nan")
        self.what = "peak allocated on the GPU" if self.cuda else "peak RSS"

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                    fh.write("5")
            except OSError:
                self.what = "peak RSS of the process"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.gigabytes = torch.cuda.max_memory_allocated(self.device) / 1e9
        else:
            self.gigabytes = _vm_hwm_kb() * 1024 / 1e9


def _vm_hwm_kb() -> int:
    """The process's peak resident set in kB (Linux), or getrusage's figure."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
