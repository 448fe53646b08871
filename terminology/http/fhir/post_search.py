"""Search by POST (R4 http.html#search): `POST [type]/_search` with the parameters in an
application/x-www-form-urlencoded body, joined to any in the query string. FHIR clients switch
to it when a query gets long; the answer is the same searchset Bundle as the GET's.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from flask import Request

from terminology.errors import BadRequest, UnsupportedMediaType
from terminology.params import ParamBag, bag_from_query

FORM_TYPE = "application/x-www-form-urlencoded"


def search_bag(request: Request, read_body: Callable[[], bytes]) -> ParamBag:
    """The search parameters of a GET or POST `_search`: the query, then the form body;
    415 for a body that is not a form, 400 for one that is not UTF-8."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST":
        raw = read_body()
        if raw and (request.mimetype or "").lower() != FORM_TYPE:
            raise UnsupportedMediaType(f"Content-Type '{request.mimetype}' is not supported for a "
                                       f"search by POST; send the parameters as {FORM_TYPE}")
        try:
            pairs += parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError as e:
            raise BadRequest("The form body is not valid UTF-8") from e
    return bag_from_query(pairs)
