"""The pieces every reader of an AMA CPT distribution file shares: the error that names file
and line, the file handle, and decoding (UTF-8 with or without a BOM, else cp1252)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_UNDEFINED_IN_CP1252 = "0x81, 0x8D, 0x8F, 0x90, 0x9D"


class AmaImportError(Exception):
    """A problem in the AMA distribution files, with the file and line it was found at."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(file, line, message)
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file} line {self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Source:
    """A distribution file: where it is and the name used for it in messages."""

    path: Path
    name: str  # the path relative to the release folder


def read_lines(src: Source) -> list[str]:
    """The file's lines: UTF-8 (BOM dropped), else cp1252; an error when neither decodes."""
    data = src.path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise AmaImportError(
                src.name, line,
                f"byte 0x{data[e.start]:02X} is neither UTF-8 nor cp1252 (cp1252 leaves "
                f"{_UNDEFINED_IN_CP1252} undefined): unreadable encoding") from e
    return [line.rstrip("\r") for line in text.split("\n")]
