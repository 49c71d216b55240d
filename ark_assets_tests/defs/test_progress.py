"""Progress lines: every tenth or every minute, with rate and ETA, never one per item."""

from ark_assets.defs.progress import Progress, counted_progress, loop_progress


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def test_progress_logs_tenths_with_rate_and_eta() -> None:
    now = [0.0]
    log = Log()
    progress = Progress(log, "synthesis", 1000, unit="prefixes", clock=lambda: now[0])
    for done in range(1, 1001):
        now[0] = done * 0.5  # 2 prefixes/s
        progress.update(done)
    assert len(log.lines) == 10  # one per tenth, not one per prefix
    assert log.lines[0] == "synthesis: 100/1000 prefixes (10%), 2.00 prefixes/s, ETA 7m30s"
    assert log.lines[-1] == "synthesis: 1000/1000 prefixes (100%), 2.00 prefixes/s"


def test_slow_work_still_reports_every_minute() -> None:
    now = [0.0]
    log = Log()
    progress = Progress(log, "eval", 1000, clock=lambda: now[0])
    for done in range(1, 31):
        now[0] = done * 10.0  # 0.1 items/s: a tenth takes 1,000 s
        progress.update(done)
    assert len(log.lines) == 5  # at 60, 120, … 300 s
    assert log.lines[0] == "eval: 6/1000 items (1%), 0.10 items/s, ETA 2h45m"


def test_the_agent_loop_callback_counts_finished_rows() -> None:
    log = Log()
    on_step = loop_progress(log, "agent_smoke", 4)
    on_step(1, 4, 4)
    on_step(2, 2, 4)
    on_step(3, 0, 4)
    assert log.lines[-1].startswith("agent_smoke: 4/4 rows (100%)")
    assert any(line.startswith("agent_smoke: 2/4 rows (50%)") for line in log.lines)


def test_a_done_total_callback_reports_tenths() -> None:
    log = Log()
    report = counted_progress(log, "embedded", unit="new documents")
    for done in range(1, 101):
        report(done, 100)
    assert len(log.lines) == 10
    assert log.lines[-1].startswith("embedded: 100/100 new documents (100%)")
