"""ID numbers (身份证号) at rest (个人信息保护法 第五十一条: encryption and other security measures).

The record never holds an ID number in clear. `person.id_number_enc` holds it encrypted (AES-256-GCM, a fresh
nonce per value, so equal numbers give different ciphertexts) and `person.id_hash` holds a keyed hash
(HMAC-SHA256) that matches equal numbers without revealing them. Both keys are derived from one secret:

- `LTC_ID_KEY`: the secret itself, 32 bytes as base64 (production: from a secret store, never the repository);
- else `LTC_ID_KEY_FILE`: a file holding it;
- else `$LTC_HOME/id.key`, created with mode 0600 on first use (the embedded default and the demo).

Losing the secret loses the ID numbers; rotating it means decrypting and re-encrypting every row.
The check digit of GB 11643-1999 is validated at intake (`valid_id_number`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.formatting import mask_id
from common.settings import get_settings

VERSION = "v1"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


class IdKeyError(RuntimeError):
    """The ID key is missing, malformed or not the one the record was written with."""


def check_digit(first17: str) -> str:
    """GB 11643-1999: the 18th character from the first 17 digits (ISO 7064 MOD 11-2)."""
    return CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def valid_id_number(value: str) -> bool:
    """18 characters, 17 digits then a digit or X, with the right check digit."""
    v = value.upper()
    return len(v) == 18 and v[:17].isdigit() and (v[17].isdigit() or v[17] == "X") and check_digit(v[:17]) == v[17]


def check_digit_ok(col: pl.Expr) -> pl.Expr:
    """`valid_id_number` on a column of text, as one polars expression (no per-row Python)."""
    v = col.str.to_uppercase()
    total = pl.sum_horizontal([v.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(WEIGHTS)])
    expected = pl.lit(list(CHECK)).list.get(total % 11)
    return v.str.contains(r"^\d{17}[\dX]$").fill_null(False) & (v.str.slice(17, 1) == expected).fill_null(False)


def _secret() -> bytes:
    given = os.environ.get("LTC_ID_KEY")
    if given:
        return _decode(given, "LTC_ID_KEY")
    path = Path(os.environ.get("LTC_ID_KEY_FILE") or get_settings().home / "id.key")
    if not path.exists():
        if os.environ.get("LTC_ID_KEY_FILE"):
            raise IdKeyError(f"LTC_ID_KEY_FILE {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return _decode(path.read_text().strip(), str(path))


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as e:
        raise IdKeyError(f"{where}: not base64") from e
    if len(key) != 32:
        raise IdKeyError(f"{where}: the key must be 32 bytes, got {len(key)}")
    return key


@functools.cache
def _keys(secret: bytes) -> tuple[AESGCM, bytes]:
    enc = hmac.new(secret, b"ltc-claims id_number encryption", hashlib.sha256).digest()
    mac = hmac.new(secret, b"ltc-claims id_number matching", hashlib.sha256).digest()
    return AESGCM(enc), mac


def derived_key(purpose: str) -> bytes:
    """A key of its own for another use of the same secret (e.g. hashing approval codes), so that one backed-up
    secret serves them all and none of them can be computed from another."""
    return hmac.new(_secret(), f"ltc-claims {purpose}".encode(), hashlib.sha256).digest()


def _current() -> tuple[AESGCM, bytes]:
    return _keys(_secret())


def normalise(id_number: str) -> str:
    return "".join(id_number.split()).upper()


def id_hash(id_number: str) -> str:
    """The keyed hash that matches equal ID numbers (hex, 64 characters)."""
    return hmac.new(_current()[1], normalise(id_number).encode(), hashlib.sha256).hexdigest()


def encrypt(id_number: str) -> str:
    aead, _ = _current()
    nonce = secrets.token_bytes(12)
    sealed = aead.encrypt(nonce, normalise(id_number).encode(), VERSION.encode())
    return f"{VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt(token: str) -> str:
    aead, _ = _current()
    version, _, body = token.partition(":")
    if version != VERSION:
        raise IdKeyError(f"unknown ID ciphertext version {version!r}")
    raw = base64.b64decode(body)
    try:
        return aead.decrypt(raw[:12], raw[12:], VERSION.encode()).decode()
    except Exception as e:  # cryptography's InvalidTag: another key, or an altered value
        raise IdKeyError("an ID number does not decrypt with this key (LTC_ID_KEY)") from e


def seal(frame: pl.DataFrame, column: str = "id_number") -> pl.DataFrame:
    """The frame with its clear `column` replaced by `id_number_enc` and `id_hash`."""
    if column not in frame.columns:
        return frame
    values = frame[column].to_list()
    return frame.drop(column).with_columns(
        pl.Series("id_number_enc", [encrypt(v) for v in values], dtype=pl.Utf8),
        pl.Series("id_hash", [id_hash(v) for v in values], dtype=pl.Utf8),
    )


def unseal(frame: pl.DataFrame, column: str = "id_number_enc") -> pl.DataFrame:
    """The frame with `column` decrypted into `id_number`."""
    if column not in frame.columns:
        return frame
    return frame.drop(column).with_columns(
        pl.Series("id_number", [None if v is None else decrypt(v) for v in frame[column].to_list()], dtype=pl.Utf8)
    )


def masked(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """The frame with the encrypted ID numbers of `column` replaced by their masked forms (450***********1234);
    each distinct value is decrypted once."""
    tokens = frame[column].drop_nulls().unique().to_list()
    shown = pl.DataFrame(
        {column: tokens, "_shown": [mask_id(decrypt(v)) for v in tokens]}, schema={column: pl.Utf8, "_shown": pl.Utf8}
    )
    return (
        frame.join(shown, on=column, how="left", maintain_order="left")
        .with_columns(pl.col("_shown").alias(column))
        .drop("_shown")
    )
