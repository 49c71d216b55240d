"""Writing benchmark results into a markdown file, one delimited section per benchmark.

The file is ``python -m ark_assets.bench --out PATH``'s (passed to each benchmark in
``$ARK_BENCH_OUT``), else ``docs/benchmarks.md`` under the working directory: ``make bench``
runs from the checkout's root, and an installed package has no checkout to find from its files.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

OUT_ENV = "ARK_BENCH_OUT"
DEFAULT_OUT = Path("docs") / "benchmarks.md"
_HEADER = (
    "# Benchmarks\n\nWritten by `make bench`; each section is replaced when its benchmark runs.\n"
)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.machine()}"


def results_path() -> Path:
    """The file benchmark sections go to (absolute); see the module docstring."""
    if chosen := os.environ.get(OUT_ENV):
        return Path(chosen).resolve()
    default = DEFAULT_OUT.resolve()
    if not default.parent.is_dir():
        raise SystemExit(
            f"no {DEFAULT_OUT.parent}/ under {Path.cwd()}: run from the checkout's root "
            f"(make bench) or choose the file with python -m ark_assets.bench --out PATH"
        )
    return default


def write_section(name: str, body: str) -> None:
    out = results_path()
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = out.read_text() if out.exists() else _HEADER
    section = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(
            re.escape(start) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
