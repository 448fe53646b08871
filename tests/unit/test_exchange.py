"""HeaderList (terminology/http/exchange.py): response headers set by name, in sending order,
as werkzeug's Headers set them (for the one spelling our code uses), so the thin dispatch sends the same header lines as Flask."""

from __future__ import annotations

from werkzeug.datastructures import Headers

from terminology.http.exchange import HeaderList


def test_setting_a_header_appends_it_or_replaces_it_in_place_like_werkzeug() -> None:
    mine = HeaderList([("Content-Type", "application/fhir+json"), ("Content-Length", "2")])
    theirs = Headers([("Content-Type", "application/fhir+json"), ("Content-Length", "2")])
    for headers in (mine, theirs):
        headers["Vary"] = "Accept"
        headers["Content-Length"] = "3"
        headers.update({"X-Request-Id": "a", "Vary": "Accept, Accept-Language"})
    assert mine.items == list(theirs.items())
    assert "Vary" in mine and "ETag" not in mine
