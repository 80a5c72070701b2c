from steadymail.tracking.classify import classify_click, classify_open

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"


def test_opens() -> None:
    assert classify_open(BROWSER) == (False, "")
    assert classify_open("Mozilla/5.0")[0]  # Apple Mail Privacy Protection
    assert classify_open("Mozilla/5.0 (Windows) via ggpht.com GoogleImageProxy")[0]
    assert classify_open("")[0]


def test_clicks() -> None:
    assert classify_click("GET", BROWSER, 3600, 5) == (False, "")
    assert classify_click("HEAD", BROWSER, 3600, 5) == (True, "head-request")
    assert classify_click("GET", BROWSER, 1.5, 5) == (True, "too-soon-after-delivery")
    assert classify_click("GET", "Mimecast-Scanner/1.0", 3600, 5)[0]
    assert classify_click("GET", "python-requests/2.31", 3600, 5)[0]
    assert classify_click("GET", BROWSER, None, 5) == (False, "")
