"""The web page in a real browser (the system chromium, driven by Playwright): live streams,
adding a stream, a video job from upload to downloaded results, API keys, the API docs with
no network, and a phone-width screen. Screenshots of each page are saved under the test's tmp
dir (the path is printed)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import xnoryolo
from jobs_helpers import FakeDetector
from service_helpers import Service, run_service, settings_for
from web_helpers import PageWatch, launch, picture_stats, playwright_missing, save

pytestmark = pytest.mark.skipif(playwright_missing() is not None, reason=str(playwright_missing()))

DEMO = Path(xnoryolo.__file__).parent / "configs" / "demo" / "vtest-heldout.mp4"
KEY = "web-test-key-0123456789"
ASSET_BUDGET = 200 * 1024


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("web-screenshots")
    print(f"screenshots: {d}")
    return d


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The real model on the demo clip, looped as a stream (a settings stream: trusted)."""
    settings = settings_for(
        data_dir=tmp_path_factory.mktemp("web-data"),
        streams=[{"id": "demo", "name": "Demo clip", "url": str(DEMO), "loop": True, "fps": 5}],
    )
    with run_service(settings, None) as service:
        yield service


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    settings = settings_for(
        data_dir=tmp_path_factory.mktemp("web-keyed"),
        api_keys=[KEY],
        streams=[{"id": "door", "url": str(DEMO), "loop": True, "fps": 5}],
    )
    with run_service(settings, FakeDetector()) as service:
        yield service


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, PageWatch]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    pg = context.new_page()
    watch = PageWatch()
    watch.attach(pg)
    yield pg, watch
    context.close()
    assert watch.errors == [], "the page logged errors"
    assert watch.outside == [], "the page tried to reach another host"


def test_live_page_shows_the_stream_its_frames_and_detections(
    svc: Service, page: tuple[Any, PageWatch], shots: Path
) -> None:
    pg, watch = page
    sizes: dict[str, int] = {}
    pg.on(
        "response",
        lambda r: (
            sizes.__setitem__(r.url, len(r.body()))
            if r.request.resource_type in ("document", "script", "stylesheet")
            else None
        ),
    )
    pg.goto(svc.url + "/")
    card = pg.locator('article[data-stream="demo"]')
    card.locator('[data-testid="state"]', has_text="online").wait_for(timeout=30_000)
    # The annotated MJPEG holds real frames: many grey levels, far from a flat picture.
    frame = card.locator('[data-testid="frame"]')
    pg.wait_for_function("img => img.naturalWidth > 0", arg=frame.element_handle(), timeout=20_000)
    std, levels = picture_stats(frame.screenshot())
    assert std > 20 and levels > 64, (std, levels)
    pg.locator("#detections li", has_text=re.compile(r"person \d+%")).first.wait_for(timeout=30_000)
    assert card.locator("dd").first.inner_text() != ""
    save(shots / "live.png", pg.screenshot(full_page=True))

    # A page load: the HTML, the styles and the scripts, all from this box, under budget.
    assert sizes and all(u.startswith(svc.url) for u in watch.requests if "://" in u)
    assert sum(sizes.values()) < ASSET_BUDGET, sizes
    print(f"page load: {sum(sizes.values())} bytes of assets in {len(sizes)} files")

    # The stream's own page: larger view, class filter, reconnect now.
    card.locator("a.title").click()
    pg.wait_for_url(re.compile(r"#/stream/demo$"))
    pg.locator('[data-testid="state"]').first.wait_for()
    pg.fill("#filter-classes", "person")
    pg.locator("#detections li", has_text="person").first.wait_for(timeout=30_000)
    texts = pg.locator("#detections li").all_inner_texts()
    assert all("car" not in t for t in texts)
    pg.get_by_role("button", name="Reconnect now").click()
    pg.get_by_text("Reconnecting now.").wait_for()
    save(shots / "stream.png", pg.screenshot(full_page=True))


def test_add_stream_shows_the_servers_message_by_the_field(
    svc: Service, page: tuple[Any, PageWatch], shots: Path
) -> None:
    pg, _ = page
    pg.goto(svc.url + "/#/add")
    bad = "ftp://user:secret@camera.invalid/x"
    pg.fill("#add-url", bad)
    pg.click("button[type=submit]")
    error = pg.locator("#add-url-error")
    error.filter(has_text=re.compile(".+")).wait_for()
    answer = httpx.post(f"{svc.url}/v1/streams", json={"url": bad, "loop": False}, timeout=10)
    assert answer.status_code in (403, 422)
    assert error.inner_text() == answer.json()["detail"]
    assert "secret" not in error.inner_text()
    assert pg.locator("#add-url").get_attribute("aria-invalid") == "true"

    # A field the request's validation refuses: the message sits by that field.
    pg.fill("#add-url", str(DEMO))
    pg.fill("#add-fps", "999")
    pg.click("button[type=submit]")
    pg.locator("#add-fps-error").filter(has_text=re.compile("240")).wait_for()
    assert pg.locator("#add-url-error").inner_text() == ""
    save(shots / "add-stream.png", pg.screenshot(full_page=True))


