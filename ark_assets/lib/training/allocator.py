"""The trainer processes' memory allocator: tcmalloc when the machine has it.

A CPU training step allocates and frees tensors of a few MB by the hundred. glibc's malloc keeps
the freed memory and cannot reuse all of it, so a process's peak resident memory runs about a
gigabyte above what its tensors hold at any moment (SmolLM2, LoRA, 1,820 tokens, no recompute:
4,180 MiB under glibc, 3,100 under tcmalloc, 3,040 under glibc made to hand every free back to
the kernel, which costs a quarter of the speed; docs/benchmarks.md). tcmalloc
(``libtcmalloc-minimal4``, installed by ``make install``) reuses it at no cost in speed.

An allocator is chosen when a process starts, so a trainer that is not running under it yet
replaces itself (``os.execv``: the same pid, arguments and environment, which Dagster Pipes and
the Kubernetes pod need) with the same command preloading it, before it opens Pipes or loads
torch. ``ARK_TRAINER_ALLOCATOR=system`` keeps the C library's. Where tcmalloc is not found, or
the preload did not take, the trainer runs on the system allocator and says so in its results.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

ALLOCATOR_ENV = "ARK_TRAINER_ALLOCATOR"
ALLOCATORS = ("tcmalloc", "system")
SYSTEM_ALLOCATOR_ENV = {ALLOCATOR_ENV: "system"}  # how the benches run MedArk's recipes
# Set on the re-executed process: a preload that failed (the loader only warns) is not retried.
_TRIED_ENV = "ARK_TRAINER_ALLOCATOR_TRIED"


def wanted_allocator() -> str:
    choice = os.environ.get(ALLOCATOR_ENV, "tcmalloc")
    if choice not in ALLOCATORS:
        raise ValueError(f"{ALLOCATOR_ENV}={choice!r}: use one of {', '.join(ALLOCATORS)}")
    return choice


def tcmalloc_library() -> str | None:
    """The tcmalloc shared library's name as the dynamic loader finds it, or None."""
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def running_allocator() -> str:
    """``tcmalloc`` if it is mapped into this process, else ``system``."""
    maps = Path("/proc/self/maps")
    text = maps.read_text() if maps.exists() else ""
    return "tcmalloc" if "libtcmalloc" in text else "system"


def use_wanted_allocator(module: str) -> None:
    """Re-execute ``python -m module`` with the same arguments under the wanted allocator, if
    this process is not already running under it (returns only when no change is needed or
    possible)."""
    if wanted_allocator() != "tcmalloc" or running_allocator() == "tcmalloc":
        return
    library = tcmalloc_library()
    if library is None or os.environ.get(_TRIED_ENV):
        return
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD", ""), library]))
    os.environ.update({"LD_PRELOAD": preload, _TRIED_ENV: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]])
