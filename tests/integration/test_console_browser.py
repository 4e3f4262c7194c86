"""The console page in a real browser (Debian's Chromium driven by Playwright) against a real scheduler.

Screenshots at 1280 px and 375 px (light and dark) are written to .cache/console-*.png
for people to look at; the assertions are on the DOM.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxbox_emulator import Emulator, EmulatorSettings
from tests.support.console import KEY, TOKEN, Console, console, token_file
from tests.support.processes import poll

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / ".cache"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing (.ci/run installs the chromium package)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorSettings(key=KEY, stage_delay=0.02, fail_every=3)).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def busy(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """Runs every second, every third one failing, control on: a timeline with several outcomes."""
    path = token_file(tmp_path_factory.mktemp("busy"))
    with console(
        emulator, path, PROXBOX_MODE="interval=1", PROXBOX_SCHEDULER_BACKOFF_ON_ERROR_SECONDS="1"
    ) as on:
        poll(lambda: len(on.runs()) >= 4, 30, "four runs")
        yield on


def page_at(browser: object, url: str, width: int, **context: object) -> object:
    page = browser.new_context(viewport={"width": width, "height": 900}, **context).new_page()  # type: ignore[attr-defined]
    page.goto(url)
    return page


def test_the_page_shows_the_job_card_timeline_stages_and_counts(browser: object, busy: Console) -> None:
    page = page_at(browser, busy.url, 1280)
    focused = []
    for _ in range(6):  # window select, Show, Run now, ...: reachable with Tab alone
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert "Run now" in focused and "Pause" in focused, focused
    card = page.locator("section.card[data-job=default]")
    assert card.locator("h2").inner_text() == "default"
    assert (
        card.locator(".state").inner_text() in {"waiting"} or "running" in card.locator(".state").inner_text()
    )
    runs = card.locator("svg.timeline g.run")
    assert runs.count() >= 4
    outcomes = {runs.nth(i).get_attribute("class") for i in range(runs.count())}
    assert {"run o-success", "run o-failure"} <= outcomes
    assert card.locator("table.stages tbody tr").count() == 12
    assert card.locator("tr.slowest").count() == 1
    assert card.locator("table.counts tbody tr").count() >= 5
    assert card.locator(".controls button", has_text="Run now").is_visible()
    runs.first.focus()
    assert "run " in card.locator(".detail").inner_text()  # focus shows the run's description
    page.screenshot(path=str(SHOTS / "console-1280.png"), full_page=True)
    dark = page_at(browser, busy.url, 1280, color_scheme="dark")
    dark.screenshot(path=str(SHOTS / "console-1280-dark.png"), full_page=True)


def test_at_375_px_nothing_overflows_sideways(browser: object, busy: Console) -> None:
    page = page_at(browser, busy.url, 375)
    page.wait_for_selector("svg.timeline g.run")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide at a 375 px viewport"
    page.screenshot(path=str(SHOTS / "console-375.png"), full_page=True)


def test_with_javascript_off_the_cards_are_there_and_the_buttons_are_not(
    browser: object, busy: Console
) -> None:
    page = page_at(browser, busy.url, 1280, java_script_enabled=False)
    assert page.locator("section.card[data-job=default]").is_visible()
    assert page.locator("svg.timeline g.run").count() >= 4
    assert not page.locator(".controls button").first.is_visible()


def test_run_now_asks_for_the_token_once_and_the_run_appears_without_a_reload(
    browser: object, emulator: Emulator, tmp_path: Path
) -> None:
    with console(emulator, token_file(tmp_path)) as hourly:
        page = page_at(browser, hourly.url, 1280)
        assert page.locator("svg.timeline g.run").count() == 0
        page.evaluate("window.notReloaded = true")
        page.get_by_role("button", name="Run now").click()
        page.get_by_label("Control token").fill(TOKEN)
        page.keyboard.press("Enter")
        manual = page.locator("svg.timeline g.run[aria-label*=manual]")
        manual.first.wait_for(timeout=WAIT_MS)
        assert page.evaluate("window.notReloaded") is True
        assert page.evaluate("sessionStorage.length") == 1
        page.get_by_role("button", name="Pause").click()  # the token is not asked again
        page.locator(".state", has_text="paused").wait_for(timeout=WAIT_MS)
        assert not page.get_by_label("Control token").is_visible()
        assert [run["trigger"] for run in hourly.runs()] == ["manual"]


def test_without_a_token_file_there_is_no_run_button(browser: object, emulator: Emulator) -> None:
    with console(emulator, None) as off:
        page = page_at(browser, off.url, 1280)
        assert page.locator("section.card[data-job=default]").is_visible()
        assert page.get_by_role("button", name="Run now").count() == 0
        assert page.get_by_label("Control token").count() == 0
