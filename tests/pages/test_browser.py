"""The pages in a real browser (headless Debian Chromium through Selenium) against the real server."""

from __future__ import annotations

import math
import re
import time

import pytest

from tests.conftest import ADMIN_TOKEN, AUTH
from tests.pages.conftest import LATE, REFRESH_SECONDS, SAME_STORY, seed_items, story_with

pytestmark = pytest.mark.slow
RED_BG = "rgb(179, 38, 30)"  # --isb-red-bg #b3261e
BLUE_FG = "rgb(11, 87, 208)"  # --isb-blue-fg #0b57d0


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def rows(driver) -> list[dict]:
    """The sidebar's body rows as the browser shows them."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#isb tbody tr[data-story-id]')).map(function (tr) {
          var badge = tr.querySelector('.isb-badge'), cs = getComputedStyle(badge);
          return {id: tr.getAttribute('data-story-id'), tier: tr.getAttribute('data-tier'),
                  rank: tr.cells[0].textContent, title: tr.cells[1].textContent, score: badge.textContent,
                  bg: cs.backgroundColor, border: cs.borderTopColor, color: cs.color};
        });""")


def feed(server) -> list[dict]:
    status, body = server.request("GET", "/v1/sidebar.json")
    assert status == 200, body
    return body["stories"]


def wait_story(server, member: str, seconds: float = 10.0) -> dict:
    """The sidebar story that has this headline among its members, once every worker serving the poll has it
    (each catches up with the store within a second); fails when none of the ten has it."""
    found: list[dict] = []

    def seen() -> bool:
        story = story_with(feed(server), member)
        found[:] = [story] if story is not None else []
        return bool(found)

    assert wait_for(seen, seconds), f"{member} is in no story of the top ten"
    return found[0]


def story_id(server, member: str) -> str:
    """The id of the sidebar story that has this headline among its members (fails when none of the ten has)."""
    return wait_story(server, member)["story_id"]


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def csp_errors(driver) -> list[str]:
    """Console messages about blocked content (Content-Security-Policy violations)."""
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_ten_rows_with_table_semantics_and_badges_by_tier(page_server, browser, screenshots):
    browser.get(url(page_server, "/sidebar"))
    shown = rows(browser)
    assert len(shown) == 10
    assert browser.find_element("css selector", "#isb caption").text.startswith("🕐 Top News in the Last Hour")
    heads = [th.text for th in browser.find_elements("css selector", "#isb thead th[scope=col]")]
    assert heads == ["#", "Title", "📊 i-Score"]
    expected = {s["story_id"]: s for s in feed(page_server)}
    tiers = set()
    for r in shown:
        story = expected[r["id"]]
        tiers.add(story["tier"])
        assert r["tier"] == story["tier"]
        assert r["score"].startswith(("🔴" if story["tier"] == "red" else "🔵") + f" {math.floor(story['i_score'] + 0.5)} / 100")
        # Meaning not by colour alone: a screen reader hears the tier, and the shapes differ (filled / outlined).
        assert r["score"].endswith("top tier" if story["tier"] == "red" else "below the top tier")
        if story["tier"] == "red":
            assert r["bg"] == RED_BG and r["color"] == "rgb(255, 255, 255)"
        else:
            assert r["border"] == BLUE_FG and r["color"] == BLUE_FG and r["bg"] != RED_BG
    assert tiers == {"red", "blue"}  # the seed has both, so both colours were checked
    assert [r["rank"] for r in shown] == [str(i) for i in range(1, 11)]
    more = browser.find_element("css selector", ".isb-more a")
    assert more.text.startswith("View More Top News")
    assert csp_errors(browser) == []  # no inline script or style was needed (the CSP would have blocked it)
    # The whole page: the window's height is the document's plus the browser's own frame.
    height = browser.execute_script("return document.documentElement.scrollHeight + window.outerHeight"
                                    " - window.innerHeight")
    browser.set_window_size(520, height)
    browser.save_screenshot(str(screenshots / "sidebar.png"))
    browser.set_window_size(520, 900)


