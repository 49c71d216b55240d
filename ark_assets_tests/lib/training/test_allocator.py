"""The trainers' allocator: a process re-executes itself under tcmalloc, same pid and arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ark_assets.lib.training.allocator import ALLOCATOR_ENV, tcmalloc_library, wanted_allocator

# A module run with python -m, as the trainers are: it asks for the allocator, then reports.
PROBE = """
import json, os, sys
from ark_assets.lib.training import allocator
if os.environ.get("PROBE_LIBRARY"):
    allocator.tcmalloc_library = lambda: os.environ["PROBE_LIBRARY"]
allocator.use_wanted_allocator("probe")
print(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:],
                  "allocator": allocator.running_allocator()}))
"""


def _probe(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, dict]:
    (tmp_path / "probe.py").write_text(PROBE)
    inherited = {k: v for k, v in os.environ.items() if k not in (ALLOCATOR_ENV, "LD_PRELOAD")}
    paths = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    process = subprocess.Popen(
        [sys.executable, "-m", "probe", "one", "two words"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**inherited, "PYTHONPATH": os.pathsep.join(filter(None, paths)), **env},
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    return process, json.loads(out.decode().strip().splitlines()[-1])


needs_tcmalloc = pytest.mark.skipif(
    tcmalloc_library() is None,
    reason="no tcmalloc on this machine (make install puts Debian's libtcmalloc-minimal4 in)",
)


@needs_tcmalloc
def test_a_trainer_process_replaces_itself_with_one_under_tcmalloc(tmp_path: Path) -> None:
    process, report = _probe(tmp_path)
    assert report == {"pid": process.pid, "argv": ["one", "two words"], "allocator": "tcmalloc"}


def test_system_keeps_the_c_library_s_malloc(tmp_path: Path) -> None:
    process, report = _probe(tmp_path, **{ALLOCATOR_ENV: "system"})
    assert report == {"pid": process.pid, "argv": ["one", "two words"], "allocator": "system"}


def test_a_preload_that_does_not_take_is_tried_once_and_the_trainer_runs_on(
    tmp_path: Path,
) -> None:
    _, report = _probe(tmp_path, PROBE_LIBRARY="libark-no-such-allocator.so")
    assert report["allocator"] == "system" and report["argv"] == ["one", "two words"]


def test_an_unknown_allocator_is_refused_with_the_choices(monkeypatch) -> None:
    monkeypatch.setenv(ALLOCATOR_ENV, "hoard")
    with pytest.raises(ValueError, match="ARK_TRAINER_ALLOCATOR='hoard': use one of tcmalloc"):
        wanted_allocator()
