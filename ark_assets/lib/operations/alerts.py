"""Alerts: one JSON object per event, appended to an alert log and optionally POSTed to a
webhook (Slack-, Teams- or PagerDuty-style receivers take a JSON body).

Delivery never raises: a receiver that is down, slow or answers an error is retried a bounded
number of times and the outcome (``delivered``, or why not) is returned and logged — an alert
must not fail the run that reports it. The webhook URL often carries a token: it is never
written to the log or the result (only its host).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

MAX_FIELD = 400  # characters kept of any text field (an error message, a reason)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    detail: str  # "HTTP 200 from host" or why not


def clip(text: str, limit: int = MAX_FIELD) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def append_log(path: Path, alert: Mapping[str, Any]) -> None:
    """One JSON line per alert (created with its folder when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(alert, ensure_ascii=False, sort_keys=True) + "\n")


def post(
    url: str,
    alert: Mapping[str, Any],
    *,
    timeout_s: float = 10.0,
    attempts: int = 3,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``alert`` as JSON; a 2xx answer is delivered. Connection errors, timeouts, 429 and
    5xx are retried (``attempts`` in all, doubling ``backoff_s``); other answers are not."""
    host = urlsplit(url).hostname or "?"
    detail = "not tried"
    for attempt in range(1, attempts + 1):
        try:
            answer = requests.post(url, json=alert, timeout=timeout_s)
        except requests.RequestException as error:
            detail = f"{type(error).__name__} reaching {host}"
        else:
            detail = f"HTTP {answer.status_code} from {host}"
            if 200 <= answer.status_code < 300:
                return Delivery(True, attempt, detail)
            if answer.status_code != 429 and answer.status_code < 500:
                return Delivery(False, attempt, detail)
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return Delivery(False, attempts, detail)
