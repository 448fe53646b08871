"""A word index over a code system's concepts, for the `$expand` text filter (`filter=`).

The filter's rule (as the scan in operations/expand.py applies it): every word of the filter
text is a prefix of some word of the concept's display, code or one of its designations, case
insensitively, words being runs of letters and digits. The index answers that with a few
lookups: the distinct words, sorted, so that the words a prefix starts are a contiguous range
(two bisects); each word's postings (the positions of the concepts that hold it, ascending)
concatenated in one array of ints, in the words' order, so a prefix's postings are one slice.
A query intersects the postings of its words and gives the exact positions, hence the exact
total, without looking at any concept.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from terminology.providers.base import Concept

# Runs of letters and digits (str.isalnum: \w without the underscore), as the scan splits them.
_WORD = re.compile(r"[^\W_]+")
_AFTER_ALL = "\U0010ffff"  # sorts after any character a word may continue with


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased (the filter's tokenisation)."""
    return _WORD.findall(text.lower())


def concept_texts(concept: Concept) -> Iterable[str]:
    """The texts of a concept the filter searches: display, code, designations."""
    if concept.display:
        yield concept.display
    yield concept.code
    for d in concept.designations:
        yield d.value


class TextIndex:
    """Word-prefix search over concepts identified by their position in a fixed sequence."""

    __slots__ = ("_words", "_starts", "_postings", "size")

    def __init__(self, concepts: Sequence[Concept]) -> None:
        # Built in arrays of ints (no list per word): on a big code system per-word lists
        # would leave tens of MB of fragmented heap behind once freed.
        ids: dict[str, int] = {}
        held = array("i")  # word ids, concept after concept
        ends = array("l")  # where each concept's word ids end in `held`
        find = _WORD.findall
        for concept in concepts:
            # one split of all the texts: a space never joins two words
            for w in set(find(" ".join(concept_texts(concept)).lower())):
                i = ids.get(w)
                if i is None:
                    i = ids[w] = len(ids)
                held.append(i)
            ends.append(len(held))
        self._words = sorted(ids)
        rank = array("l", bytes(8 * len(ids)))
        for r, w in enumerate(self._words):
            rank[ids[w]] = r
        del ids
        self._starts, self._postings = _postings(held, ends, rank)
        self.size = len(concepts)

    def _prefix(self, prefix: str) -> Sequence[int] | set[int]:
        """Positions of the concepts holding a word that starts with `prefix`."""
        lo = bisect_left(self._words, prefix)
        hi = bisect_left(self._words, prefix + _AFTER_ALL, lo)
        postings = self._postings[self._starts[lo]:self._starts[hi]]
        return postings if hi - lo <= 1 else set(postings)

    def search(self, query: str) -> list[int] | None:
        """Ascending positions of the concepts matching every word of `query` as a prefix;
        None when the query has no words (everything matches)."""
        wanted = sorted(set(words(query)), key=len, reverse=True)  # longest: likely rarest
        if not wanted:
            return None
        hits = [self._prefix(w) for w in wanted]
        hits.sort(key=len)
        if len(hits) == 1:
            return sorted(hits[0]) if isinstance(hits[0], set) else list(hits[0])
        found = set(hits[0])
        for other in hits[1:]:
            if not found:
                break
            found.intersection_update(other)
        return sorted(found)


def _postings(held: array[int], ends: array[int], rank: array[int]) -> tuple[array[int], array[int]]:
    """Counting sort of (word, concept position) pairs by word rank: each word's postings
    are one slice of the result, ascending (concepts are visited in order)."""
    starts = array("l", bytes(8 * (len(rank) + 1)))
    for i in held:
        starts[rank[i] + 1] += 1
    for r in range(1, len(starts)):
        starts[r] += starts[r - 1]
    cursor = array("l", starts)
    postings = array("i", bytes(4 * len(held)))
    begin = 0
    for pos, end in enumerate(ends):
        for k in range(begin, end):
            r = rank[held[k]]
            postings[cursor[r]] = pos
            cursor[r] += 1
        begin = end
    return starts, postings
