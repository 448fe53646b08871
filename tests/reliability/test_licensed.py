"""Licensed content stays licensed: with a (synthetic) CPT release bigger than the CPT cap, no
expansion answer lists members past max_cpt_expansion, paged or not, and reads and searches
of the CPT CodeSystem leave its concepts out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from terminology.cpt.ama.importer import import_to_db
from terminology.cpt.synthetic import write_synthetic_release
from terminology.settings import Settings

from ..conftest import CPT_URL, running_server
from .conftest import check_outcome, send

CAP = Settings().max_cpt_expansion
CODES = 2 * CAP + 500
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
EXPAND = f"/ValueSet/$expand?url={CPT_ALL}"


@pytest.fixture(scope="module")
def cpt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with a synthetic CPT release of CODES codes (response cache off)."""
    tmp = tmp_path_factory.mktemp("licensed")
    write_synthetic_release(tmp / "release", n_codes=CODES)
    import_to_db(tmp / "release", "2026", tmp / "cpt.db")
    with running_server(tmp, env={"TX_RESPONSE_CACHE_BYTES": "0"},
                        args=("--cpt", str(tmp / "cpt.db"))) as (base, _proc):
        yield base


# (query after the value set url, how many entries the answer lists, or None: too-costly)
WINDOWS = [
    ("", None),  # unpaged: the whole release
    ("&count=100000", None),
    ("&count=0", 0),  # only the total
    (f"&count={CAP}", CAP),
    (f"&offset={CAP - 1}&count=1", 1),
    (f"&offset={CAP}&count=1", None),  # the first member past the cap
    (f"&offset={CAP}&count={CAP}", None),  # the second page of a client paging by 1000
    (f"&offset={CAP // 2}&count={CAP // 2}", CAP // 2),
    (f"&offset={CAP // 2}", None),  # a window to the end
    ("&count=10&filter=tomography", 10),
]


@pytest.mark.parametrize(("query", "listed"), WINDOWS, ids=[q or "unpaged" for q, _ in WINDOWS])
def test_no_cpt_answer_lists_members_past_the_cap(cpt_server: str, query: str, listed: int | None) -> None:
    answer = send(cpt_server, "GET", EXPAND + query)
    if listed is None:
        body = check_outcome(answer, 422, "max_cpt_expansion", code="too-costly")
        assert f"up to member {CAP}" in body["issue"][0]["details"]["text"]
        return
    assert answer.status == 200, answer.body[:300]
    expansion = answer.json()["expansion"]
    assert len(expansion.get("contains", [])) == listed
    if "filter" not in query:
        assert expansion["total"] >= CODES


def test_paging_through_the_release_stops_at_the_cap(cpt_server: str) -> None:
    seen: list[str] = []
    offset, status = 0, 200
    while status == 200 and offset < CODES:
        answer = send(cpt_server, "GET", f"{EXPAND}&offset={offset}&count=250")
        status = answer.status
        if status == 200:
            seen += [c["code"] for c in answer.json()["expansion"]["contains"]]
        offset += 250
    assert status == 422
    assert len(seen) == CAP == len(set(seen))


def test_cpt_codesystem_read_and_search_leave_the_concepts_out(cpt_server: str) -> None:
    found = requests.get(f"{cpt_server}/CodeSystem", params={"url": CPT_URL}, timeout=10).json()
    resources = [e["resource"] for e in found.get("entry", [])]
    assert resources, found
    for resource in resources:
        assert "concept" not in resource
        read = requests.get(f"{cpt_server}/CodeSystem/{resource['id']}", timeout=10)
        assert read.status_code == 200
        assert "concept" not in read.json()
        assert len(read.content) < 20_000
