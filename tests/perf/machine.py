"""The machine a benchmark ran on, as the one-line ``machine`` field of its JSON result."""

import os
import platform
import shutil
import subprocess


def describe_machine() -> str:
    """``"<cpu model> / <gpu or 'no gpu'>, <N> cores"``; N counts the cores this process may use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = "no gpu"
    if shutil.which("nvidia-smi"):
        query = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=False
        )
        names = query.stdout.strip().splitlines()
        gpu = names[0] if names else gpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu} / {gpu}, {cores} cores"
