"""The /docs pages in a real browser: headless Chromium driven over WebDriver (selenium).

Run by scripts/browser-test.sh, which starts the service and passes its base URL, a token
with both scopes, and the folder for screenshots:

    pages.py BASE_URL TOKEN ARTEFACT_DIR

Checks, each failing with a message naming what the page did:
- /docs loads without console errors and lists every operation of the served
  /openapi.json (the Rust test `the_served_document_lists_every_api_route` checks that
  the document has every route of http::API_ROUTES);
- a token obtained through the page's Authorize dialog (client credentials, the
  development client) makes "Try it out" on GET /v1/shows answer 200;
- /docs/catalogue shows one card per eligible show of tests/fixtures/feed-12.json (as
  feed-12.expected.json lists them) plus a show whose title is markup, shown as text,
  whose image URL is broken and becomes a placeholder, across pages of 2;
- /docs/catalogue follows changes: a show posted through the API after the page loaded
  appears, and a show deleted disappears, without a reload and without reading the list
  again (only GET /v1/shows/changes calls after the load); given a position of another
  change log (410), it lists again and follows on;
- both pages answer with the security headers.
"""

import base64
import copy
import json
import pathlib
import shutil
import sys
import tempfile
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HOSTILE = "<img src=x onerror=alert(1)>"
# The machine may be busy: generous waits (they end as soon as the condition holds).
WAIT = 60


def http(method, url, token=None, body=None):
    req = urllib.request.Request(url, method=method, data=body)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as res:
        return res.status, dict(res.headers), res.read()


def post_feed(base, token):
    """The fixture feed plus one eligible show with a hostile title and a broken image."""
    feed = json.loads((FIXTURES / "feed-12.json").read_text())
    expected = json.loads((FIXTURES / "feed-12.expected.json").read_text())["response"]
    eligible = {e["slug"] for e in expected}
    template = next(p for p in feed["payload"] if p["slug"] in eligible)
    hostile = copy.deepcopy(template)
    hostile["slug"] = "show/hostile-title"
    hostile["title"] = HOSTILE
    hostile["image"] = {"showImage": base + "/docs/no-such-image.png"}
    feed["payload"].append(hostile)
    status, _, _ = http("POST", base + "/v1/shows", token, json.dumps(feed).encode())
    assert status in (200, 201), f"POST /v1/shows answered {status}"
    shows = [(e["slug"], e["title"]) for e in expected] + [(hostile["slug"], HOSTILE)]
    images = {e["image"] for e in expected if e["image"]} | {hostile["image"]["showImage"]}
    return shows, images


def eligible_show(slug, title):
    """An eligible show of the fixture feed, renamed."""
    feed = json.loads((FIXTURES / "feed-12.json").read_text())
    expected = json.loads((FIXTURES / "feed-12.expected.json").read_text())["response"]
    eligible = {e["slug"] for e in expected}
    show = copy.deepcopy(next(p for p in feed["payload"] if p["slug"] in eligible))
    show["slug"] = slug
    show["title"] = title
    show.pop("image", None)
    return show


def check_headers(base, path):
    _, headers, _ = http("GET", base + path)
    headers = {k.lower(): v for k, v in headers.items()}
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, f"{path}: CSP {csp!r}"
    script_src = next((d for d in csp.split(";") if d.strip().startswith("script-src")), "")
    assert script_src and "'unsafe-inline'" not in script_src, f"{path}: script-src {script_src!r}"
    assert headers.get("x-content-type-options") == "nosniff", f"{path}: {headers}"


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        f"--user-data-dir={profile}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is given: selenium does not look for (or download) one.
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def severe(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait(driver, condition, what):
    try:
        return WebDriverWait(driver, WAIT).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; console: {driver.get_log('browser')}")


def documented_operations(base):
    _, _, body = http("GET", base + "/openapi.json")
    doc = json.loads(body)
    methods = {"get", "post", "put", "delete", "patch"}
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in methods}


