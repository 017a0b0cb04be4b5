"""Peak memory: of a measured block (GPU allocations on CUDA, resident set growth on a CPU), or of a process.

The CPU peak is the kernel's high-water mark of this process's resident set (``VmHWM``), reset when
the block starts. ``getrusage``'s ``ru_maxrss`` cannot be used: it is never reset, and a process
started by a large parent inherits the parent's size in it.
"""

from __future__ import annotations

import gc
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: bytes per mebibyte
MIB = 1024 * 1024


def current_rss_bytes() -> int:
    """The resident set size of this process now (Linux ``/proc``)."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * resource.getpagesize()


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """The high-water mark of a process's resident set (``VmHWM``), or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Set this process's resident-set high-water mark to its current size (Linux 4.0+); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class PeakMemory:
    """The result of ``measure_peak``: ``peak_mb`` is filled in when the block ends.

    kind: ``cuda_max_allocated`` (torch's allocator peak) or ``cpu_peak_rss_delta`` (the resident
    set's peak during the block minus its size when the block began).
    """

    kind: str
    peak_mb: float = 0.0
    baseline_bytes: int = 0

    def now_mb(self) -> float:
        """What the block holds at this moment: CUDA allocations, or resident set growth since it began."""
        import torch

        if self.kind == "cuda_max_allocated":
            return torch.cuda.memory_allocated() / MIB
        return max(0, current_rss_bytes() - self.baseline_bytes) / MIB


@contextmanager
def measure_peak(device: torch.device) -> Iterator[PeakMemory]:
    """Measure the peak memory the block adds on ``device`` (on CUDA: the allocator's peak, all of it)."""
    # imported here so that watching another process's memory (the producer's) never loads torch
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = PeakMemory("cuda_max_allocated")
        yield result
        torch.cuda.synchronize(device)
        result.peak_mb = torch.cuda.max_memory_allocated(device) / MIB
        return
    baseline = current_rss_bytes()
    result = PeakMemory("cpu_peak_rss_delta" if reset_peak_rss() else "cpu_peak_rss_delta_since_start", 0.0, baseline)
    yield result
    result.peak_mb = max(0, (peak_rss_bytes() or 0) - baseline) / MIB
