"""The web UI in headless Chromium: a streamed, cited answer; an image upload; crisis help."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.serve.conftest import ImageScripted, live_server, make_app

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
REPLY = (
    "Metformin is the first-line drug for type 2 diabetes [1]. It lowers hepatic glucose output."
)


@pytest.fixture()
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def index_name(isolated_home: Path) -> str:
    from medmllm.rag.corpus import Document
    from medmllm.rag.index import build_index
    from medmllm.rag.retriever import RetrieverConfig

    docs = [
        Document(
            id="ada-2024",
            title="Diabetes care guideline",
            url="https://example.org/diabetes-guideline",
            text="Metformin is the first-line drug for type 2 diabetes. Metformin lowers hepatic "
            "glucose output and improves insulin sensitivity.",
        ),
        Document(
            id="htn",
            title="Hypertension guideline",
            url="https://example.org/htn",
            text="Thiazide diuretics, ACE inhibitors and calcium channel blockers treat "
            "hypertension.",
        ),
    ]
    build_index("ui-test", docs, retriever=RetrieverConfig(kind="bm25"), progress=False)
    return "ui-test"


def test_chat_with_citation_image_and_crisis(browser, index_name: str, tmp_path: Path) -> None:
    artefacts = Path("tests/serve/artefacts")  # gitignored; kept for people to look at
    artefacts.mkdir(parents=True, exist_ok=True)
    gen = ImageScripted(replies=[REPLY])
    app = make_app(gen, tmp_path, index=index_name)
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(base + "/")
        assert "Not medical advice" in page.inner_text("#notice")
        assert "PHI" in page.inner_text("#notice")
        page.fill("#question", "What is the first-line drug for type 2 diabetes?")
        page.click("#send")
        page.wait_for_selector(".msg.bot[data-done='1']", timeout=30_000)
        bot = page.locator(".msg.bot").last
        assert "Metformin" in bot.inner_text()
        link = bot.locator("a.citation").first
        assert link.get_attribute("href") == "https://example.org/diabetes-guideline"
        assert bot.locator(".badge.ok").count() >= 1  # grounding badge per sentence
        page.screenshot(path=str(artefacts / "web_ui_answer.png"), full_page=True)

        from PIL import Image

        image = tmp_path / "xray.png"
        Image.new("RGB", (64, 64), "gray").save(image)
        page.set_input_files("#image", str(image))
        page.fill("#question", "Describe this image")
        page.click("#send")
        page.wait_for_function("document.querySelectorAll(\".msg.bot[data-done='1']\").length >= 2")
        assert page.locator(".msg.user img.upload").count() == 1
        assert "Metformin" in page.locator(".msg.bot").last.inner_text()
        page.screenshot(path=str(artefacts / "web_ui_image.png"), full_page=True)

        page.fill("#question", "I want to end my life tonight")
        page.click("#send")
        page.wait_for_selector("#crisis:not([hidden])", timeout=30_000)
        assert "988" in page.inner_text("#crisis")
        page.screenshot(path=str(artefacts / "web_ui_crisis.png"), full_page=True)
    assert any(call[0] == "chat" and call[2] for call in gen.calls)
