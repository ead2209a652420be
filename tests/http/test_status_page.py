"""The status page in headless Chromium: Debian's `chromium`, driven by Playwright for
Python pointed at that browser (no downloaded one). The page loads and shows the policy
version, and a playground request streams an answer and makes its decision row appear."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.http.conftest import DoorFactory

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run)"),
]


async def test_the_page_shows_the_policy_and_a_playground_decision(
    door: DoorFactory, tmp_path: Path
) -> None:
    router, _ = await door(pre=0.0, cascade=0.0)
    version = router.server.router.policies.current.version
    async with async_playwright() as playwright:
        # No sandbox: CI and this machine run as root, where Chromium's sandbox refuses.
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        await page.goto(f"{router.http_url}/")
        await expect(page.locator("#policy-version")).to_have_text(version)
        rows = page.locator("#decisions tr")
        await expect(rows).to_have_count(0)
        await page.click("#send")
        await expect(page.locator("#decision")).to_contain_text("EDGE: ", timeout=30_000)
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("(not stored)")
        assert await page.locator("#answer").inner_text()
        await page.screenshot(path=tmp_path / "status-page.png", full_page=True)
        await browser.close()