def check_reference(driver, base, artefacts):
    driver.get(base + "/docs")
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")), "the operations")
    listed = set()
    for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip()
        path = block.find_element(By.CSS_SELECTOR, "[data-path]").get_attribute("data-path")
        listed.add((method, path))
    documented = documented_operations(base)
    missing = documented - listed
    assert not missing, f"/docs does not list {sorted(missing)}"
    assert ("GET", "/v1/shows") in listed

    # Authorize with the development client through the dialog.
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .btn.authorize").click()
    modal = wait(driver, ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")), "the dialog")
    oauth = next(
        c for c in modal.find_elements(By.CSS_SELECTOR, ".auth-container")
        if c.find_elements(By.CSS_SELECTOR, "input[data-name=clientId]")
    )
    for name, value in [("clientId", "local-client"), ("clientSecret", "local-secret")]:
        field = oauth.find_element(By.CSS_SELECTOR, f"input[data-name={name}]")
        field.clear()
        field.send_keys(value)
    for box in oauth.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"):
        if not box.is_selected():
            driver.execute_script("arguments[0].click()", box)
    oauth.find_element(By.CSS_SELECTOR, "button.authorize").click()
    wait(
        driver,
        lambda d: any(b.text.strip() == "Logout" for b in oauth.find_elements(By.TAG_NAME, "button")),
        "the token (the dialog's Logout button)",
    )
    errors = oauth.find_elements(By.CSS_SELECTOR, ".errors")
    assert not any(e.text.strip() for e in errors), f"authorize errors: {[e.text for e in errors]}"
    modal.find_element(By.CSS_SELECTOR, "button.close-modal").click()

    # Try it out: GET /v1/shows.
    op = driver.find_element(By.ID, "operations-shows-list")
    op.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    try_out = op.find_elements(By.CSS_SELECTOR, "button.try-out__btn")
    if try_out and try_out[0].text.strip() == "Try it out":
        try_out[0].click()
    wait(driver, lambda d: op.find_elements(By.CSS_SELECTOR, "button.execute"), "the Execute button")
    op.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait(
        driver,
        lambda d: op.find_elements(By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"),
        "the live response",
    )
    assert status[0].text.strip().startswith("200"), f"Try it out answered {status[0].text!r}"
    curl = op.find_element(By.CSS_SELECTOR, ".curl-command").text
    assert "Authorization: Bearer " in curl, f"the request carried no token: {curl}"

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", status[0])
    driver.save_screenshot(str(artefacts / "docs.png"))
    errors = severe(driver)
    assert not errors, f"/docs logged console errors: {errors}"


def check_catalogue(driver, base, artefacts, shows, images):
    driver.get(base + "/docs/catalogue?limit=2")
    seen = []
    while True:
        wait(
            driver,
            lambda d: "on this page" in d.find_element(By.ID, "status").text
            or "answered" in d.find_element(By.ID, "status").text,
            "a page of the catalogue",
        )
        status = driver.find_element(By.ID, "status").text
        assert "on this page" in status, f"the preview says {status!r}"
        cards = driver.find_elements(By.CSS_SELECTOR, "#grid .card")
        assert 0 < len(cards) <= 2, f"{len(cards)} cards on a page of 2"
        slugs = [c.get_attribute("data-slug") for c in cards]
        seen += [(s, c.find_element(By.CSS_SELECTOR, ".title").text) for s, c in zip(slugs, cards)]
        if "show/hostile-title" in slugs:
            # The broken image became a placeholder, the card is still whole.
            card = driver.find_element(By.CSS_SELECTOR, '#grid .card[data-slug="show/hostile-title"]')
            wait(driver, lambda d: "broken-image" in card.get_attribute("class"), "the placeholder")
            assert card.find_element(By.CSS_SELECTOR, ".placeholder").text == "Image unavailable"
            assert not driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]'), "the title became an <img>"
            driver.save_screenshot(str(artefacts / "catalogue-hostile.png"))
        nxt = driver.find_element(By.ID, "next")
        if not nxt.is_enabled():
            break
        first = cards[0]
        nxt.click()
        wait(driver, ec.staleness_of(first), "the next page")
    assert sorted(seen) == sorted(shows), f"cards {seen}\nexpected {shows}"
    assert len(seen) == len(set(seen)), f"a show on two pages: {seen}"
    try:
        alert = driver.switch_to.alert
        raise AssertionError(f"the page raised an alert: {alert.text!r}")
    except NoAlertPresentException:
        pass

    # The first page, for the artefact.
    driver.get(base + "/docs/catalogue")
    wait(driver, lambda d: "on this page" in d.find_element(By.ID, "status").text, "the first page")
    driver.save_screenshot(str(artefacts / "catalogue.png"))
    # The only errors allowed: the feed's images failing to load (the tests run offline,
    # and one is broken on purpose).
    errors = [
        e for e in severe(driver)
        if not (e["source"] == "network" and e["message"].split(" ")[0] in images)
    ]
    assert not errors, f"/docs/catalogue logged console errors: {errors}"


def other_log(cursor):
    """The same position in another change log: the cursor format of
    src/catalogue/changes.rs (a format byte, log, version, offset, FNV-1a checksum)."""
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert len(raw) == 25, f"a cursor of {len(raw)} bytes: {cursor!r}"
    log = (int.from_bytes(raw[1:9], "big") + 1) % 2**64
    raw[1:9] = log.to_bytes(8, "big")
    h = 0x811C9DC5
    for b in raw[:21]:
        h = ((h ^ b) * 0x01000193) % 2**32
    raw[21:25] = h.to_bytes(4, "big")
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


# The page's requests to the API since it loaded: (lists, changes calls).
API_CALLS = """
const names = performance.getEntriesByType("resource").map((e) => new URL(e.name).pathname);
return [names.filter((p) => p === "/v1/shows").length,
        names.filter((p) => p === "/v1/shows/changes").length];
"""


def check_follow(driver, base, token, shows, images, artefacts):
    driver.get(base + "/docs/catalogue")
    wait(driver, lambda d: "on this page" in d.find_element(By.ID, "status").text, "the first page")
    cards = driver.find_elements(By.CSS_SELECTOR, "#grid .card")
    assert len(cards) == len(shows), f"{len(cards)} cards, expected all {len(shows)} on one page"
    # A reload would lose this mark.
    driver.execute_script("window.notReloaded = true")
    lists_before, _ = driver.execute_script(API_CALLS)

    slug, title = "show/posted-after-load", "Posted after the page loaded"
    feed = {"payload": [eligible_show(slug, title)], "skip": 0, "take": 1, "totalRecords": 1}
    status, _, _ = http("POST", base + "/v1/shows", token, json.dumps(feed).encode())
    assert status in (200, 201), f"POST /v1/shows answered {status}"
    selector = f'#grid .card[data-slug="{slug}"]'
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, selector), f"the posted show {slug}")
    added = driver.find_element(By.CSS_SELECTOR, selector)
    assert added.find_element(By.CSS_SELECTOR, ".title").text == title
    assert "added" in added.get_attribute("class"), "the new card is not marked as added"
    driver.save_screenshot(str(artefacts / "catalogue-followed.png"))

    gone = shows[0][0]
    status, _, _ = http("DELETE", base + "/v1/shows/" + gone, token)
    assert status == 204, f"DELETE /v1/shows/{gone} answered {status}"
    wait(
        driver,
        lambda d: not d.find_elements(By.CSS_SELECTOR, f'#grid .card[data-slug="{gone}"]'),
        f"the deleted show {gone} to disappear",
    )
    assert driver.execute_script("return window.notReloaded === true"), "the page reloaded"
    lists_after, changes = driver.execute_script(API_CALLS)
    assert lists_after == lists_before, f"the page read the list again ({lists_before} → {lists_after})"
    assert changes > 0, "no GET /v1/shows/changes call"
    remaining = {c.get_attribute("data-slug") for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card")}
    assert remaining == ({s for s, _ in shows} - {gone}) | {slug}, f"cards {sorted(remaining)}"

    # A position of another change log (410 Gone): the page lists again, then follows on.
    forged = other_log(driver.execute_script("return state.since"))
    driver.execute_script("state.since = arguments[0]", forged)
    wait(driver, lambda d: d.execute_script(API_CALLS)[0] > lists_after, "the list read again after 410")
    wait(driver, lambda d: "on this page" in d.find_element(By.ID, "status").text, "the list again")
    since = driver.execute_script("return state.since")
    assert since and since != forged, f"the page kept the gone position: {since!r}"
    status, _, _ = http("DELETE", base + "/v1/shows/" + slug, token)
    assert status == 204, f"DELETE /v1/shows/{slug} answered {status}"
    wait(
        driver,
        lambda d: not d.find_elements(By.CSS_SELECTOR, selector),
        f"the deleted show {slug} to disappear after the list was read again",
    )
    assert driver.execute_script("return window.notReloaded === true"), "the page reloaded"
    # The only network errors allowed: the images, and the one 410 asked for.
    errors = [
        e for e in severe(driver)
        if not (e["source"] == "network" and e["message"].split(" ")[0] in images)
        and not (e["source"] == "network" and "/v1/shows/changes" in e["message"] and " 410 " in e["message"])
    ]
    assert not errors, f"/docs/catalogue logged console errors while following: {errors}"


def main():
    base, token, artefacts = sys.argv[1].rstrip("/"), sys.argv[2], pathlib.Path(sys.argv[3])
    artefacts.mkdir(parents=True, exist_ok=True)
    for path in ["/docs", "/docs/catalogue", "/docs/catalogue.js", "/docs/swagger-initializer.js"]:
        check_headers(base, path)
    shows, images = post_feed(base, token)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = browser(profile)
        try:
            check_reference(driver, base, artefacts)
            print("ok: /docs lists every documented operation; authorize + try it out: 200")
            check_catalogue(driver, base, artefacts, shows, images)
            print(f"ok: /docs/catalogue shows the {len(shows)} eligible shows, the hostile title as text")
            check_follow(driver, base, token, shows, images, artefacts)
            print("ok: /docs/catalogue follows changes: a posted show appears, a deleted one goes, no reload")
        finally:
            driver.quit()
    print(f"screenshots in {artefacts}")


if __name__ == "__main__":
    main()
