"""How money and personal numbers are shown to people: yuan from integer fen, ID and account numbers masked."""

from __future__ import annotations


def yuan(fen: int, grouping: bool = False) -> str:
    """Integer fen as yuan with two decimals, without floats: 204600 -> "2046.00", -5 -> "-0.05"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money must be integer fen, got {fen!r}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouping else f"{sign}{whole}.{cents:02d}"


def mask_id(value: str | None) -> str:
    """Keep the first 3 and last 4 characters, mask the rest: 450103199001011234 -> 450***********1234.

    Whitespace is dropped first (bank accounts are often written in groups). A value of 7 characters or fewer
    would be shown whole, so it is masked whole.
    """
    text = "".join(str(value or "").split())
    if len(text) <= 7:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]
