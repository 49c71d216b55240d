"""The Dagster UI in a real browser, on an instance the fixture built (conftest.py): every asset
group of the code location on the lineage graph, each materialized asset's latest
materialization and check results on its group's graph, and the evaluation report's markdown.
The screenshots the README shows are written to docs/img/ on the way.

Every check reads the page (elements and their text) and waits for it explicitly: the UI
fetches its data through GraphQL after the page loads.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ark_assets_tests.ui.conftest import Materialized

pytestmark = pytest.mark.ui

# The UI's queries are slow while two busy cores also run the code location.
WAIT_S = 90
# What the README shows, each a few hundred KB at most.
SCREENSHOT_MAX_BYTES = 400_000


@pytest.fixture(scope="module")
def screenshots(pytestconfig: pytest.Config) -> Callable[[Any, str], Path]:
    """Saves the browser's viewport as docs/img/<name>.png, in 256 colours."""
    from PIL import Image

    folder = pytestconfig.rootpath / "docs" / "img"
    folder.mkdir(parents=True, exist_ok=True)

    def save(browser: Any, name: str) -> Path:
        image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
        path = folder / f"{name}.png"
        image.quantize(colors=256).save(path, optimize=True)
        assert path.stat().st_size < SCREENSHOT_MAX_BYTES, path
        return path

    return save


def _wait(browser: Any, what: str, condition: Callable[[Any], Any]) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S, poll_frequency=0.25).until(
        condition, message=f"{what} not shown within {WAIT_S} s at {browser.current_url}"
    )


def _element(xpath: str) -> Callable[[Any], Any]:
    from selenium.webdriver.support import expected_conditions

    return expected_conditions.visibility_of_element_located(("xpath", xpath))


def _graph_text(text: str) -> str:
    """An element of the lineage graph (drawn as SVG foreignObjects) whose text is ``text``."""
    return f"//*[local-name()='foreignObject']//*[normalize-space()='{text}']"


def _graph_node(asset: str) -> str:
    """The lineage graph's node of ``asset`` (one foreignObject each)."""
    return f"//*[local-name()='foreignObject'][.//*[normalize-space()='{asset}']]"


def test_the_lineage_graph_shows_every_asset_group(
    browser: Any, webserver: str, materialized: Materialized, screenshots: Any
) -> None:
    browser.get(f"{webserver}/asset-groups")
    sidebar = "//button[.//*[@aria-label='asset_group']]//*[@title]"
    for group in materialized.groups:
        _wait(browser, f"group {group} in the sidebar", _element(f"{sidebar}[@title='{group}']"))
        _wait(browser, f"group {group} on the graph", _element(_graph_text(group)))
    listed = {e.get_attribute("title") for e in browser.find_elements("xpath", sidebar)}
    assert listed == set(materialized.groups)
    screenshots(browser, "lineage")


def test_each_materialized_asset_shows_its_latest_run_and_checks_on_the_graph(
    browser: Any, webserver: str, materialized: Materialized, screenshots: Any
) -> None:
    # One group's materialized assets at a time: a whole group's graph is drawn zoomed out,
    # as names only, and its nodes show their details from a handful of assets down.
    for group, assets in materialized.assets.items():
        selection = " or ".join(f'key:"{asset}"' for asset in assets)
        browser.get(f"{webserver}/asset-groups~{quote(selection, safe='')}")
        for asset in assets:
            # the node's "Latest event" links to the run that materialized it
            run = materialized.runs[asset]
            latest = f"{_graph_node(asset)}//a[starts-with(@href, '/runs/{run}?')]"
            _wait(browser, f"{asset}'s latest materialization (run {run})", _element(latest))
            checks = materialized.checks.get(asset, {})
            if checks:
                summary = f"{sum(checks.values())} / {len(checks)} Passed"
                shown = f"//a[@href='/assets/{asset}?view=checks'][normalize-space()='{summary}']"
                _wait(browser, f"{asset}'s checks ({summary})", _element(shown))
        if group == "ingest":
            screenshots(browser, "ingest")


def test_each_check_result_is_listed_by_name(
    browser: Any, webserver: str, materialized: Materialized
) -> None:
    for asset, checks in materialized.checks.items():
        browser.get(f"{webserver}/assets/{asset}?view=checks")
        for name, passed in checks.items():
            status = "Succeeded" if passed else "Failed"
            row = f"//*[@title='{name}']/following-sibling::*[normalize-space()='{status}']"
            _wait(browser, f"{asset}'s check {name}: {status}", _element(row))


def test_the_evaluation_report_opens_from_its_metadata(
    browser: Any, webserver: str, materialized: Materialized, screenshots: Any
) -> None:
    browser.get(f"{webserver}/assets/eval_report")
    link = "//tr[td[normalize-space()='report']]//a[normalize-space()='[Show Markdown]']"
    _wait(browser, "the report's [Show Markdown]", _element(link)).click()
    run = materialized.runs["eval_report"]
    title = f"//*[@role='dialog']//h1[normalize-space()='Evaluation report · run {run}']"
    heading = _wait(browser, "the report's title", _element(title))
    dialog = browser.find_element("xpath", "//*[@role='dialog']")
    for text in [*materialized.report["test_sets"], *materialized.report["systems"]]:
        assert text in dialog.text
    browser.execute_script("arguments[0].scrollIntoView(true)", heading)
    screenshots(browser, "eval-report")