def test_injected_script_headline_stays_text(page_server, browser, screenshots):
    browser.get(url(page_server, "/sidebar"))
    xss = story_id(page_server, "xss")
    titles = [r["title"] for r in rows(browser) if r["id"] == xss]
    assert titles and titles[0].startswith("<script>window.__pwned=1</script><img src=x")
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.find_elements("css selector", "#isb tbody script, #isb tbody img") == []
    # The same after the script has redrawn the rows from the JSON feed.
    browser.execute_script("document.getElementById('isb').tBodies[0].setAttribute('data-old', '1')")
    status, _ = page_server.request("POST", "/v1/headlines", seed_items([
        ("xss-2", "<b>bold</b> Earthquake kills at least 2,000 in southern Chile", "reuters")]), AUTH)
    assert status == 200
    # It joins the Turkey earthquake's story and, scoring higher, becomes its headline.
    assert wait_for(lambda: (story_with(feed(page_server), "xss-2") or {}).get("headline", "").startswith("<b>")), \
        "pick a headline that reaches the top ten"
    assert wait_for(lambda: browser.execute_script(
        "return !document.getElementById('isb').tBodies[0].hasAttribute('data-old')")), "the rows were not redrawn"
    assert any(r["title"].startswith("<b>bold</b> Earthquake") for r in rows(browser))
    titles = [r["title"] for r in rows(browser) if r["id"] == xss]
    assert titles and titles[0].startswith("<script>")
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.find_elements("css selector", "#isb tbody script, #isb tbody img, #isb tbody b") == []


def test_new_headline_appears_without_reload(page_server, browser, screenshots):
    browser.get(url(page_server, "/sidebar"))
    assert not any(r["title"].startswith(LATE[1]) for r in rows(browser))
    browser.execute_script("window.__samePage = 'yes'")
    status, _ = page_server.request("POST", "/v1/headlines", seed_items([LATE]), AUTH)
    assert status == 200
    late = story_id(page_server, LATE[0])
    assert wait_for(lambda: late in [r["id"] for r in rows(browser)], 5 * REFRESH_SECONDS + 5)
    assert browser.execute_script("return window.__samePage") == "yes"  # the rows changed, the page did not reload
    first = rows(browser)[0]
    assert first["id"] == late and first["title"].startswith(LATE[1])
    assert len(rows(browser)) == 10
    browser.save_screenshot(str(screenshots / "sidebar-after-poll.png"))


def test_editor_hides_a_story_and_it_leaves_the_sidebar(page_server, browser, screenshots):
    sidebar = url(page_server, "/sidebar")
    browser.get(sidebar)
    court = story_id(page_server, "court")
    assert court in [r["id"] for r in rows(browser)]
    sidebar_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.set_window_size(1300, 1000)
    browser.get(url(page_server, "/editor"))
    browser.find_element("id", "who").send_keys("Ada Editor")
    browser.find_element("id", "token").send_keys(ADMIN_TOKEN)
    browser.find_element("css selector", "form[action='/editor/login'] button").click()
    assert wait_for(lambda: "Signed in as" in browser.page_source)
    assert "token" not in browser.current_url and ADMIN_TOKEN not in browser.current_url
    row = browser.find_element("css selector", f"tr[data-story-id='{court}']")
    row.find_element("css selector", "select[name=action] option[value=hide]").click()
    row.find_element("css selector", "form[action='/editor/action'] button[type=submit]").click()
    assert wait_for(lambda: "Recorded: hide" in browser.page_source)
    audit = browser.find_element("xpath", "//h2[.='Audit list']/following-sibling::table[1]/tbody/tr[1]").text
    assert "Ada Editor" in audit and "hide" in audit and "Supreme Court" in audit
    # The injected headline is text on the desk too.
    assert browser.execute_script("return window.__pwned === undefined")
    assert csp_errors(browser) == []
    browser.save_screenshot(str(screenshots / "editor.png"))
    browser.close()
    browser.switch_to.window(sidebar_tab)
    # The open sidebar drops it at its next poll; a fresh load never shows it.
    assert wait_for(lambda: court not in [r["id"] for r in rows(browser)], 5 * REFRESH_SECONDS + 5)
    assert len(rows(browser)) == 10
    browser.get(sidebar)
    assert court not in [r["id"] for r in rows(browser)]
    assert court not in [s["story_id"] for s in feed(page_server)]


