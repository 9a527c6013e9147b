"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): the gallery of a recordings folder made by a real `scan`, an event
page with snapshot, boxes, chart and a playing clip, keep/delete, keyboard
navigation, the login form, and the live MJPEG view while `run` watches the
demo scene."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from web_support import Proc, add_clip, free_port, scan_into

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (.ci/run installs it with apt)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.errors = errors
    yield pg
    ctx.close()


def shot(page, name: str) -> None:
    """Keep a screenshot for a person to look at (build/screenshots/)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, two_visits_video) -> Path:
    """Two real scans on two days, with clips: the recorder's own when this build
    writes them (events.clip: true), else an H.264 file made with ffmpeg."""
    rec = tmp_path_factory.mktemp("browser") / "recordings"
    cfg = rec.parent / "clips.yaml"
    cfg.write_text("events:\n  clip: true\n  max_seconds: 3\n")   # short parts: the part buttons show
    for cam, start in (("porch", "2026-11-19T07:45:00"), ("garage", "2026-11-20T18:20:00")):
        proc = subprocess.run([sys.executable, "-m", "motionwatch", "scan", str(two_visits_video[0]), "--config",
                               str(cfg), "--recordings", str(rec), "--camera", cam, "--start-time", start,
                               "--no-progress"], capture_output=True, text=True, timeout=120)
        if proc.returncode == 2 and "clip" in proc.stderr:   # a build without clips
            scan_into(two_visits_video[0], rec, cam, start)
        else:
            assert proc.returncode == 0, proc.stderr
    for path in rec.glob("*/*/*/event.json"):
        if not json.loads(path.read_text()).get("clip"):
            add_clip(path.parent)
    subprocess.run([sys.executable, "-m", "motionwatch", "events", "--reindex", "--recordings", str(rec)],
                   check=True, capture_output=True, timeout=60)
    return rec


@pytest.fixture(scope="module")
def server(recordings):
    p = Proc(["serve", "--recordings", str(recordings), "--port", "0"])
    yield p
    p.stop()


def natural_width(page, selector: str) -> int:
    return page.eval_on_selector(selector, "img => img.complete ? img.naturalWidth : 0")


def test_gallery_shows_every_event_grouped_by_day(page, server, recordings):
    events = server.get_json("/api/events")["events"]
    page.goto(server.base + "/")
    page.wait_for_selector(".card")
    cards = page.locator(".card")
    assert cards.count() == len(events) >= 2
    days = page.locator("section.day").evaluate_all("els => els.map(e => e.dataset.day)")
    assert days == sorted({e["start"][:10] for e in events}, reverse=True)
    # Every thumbnail really loaded (lazy images are in view at this size).
    page.wait_for_function("() => [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")
    first = cards.nth(0)
    assert events[0]["camera"] in first.inner_text() and events[0]["start"][11:19] in first.inner_text()
    shot(page, "gallery")
    assert not page.errors


def test_keyboard_moves_through_the_gallery_and_opens_an_event(page, server):
    events = server.get_json("/api/events")["events"]
    page.goto(server.base + "/")
    page.wait_for_selector(".card")
    page.keyboard.press("ArrowRight")           # nothing focused yet: the first card
    assert page.evaluate("document.activeElement.dataset.id") == events[0]["id"]
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.id") == events[1]["id"]
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.dataset.id") == events[-1]["id"]
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    page.wait_for_selector("#snapshot")
    assert page.url.endswith("#/event/" + events[0]["id"])
    page.keyboard.press("ArrowRight")           # on the event page: the next older event
    page.wait_for_function(f"() => location.hash === '#/event/{events[1]['id']}' && "
                           f"document.querySelector('#snapshot').alt.includes('{events[1]['id']}')")
    page.keyboard.press("Escape")
    page.wait_for_selector(".card")
    # Back in the gallery, focus is on the event we came from.
    page.wait_for_function(f"() => document.activeElement.dataset.id === '{events[1]['id']}'")


def test_filters_by_camera_and_day(page, server):
    events = server.get_json("/api/events")["events"]
    porch = [e for e in events if e["camera"] == "porch"]
    page.goto(server.base + "/")
    page.wait_for_selector(".card")
    page.select_option("#f-camera", "porch")
    page.wait_for_function(f"() => document.querySelectorAll('.card').length === {len(porch)}")
    assert all("porch" in t for t in page.locator(".card .cam").all_inner_texts())
    page.goto(server.base + "/#/?date=2026-11-20")
    page.wait_for_function("() => document.querySelector('#f-date') && document.querySelector('#f-date').value === '2026-11-20'")
    days = set(page.locator("section.day").evaluate_all("els => els.map(e => e.dataset.day)"))
    assert days == {"2026-11-20"}


def test_event_page_snapshot_boxes_chart_and_clip(page, server):
    ev_id = server.get_json("/api/events")["events"][0]["id"]
    ev = server.get_json(f"/api/events/{ev_id}")
    page.goto(f"{server.base}/#/event/{ev_id}")
    page.wait_for_selector("#snapshot")
    page.wait_for_function("() => document.querySelector('#snapshot').complete")
    assert natural_width(page, "#snapshot") == ev["frame_size"][0]
    # Boxes drawn over the snapshot, and the toggle (button and B key) hides them.
    assert page.locator("#stage svg.boxes rect").count() == len(ev["boxes"]) >= 1
    assert page.locator("#stage svg.boxes").is_visible()
    page.click("#toggle-boxes")
    assert not page.locator("#stage svg.boxes").is_visible()
    page.keyboard.press("b")
    assert page.locator("#stage svg.boxes").is_visible()
    # The fraction chart has one point per sample.
    points = page.get_attribute(".chart polyline", "points").split()
    assert len(points) == len(ev["fractions"]) and page.locator(".chart .trig").count() == 1
    # The clip loads, plays and seeks (seeking needs Range support).
    video = page.locator("#clip")
    assert video.count() == 1
    page.wait_for_function("() => document.querySelector('#clip').readyState >= 1", timeout=15000)
    duration = page.evaluate("document.querySelector('#clip').duration")
    assert duration > 0.5
    page.evaluate("document.querySelector('#clip').muted = true; document.querySelector('#clip').play()")
    page.wait_for_function("() => document.querySelector('#clip').currentTime > 0.3", timeout=15000)
    page.evaluate(f"document.querySelector('#clip').currentTime = {duration * 0.8}")
    page.wait_for_function(f"() => document.querySelector('#clip').currentTime >= {duration * 0.75}", timeout=15000)
    assert page.evaluate("document.querySelector('#clip').error") is None
    page.evaluate("document.querySelector('#clip').pause()")
    if len(ev["clip_urls"]) > 1:   # a split clip: one button a part, each part plays
        assert page.locator("button[data-part]").count() == len(ev["clip_urls"])
        page.click("button[data-part='2']")
        page.wait_for_function(f"() => document.querySelector('#clip').currentSrc.endsWith('{ev['clip_urls'][1]}')")
        page.wait_for_function("() => document.querySelector('#clip').readyState >= 1", timeout=15000)
        page.evaluate("document.querySelector('#clip').pause()")
    shot(page, "event")
    assert not page.errors


def test_an_hevc_clip_plays_or_the_page_says_to_download_it(page, tmp_path, two_visits_video):
    """HEVC clips are copied as the camera sent them; Chrome and Firefox play HEVC
    only where the machine decodes it. Where this Chromium cannot (Debian's cannot),
    the event page keeps the snapshot and says to use Download, naming the format."""
    hevc = tmp_path / "visit-hevc.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(two_visits_video[0]), "-c:v", "libx265", "-preset",
                    "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p", str(hevc)], check=True)
    rec = tmp_path / "rec"
    subprocess.run([sys.executable, "-m", "motionwatch", "scan", str(hevc), "--recordings", str(rec),
                    "--no-progress"], check=True, capture_output=True, timeout=120)
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        ev = p.get_json("/api/events")["events"][0]
        assert p.get_json(f"/api/events/{ev['id']}")["clip_format"] == "hevc"
        page.goto(f"{p.base}/#/event/{ev['id']}")
        page.wait_for_selector("#clip")
        page.wait_for_function("() => document.querySelector('#snapshot').complete")
        plays = page.evaluate("document.querySelector('#clip').canPlayType('video/mp4; codecs=\"hvc1.1.6.L93.B0\"')")
        if plays:
            page.wait_for_function("() => document.querySelector('#clip').readyState >= 1", timeout=15000)
            assert page.evaluate("document.querySelector('#clip').error") is None
        else:
            page.wait_for_selector("#clip-note:not([hidden])", timeout=15000)
            note = page.inner_text("#clip-note")
            assert "cannot play this clip (hevc)" in note and "Download" in note
            assert natural_width(page, "#snapshot") > 0
    finally:
        p.stop()
    assert not page.errors


def test_boxes_land_on_a_snapshot_of_non_square_pixels(page, tmp_path):
    """A DVR's 720x576 picture of 64:45 pixels: the snapshot is saved 1024x576 (as a
    player shows it) while the boxes stay in stored pixels, and the event page still
    draws each box over the same part of the picture."""
    from fractions import Fraction

    from test_pixel_aspect import PAL, write_anamorphic
    write_anamorphic(tmp_path / "dvr.ts", PAL, "mpeg2", Fraction(64, 45))
    rec = tmp_path / "rec"
    subprocess.run([sys.executable, "-m", "motionwatch", "scan", str(tmp_path / "dvr.ts"), "--recordings", str(rec),
                    "--no-progress"], check=True, capture_output=True, timeout=120)
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        ev = p.get_json(f"/api/events/{p.get_json('/api/events')['events'][0]['id']}")
        page.goto(f"{p.base}/#/event/{ev['id']}")
        page.wait_for_selector("#stage svg.boxes rect")
        page.wait_for_function("() => document.querySelector('#snapshot').complete")
        assert natural_width(page, "#snapshot") == 1024 and ev["frame_size"] == [720, 576]
        img = page.locator("#snapshot").bounding_box()
        rect = page.locator("#stage svg.boxes rect").first.bounding_box()
        x, y, w, h = ev["boxes"][0]
        sx, sy = img["width"] / 720, img["height"] / 576
        # Centres and sizes (the outline's stroke widens the drawn box by a few pixels).
        assert abs(rect["x"] + rect["width"] / 2 - img["x"] - (x + w / 2) * sx) < 1.5
        assert abs(rect["y"] + rect["height"] / 2 - img["y"] - (y + h / 2) * sy) < 1.5
        assert abs(rect["width"] - w * sx) < 5 and abs(rect["height"] - h * sy) < 5
        assert abs(img["width"] / img["height"] - 16 / 9) < 0.02
    finally:
        p.stop()
    assert not page.errors


def test_keep_and_delete_from_the_event_page(page, tmp_path, two_visits_video):
    rec = tmp_path / "rec"
    scan_into(two_visits_video[0], rec, "shed", "2026-11-22T12:00:00")
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        ev = p.get_json("/api/events")["events"][0]
        folder = rec / Path(ev["snapshot_url"][len("/media/"):]).parent
        assert folder.is_dir()
        page.goto(f"{p.base}/#/event/{ev['id']}")
        page.wait_for_selector("#keep")
        page.click("#keep")
        page.wait_for_function("() => document.querySelector('#keep').textContent.includes('Kept')")
        assert p.get_json(f"/api/events/{ev['id']}")["kept"] is True
        page.keyboard.press("k")
        page.wait_for_function("() => document.querySelector('#keep').textContent.includes('Keep')")
        assert p.get_json(f"/api/events/{ev['id']}")["kept"] is False
        page.once("dialog", lambda d: d.accept())
        page.click("#delete")
        page.wait_for_function(f"() => location.hash !== '#/event/{ev['id']}'")
        assert p.request("GET", f"/api/events/{ev['id']}")[0] == 404
        assert not folder.exists()
        # One event left: the gallery and the status page say "1 event", not "1 events".
        left = p.get_json("/api/events")["total"]
        page.goto(f"{p.base}/#/")
        page.wait_for_selector("section.day .n")
        texts = page.locator("section.day .n").all_inner_texts() + [page.inner_text("#count")]
        page.goto(f"{p.base}/#/status")
        page.wait_for_selector("#disk .dim")
        texts.append(page.inner_text("#disk .dim"))
        assert left == 1 and all("1 events" not in t for t in texts) and "1 event" in texts[-1], texts
    finally:
        p.stop()


def test_login_form_on_a_password_protected_server(page, recordings):
    port = free_port()
    p = Proc(["serve", "--recordings", str(recordings), "--port", str(port)],
             env={"MOTIONWATCH_WEB_PASSWORD": "s3cret"}, port=port)
    try:
        page.goto(p.base + "/")
        page.wait_for_selector("input[name=password]")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Wrong password")
        page.fill("input[name=password]", "s3cret")
        page.click("button[type=submit]")
        page.wait_for_selector(".card")
        assert not page.locator("#logout").is_hidden()
        cookies = page.context.cookies()
        assert any(c["name"] == "mw_session" and c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
        page.click("#logout button")
        page.wait_for_selector("input[name=password]")
    finally:
        p.stop()


def test_live_view_changes_while_run_watches_the_demo(page, tmp_path):
    port = free_port()
    cfg = tmp_path / "web.yaml"
    cfg.write_text(f"web:\n  enabled: true\n  port: {port}\n  live_fps: 5\n")
    p = Proc(["run", "--source", "demo", "--config", str(cfg), "--recordings", str(tmp_path / "rec"),
              "--duration", "90"], port=port)
    try:
        page.goto(p.base + "/#/live")
        img = page.locator("#live-demo")
        page.wait_for_function("() => document.querySelector('#live-demo') && document.querySelector('#live-demo').naturalWidth > 0",
                               timeout=20000)
        grab = "(() => { const i = document.querySelector('#live-demo'), c = document.createElement('canvas');" \
               " c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d');" \
               " g.drawImage(i, 0, 0); return c.toDataURL('image/png'); })()"
        pictures = set()
        deadline = time.monotonic() + 20
        while len(pictures) < 3 and time.monotonic() < deadline:
            pictures.add(page.evaluate(grab))
            page.wait_for_timeout(400)
        assert len(pictures) >= 3, "the live picture did not change"
        page.wait_for_function("() => document.querySelector('.cam-tile .stats') && "
                               "document.querySelector('.cam-tile .stats').textContent.includes('fps')")
        # The overlay toggle switches to the overlay stream, which also plays.
        page.click("button[data-overlay=demo]")
        assert "overlay=1" in img.get_attribute("src")
        page.wait_for_timeout(1500)
        assert page.evaluate("document.querySelector('#live-demo').naturalWidth") > 0
        shot(page, "live")
        live = p.get_json("/api/live")["cameras"][0]
        assert live["connected"] and live["fps"] > 0 and live["history"]
        status = p.get_json("/api/status")
        assert status["mode"] == "run" and status["cameras"][0]["live"] is True
        assert not page.errors
    finally:
        p.stop()


def lines_of(page, selector: str) -> list[int]:
    """How many lines each matching element's text takes (1 = it did not wrap)."""
    return page.eval_on_selector_all(selector, "els => els.map(e => { const r = document.createRange();"
                                               " r.selectNodeContents(e); return new Set([...r.getClientRects()]"
                                               ".map(c => Math.round(c.top))).size; })")


