"""Counts in messages: "1 row", "2 rows", never "1 rows"."""


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """`number` with thousands separators and the noun in the form it needs."""
    noun = singular if number == 1 else (plural or singular + "s")
    return f"{number:,} {noun}"
