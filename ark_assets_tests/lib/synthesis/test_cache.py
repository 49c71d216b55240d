"""The teacher cache: keys, persistence, and writes from many threads and processes."""

import multiprocessing
import threading
from pathlib import Path

from ark_assets.lib.synthesis.cache import TeacherCache, cache_key


def _put_many(path: str, prefix: str, n: int) -> None:
    cache = TeacherCache(Path(path))
    for i in range(n):
        cache.put(f"{prefix}{i}", backend="b", model="m", stage="s", output="O", value=str(i))
    cache.close()


def test_the_key_changes_with_backend_model_schema_and_prompt() -> None:
    base = ("openai", "m", "AskCheck", "{}", {"messages": [{"role": "user", "content": "x"}]})
    variants = [
        ("rules", *base[1:]),
        (base[0], "m2", *base[2:]),
        (*base[:3], '{"type":"object"}', base[4]),
        (*base[:4], {"messages": [{"role": "user", "content": "y"}]}),
    ]
    keys = {cache_key(*base), *(cache_key(*v) for v in variants)}
    assert len(keys) == 5
    assert cache_key(*base) == cache_key(*base)


def test_answers_persist_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "teacher.sqlite"
    cache = TeacherCache(path)
    cache.put("k", backend="rules", model="r", stage="check", output="O", value='{"a": 1}')
    cache.close()
    again = TeacherCache(path)
    assert again.get("k") == '{"a": 1}' and again.get("missing") is None and again.count() == 1
    again.close()


def test_threads_and_processes_write_concurrently_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "teacher.sqlite"
    shared = TeacherCache(path)
    threads = [
        threading.Thread(
            target=lambda p=p: [
                shared.put(f"t{p}-{i}", backend="b", model="m", stage="s", output="O", value="v")
                for i in range(50)
            ]
        )
        for p in range(4)
    ]
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_put_many, args=(str(path), f"p{p}-", 50)) for p in range(2)
    ]
    for worker in [*threads, *processes]:
        worker.start()
    for worker in [*threads, *processes]:
        worker.join(timeout=60)
    assert all(p.exitcode == 0 for p in processes)
    assert shared.count() == 4 * 50 + 2 * 50
    shared.close()