def test_job_upload_progress_and_results(
    svc: Service, page: tuple[Any, PageWatch], shots: Path
) -> None:
    pg, _ = page
    pg.goto(svc.url + "/#/jobs")
    pg.set_input_files("#job-file", str(DEMO))
    pg.locator("#upload-progress", has_text="(100 %)").wait_for()
    pg.locator('#job-current [data-testid="job-state"]', has_text="succeeded").wait_for(
        timeout=90_000
    )
    assert "100.0 %" in pg.locator("#job-progress").inner_text()
    links = pg.locator("#job-results a[data-result]")
    names = links.evaluate_all("as => as.map(a => a.dataset.result)")
    assert {"detections", "detections_jsonl", "video"} <= set(names), names
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        assert href is not None
        with pg.expect_download() as dl:
            links.nth(i).click()
        path = dl.value.path()
        assert path.stat().st_size > 0, href
        if links.nth(i).get_attribute("data-result") == "detections":
            doc = json.loads(path.read_text())
            assert len(doc["frames"]) == 195 and doc["state"] == "succeeded"
    assert pg.locator("#job-video").count() == 1
    pg.locator("#jobs-table td", has_text="succeeded").first.wait_for()
    save(shots / "jobs.png", pg.screenshot(full_page=True))


def test_api_key_prompt_refuses_a_wrong_key_then_works(
    keyed: Service, page: tuple[Any, PageWatch], shots: Path
) -> None:
    pg, _ = page
    pg.goto(keyed.url + "/")
    dialog = pg.locator("#key-dialog")
    dialog.wait_for(state="visible")
    pg.fill("#key-input", "wrong-key")
    pg.keyboard.press("Enter")
    pg.locator("#key-error", has_text="not accepted").wait_for()
    assert dialog.is_visible()
    save(shots / "api-key.png", pg.screenshot())
    pg.fill("#key-input", KEY)
    pg.keyboard.press("Enter")
    dialog.wait_for(state="hidden")
    assert pg.evaluate("sessionStorage.getItem('xnoryolo.apiKey')") == KEY
    # The picture (<img>) and the event stream (EventSource) carry the key in the query.
    card = pg.locator('article[data-stream="door"]')
    card.locator('[data-testid="state"]', has_text="online").wait_for(timeout=30_000)
    pg.wait_for_function(
        "img => img.naturalWidth > 0",
        arg=card.locator('[data-testid="frame"]').element_handle(),
        timeout=20_000,
    )
    pg.locator("#detections li", has_text="person 90%").first.wait_for()
    # The other pages work with the kept key, reached by keyboard; the docs link carries it.
    pg.locator("nav a[data-view=health]").focus()
    pg.keyboard.press("Enter")
    pg.locator("#health dd", has_text="ms each on average").wait_for()
    save(shots / "health.png", pg.screenshot(full_page=True))
    docs = pg.get_by_role("link", name="API docs (Swagger UI)").get_attribute("href")
    assert docs == f"/docs?api_key={KEY}"
    # Swagger UI's own assets and the OpenAPI document load with the key the link carries.
    pg.goto(keyed.url + docs)
    pg.locator(".opblock-tag", has_text="streams").first.wait_for()


def test_docs_render_with_the_network_blocked(
    svc: Service, page: tuple[Any, PageWatch], shots: Path
) -> None:
    pg, watch = page
    pg.goto(svc.url + "/docs")
    pg.locator(".swagger-ui .information-container .title").wait_for()
    pg.locator(".opblock-tag", has_text="streams").first.wait_for()
    save(shots / "docs.png", pg.screenshot())
    assert watch.outside == []


def test_phone_width(browser: Any, svc: Service, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    pg = context.new_page()
    watch = PageWatch()
    watch.attach(pg)
    try:
        for view in ("live", "jobs", "add", "health"):
            pg.goto(f"{svc.url}/#/{view}")
            pg.locator("main > h2").wait_for()
            pg.wait_for_timeout(300)
            width = pg.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (view, width)
            if view == "live":
                pg.locator('[data-testid="state"]').first.wait_for()
            save(shots / f"phone-{view}.png", pg.screenshot())
    finally:
        context.close()
    assert watch.errors == [] and watch.outside == []


def test_refused_upload_and_stream_removal_in_words(
    keyed: Service, page: tuple[Any, PageWatch], shots: Path
) -> None:
    pg, _ = page
    pg.add_init_script(f"sessionStorage.setItem('xnoryolo.apiKey', {json.dumps(KEY)})")
    pg.goto(keyed.url + "/#/jobs")
    # Not text: FFmpeg reads a text file as a video (its tty demuxer renders the characters).
    not_video = {"name": "clip.bin", "mimeType": "video/mp4", "buffer": bytes(range(256)) * 8}
    pg.set_input_files("#job-file", not_video)
    refused = pg.locator("#upload-progress", has_text="Upload refused:")
    refused.wait_for()
    assert "video" in refused.inner_text()

    pg.goto(keyed.url + "/#/stream/door")
    pg.locator('[data-testid="state"]').first.wait_for()
    remove = pg.get_by_role("button", name="Remove")
    remove.click()
    pg.get_by_role("button", name="Press again to remove").click()
    pg.wait_for_url(re.compile(r"#/live$"))
    pg.get_by_text("No streams yet").wait_for()
    assert httpx.get(f"{keyed.url}/v1/streams", headers={"X-API-Key": KEY}).json() == []