def test_chart_labels_fit_and_status_reads_on_a_phone(browser, server):
    """The chart's end labels lie inside the chart; at phone width the status
    badges do not break inside "5 s ago" and the disk bar has a legend."""
    ev_id = server.get_json("/api/events")["events"][0]["id"]
    for width, height in ((1280, 860), (390, 844)):
        ctx = browser.new_context(viewport={"width": width, "height": height})
        page = ctx.new_page()
        page.goto(f"{server.base}/#/event/{ev_id}")
        page.wait_for_selector(".chart svg text")
        outside = page.eval_on_selector(".chart svg", """svg => { const w = svg.viewBox.baseVal.width;
            return [...svg.querySelectorAll('text')].map(t => t.getBBox())
                .filter(b => b.x < 0 || b.x + b.width > w).length; }""")
        assert outside == 0
        shot(page, f"event-{width}")
        page.goto(f"{server.base}/#/status")
        page.wait_for_selector("#disk-legend")
        legend = page.inner_text("#disk-legend")
        assert "recordings" in legend and "free" in legend
        assert all(n == 1 for n in lines_of(page, ".state")), lines_of(page, ".state")
        shot(page, f"status-{width}")
        ctx.close()


def test_live_badge_says_event_open_while_an_event_waits_out_its_gap(browser, tmp_path):
    """With a long gap the demo's events stay open between movements: the badge
    then says "event open", not a red "motion" at 0.00%."""
    port = free_port()
    cfg = tmp_path / "gap.yaml"
    cfg.write_text("events:\n  gap_seconds: 60\n")
    p = Proc(["run", "--source", "demo", "--config", str(cfg), "--recordings", str(tmp_path / "rec"),
              "--web", f"127.0.0.1:{port}", "--duration", "120"], port=port)
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = ctx.new_page()
        page.goto(p.base + "/#/live")
        page.wait_for_function("() => { const b = document.querySelector('.cam-tile .state');"
                               " return b && b.textContent === 'event open'; }", timeout=90000)
        assert page.get_attribute(".cam-tile .state", "class") == "state open"
        assert lines_of(page, ".cam-tile .stats span") == [1] * page.locator(".cam-tile .stats span").count()
        shot(page, "live-phone")
        page.goto(p.base + "/#/status")
        page.wait_for_selector("[data-camera] .state")
        assert "ago" in page.inner_text("[data-camera] .state")
        assert all(n == 1 for n in lines_of(page, ".state")), lines_of(page, ".state")
        shot(page, "status-run-phone")
    finally:
        ctx.close()
        p.stop()


def test_a_rebound_dns_name_gets_nothing_in_chromium(browser, server):
    """DNS rebinding as the red team did it: Chromium resolves 127.evil.example to
    127.0.0.1 (a host-resolver rule stands in for the attacker's DNS); pages and the
    CSRF token under that name are refused, under 127.0.0.1 they load."""
    rebound = browser.browser_type.launch(executable_path=str(CHROMIUM),
                                          args=ARGS + ["--host-resolver-rules=MAP *.evil.example 127.0.0.1"])
    try:
        page = rebound.new_page()
        for path in ("/", "/api/session", "/api/events"):
            response = page.goto(f"http://127.evil.example:{server.port}{path}")
            assert response.status == 400 and "csrf" not in page.content(), path
        assert page.goto(f"{server.base}/api/session").status == 200
    finally:
        rebound.close()