def test_sidebar_works_with_javascript_off(page_server, browser_nojs, screenshots):
    browser_nojs.get(url(page_server, "/sidebar"))
    shown = rows_nojs(browser_nojs)
    assert len(shown) == 10
    assert all(badge in ("red", "blue") for _, badge in shown)
    # Server-rendered, and the meta refresh (inside <noscript>) reloads it: a new headline shows up.
    late = ("late-nojs", "Prime minister resigns as government collapses", "reuters")
    assert story_with(feed(page_server), late[0]) is None
    status, _ = page_server.request("POST", "/v1/headlines", seed_items([late]), AUTH)
    assert status == 200
    story = wait_story(page_server, late[0])
    assert story["members"] == [late[0]], "pick a headline that is a story of its own"
    assert wait_for(lambda: story["story_id"] in [i for i, _ in rows_nojs(browser_nojs)], 5 * REFRESH_SECONDS + 10)
    browser_nojs.save_screenshot(str(screenshots / "sidebar-no-javascript.png"))


def test_one_story_from_two_outlets_is_one_row(page_server, browser):
    """Two headlines of one story from two outlets: clustered by the live window into one row, "2 outlets"."""
    browser.get(url(page_server, "/sidebar"))
    browser.execute_script("window.__samePage = 'yes'")
    status, body = page_server.request("POST", "/v1/headlines", seed_items(SAME_STORY), AUTH)
    assert status == 200 and body["new"] == 2, body
    story = wait_story(page_server, SAME_STORY[0][0])
    assert sorted(story["members"]) == sorted(i for i, _, _ in SAME_STORY) and story["coverage"] == 2
    assert wait_for(lambda: story["story_id"] in [r["id"] for r in rows(browser)], 5 * REFRESH_SECONDS + 5)
    assert browser.execute_script("return window.__samePage") == "yes"
    shown = rows(browser)
    japan = [r for r in shown if "Japan" in r["title"]]
    assert len(japan) == 1 and japan[0]["id"] == story["story_id"], japan
    assert japan[0]["title"].endswith("2 outlets") and len(shown) == 10
    link = browser.find_element("css selector", f"tr[data-story-id='{story['story_id']}'] a")
    assert link.get_attribute("href") == story["url"] and story["url"] in {f"https://news.example/{i}"
                                                                          for i, _, _ in SAME_STORY}


def rows_nojs(driver) -> list[tuple[str, str]]:
    """(story id, badge tier) of each row, read from the page source (page scripts are off, and the meta refresh
    may replace the document between two WebDriver calls)."""
    html = driver.page_source
    return re.findall(r'<tr data-story-id="([^"]+)" data-tier="[^"]*">.*?class="isb-badge isb-(red|blue)"', html, re.S)


def test_model_page_shows_the_report_plots(page_server, browser, screenshots):
    browser.set_window_size(1100, 1000)
    browser.get(url(page_server, "/model"))
    assert browser.find_element("css selector", "h1").text == "The served model"
    status, model = page_server.request("GET", "/v1/model")
    assert status == 200 and model["model_version"] in browser.page_source
    # The plots are data: images from the version's report.html; the page's CSP lets exactly those load.
    assert wait_for(lambda: browser.execute_script(
        "var i = document.querySelectorAll('img.plot'); return i.length > 0 && "
        "Array.from(i).every(function (x) { return x.complete && x.naturalWidth > 0; })"))
    assert csp_errors(browser) == []
    browser.save_screenshot(str(screenshots / "model.png"))
    browser.set_window_size(520, 900)


def _framed_rows(driver) -> int:
    """Rows of the sidebar inside the page's first iframe (0 when the frame was refused)."""
    frames = driver.find_elements("css selector", "#slot iframe")
    if not frames:
        return -1
    driver.switch_to.frame(frames[0])
    try:
        return len(driver.find_elements("css selector", "#isb tbody tr[data-story-id]"))
    finally:
        driver.switch_to.default_content()


def test_script_snippet_embeds_the_sidebar_on_a_configured_origin_only(page_server, embed_site, browser, screenshots):
    browser.set_window_size(900, 900)
    browser.get(f"http://127.0.0.1:{embed_site}/")  # the configured origin
    assert wait_for(lambda: _framed_rows(browser) == 10), "the embedded sidebar did not show ten rows"
    browser.save_screenshot(str(screenshots / "embedded.png"))
    # The same page from another origin (localhost is not 127.0.0.1): frame-ancestors refuses it.
    browser.get_log("browser")  # drop earlier messages
    browser.get(f"http://localhost:{embed_site}/")
    seen: list[str] = []

    def refused() -> bool:
        seen.extend(e["message"] for e in browser.get_log("browser"))
        return any("frame-ancestors" in m for m in seen)

    assert wait_for(refused), seen
    assert _framed_rows(browser) == 0
    browser.set_window_size(520, 900)
