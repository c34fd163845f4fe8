"""An inbound file's bytes as text: the encoding it is read in, its byte-order mark, and the byte where it stops
being valid in that encoding.

Files are UTF-8 unless the sender says otherwise. Excel on a Chinese system saves "CSV" in GBK, so GB18030 is the
other encoding taken: the national standard (GB 18030) that contains GBK and GB2312 and encodes every Unicode
character; rare characters of names, such as 𠮷, take four bytes in it and cannot be written in GBK at all. A file
that begins with a byte-order mark is read in the encoding the mark names, whatever was stated: the mark cannot be
mistaken (Excel's "CSV UTF-8" writes one). Nothing else is guessed: GB18030 bytes are not reliably told apart from
those of other double-byte encodings, and a wrong guess would load garbled names.

Nothing here imports Prefect or the database: the command line checks a file with it before any flow starts.
"""

from __future__ import annotations

import codecs
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rules.errors import UserError

ENCODINGS = ("utf-8", "gb18030")
# Other names an operator may give, and the encoding that reads them (GB18030 contains GBK and GB2312).
ALIASES = {
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "cp936": "gb18030",
    "gb-18030": "gb18030",
}
BOMS = {"utf-8": codecs.BOM_UTF8, "gb18030": b"\x84\x31\x95\x33"}
CHUNK = 1 << 20
WHITESPACE = b" \t\r\n"
# What to do about a file that is not valid in the encoding it was read in, wherever a file is given.
HINTS = {
    "utf-8": "saved as GBK/GB18030 (Excel on a Chinese system)? give its encoding: --encoding gb18030, "
    "or in the inbox a name ending .gb18030.csv",
    "gb18030": "not a GB18030 file? UTF-8 is the default: leave out --encoding gb18030, or in the inbox "
    "the .gb18030 of its name",
}


class IntakeError(UserError):
    """The file cannot be read at all (missing, empty, not in its encoding, wrong header)."""


def encoding_name(value: str) -> str:
    """The encoding a name given by an operator stands for (`utf-8` or `gb18030`)."""
    name = value.strip().lower().replace("_", "-")
    name = ALIASES.get(name, name)
    if name not in ENCODINGS:
        raise UserError(
            f"encoding {value!r}: one of {', '.join(ENCODINGS)} (GBK and GB2312 files are read as gb18030, "
            "which contains them)"
        )
    return name


def encoding_of(path: Path, stated: str) -> str:
    """The encoding a file is read in: the one its byte-order mark names, else the one stated."""
    with path.open("rb") as f:
        head = f.read(4)
    return next((name for name, bom in BOMS.items() if head.startswith(bom)), encoding_name(stated))


def is_blank(path: Path) -> bool:
    """Whether the file holds nothing but a byte-order mark and white space."""
    with path.open("rb") as f:
        chunk = f.read(CHUNK)
        for bom in BOMS.values():
            if chunk.startswith(bom):
                chunk = chunk[len(bom) :]
                break
        while chunk:
            if chunk.strip(WHITESPACE):
                return False
            chunk = f.read(CHUNK)
    return True


def decoded(path: Path, encoding: str, hint: str | None = None) -> Iterator[str]:
    """The file's text, chunk by chunk, decoded strictly (a leading byte-order mark dropped). A byte that is not
    valid in the encoding is an `IntakeError` naming the file and the byte's offset from the start of the file."""
    hint = hint or HINTS[encoding]
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    first = True
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            held = len(decoder.getstate()[0])  # bytes of a character begun in the chunk before
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise IntakeError(f"{path}: not {encoding} at byte {offset - held + e.start}; {hint}") from None
            offset += len(chunk)
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            yield text
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise IntakeError(f"{path}: not {encoding}: the file ends inside a character; {hint}") from None


def check_decodes(path: Path, encoding: str, hint: str | None = None) -> None:
    """Read the whole file in its encoding; an `IntakeError` names the first byte that is not valid in it."""
    for _ in decoded(path, encoding, hint):
        pass


@contextlib.contextmanager
def as_utf8(path: Path, encoding: str = "utf-8") -> Iterator[Path]:
    """The file as UTF-8, which the CSV reader takes: the file itself when it is UTF-8 (its bytes are checked as
    it is read), else a UTF-8 copy in a temporary folder, removed afterwards. An empty file, or one not valid in
    its encoding, is an `IntakeError`."""
    used = encoding_of(path, encoding)
    if is_blank(path):
        raise IntakeError(f"{path}: the file is empty; nothing was loaded")
    if used == "utf-8":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ltc-inbound-") as folder:
        copy = Path(folder) / f"{path.stem}.utf-8.csv"
        with copy.open("w", encoding="utf-8", newline="") as out:
            for text in decoded(path, used):
                out.write(text)
        yield copy
