"""One line that names the machine a benchmark ran on (CPU model, cores, GPU if any), for its JSON."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = f"{cpu}, {cores} cores"
    try:
        import torch

        if torch.cuda.is_available():
            line += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return line
