"""Sets of concepts as bitmaps over a provider's ordered concepts (positions 0..n-1).

A provider that keeps its concepts in one fixed order (`ordered_concepts()`) can compile a
filter once into a bitmap: a Python int whose bit i is set when the concept at position i
matches. Intersecting two filters is one `&`, a count is `int.bit_count()`, a membership
test one shift, whatever the size of the code system; the concepts themselves are looked up
only for the members an expansion shows (`PositionRun`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from terminology.providers.base import Concept

# bits set in each byte value: rank within a bitmap's bytes without a per-bit loop
_BYTE_COUNTS = bytes(bin(b).count("1") for b in range(256))


def bitmap(positions: Iterable[int], size: int) -> int:
    """The bitmap with the given positions (each in 0..size-1) set."""
    buf = bytearray((size + 7) // 8)
    for p in positions:
        buf[p >> 3] |= 1 << (p & 7)
    return int.from_bytes(buf, "little")


def span_bitmap(start: int, stop: int) -> int:
    """The bitmap of positions start..stop-1."""
    return ((1 << (stop - start)) - 1) << start if stop > start else 0


def has(bits: int, position: int) -> bool:
    """Whether `position` is set in `bits`."""
    return (bits >> position) & 1 == 1


def positions(bits: int, start: int = 0, stop: int | None = None) -> list[int]:
    """The set positions of `bits`, ascending; only the members ranked start..stop-1."""
    data = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    out: list[int] = []
    rank = 0
    counts = _BYTE_COUNTS
    for i, b in enumerate(data):
        if not b:
            continue
        n = counts[b]
        if rank + n <= start:  # the whole byte lies before the window
            rank += n
            continue
        base = i << 3
        while b:
            low = b & -b
            if rank >= start:
                if stop is not None and rank >= stop:
                    return out
                out.append(base + low.bit_length() - 1)
            rank += 1
            b ^= low
        if stop is not None and rank >= stop:
            return out
    return out


class PositionRun(Sequence[Concept]):
    """The concepts of `ordered` whose positions are set in `bits`, in order, looked up only
    when read: its length is a popcount, a slice builds only the concepts it holds."""

    __slots__ = ("ordered", "bits", "_len", "_all")

    def __init__(self, ordered: Sequence[Concept], bits: int) -> None:
        self.ordered = ordered
        self.bits = bits
        self._len = bits.bit_count()
        self._all: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Concept: ...
    @overload
    def __getitem__(self, index: slice) -> list[Concept]: ...

    def __getitem__(self, index: int | slice) -> Concept | list[Concept]:
        ordered = self.ordered
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step != 1:
                return [ordered[p] for p in self._positions()[index]]
            return [ordered[p] for p in self._window(start, stop)]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        return ordered[self._window(index, index + 1)[0]]

    def __iter__(self) -> Iterator[Concept]:
        ordered = self.ordered
        return (ordered[p] for p in self._positions())

    def _window(self, start: int, stop: int) -> list[int]:
        if self._all is not None:
            return self._all[start:stop]
        return positions(self.bits, start, stop) if stop > start else []

    def _positions(self) -> list[int]:
        if self._all is None:
            self._all = positions(self.bits)
        return self._all

    def restricted(self, wanted: Iterable[int]) -> list[Concept]:
        """The concepts at the `wanted` positions (ascending) that this run holds."""
        bits, ordered = self.bits, self.ordered
        return [ordered[p] for p in wanted if (bits >> p) & 1]
