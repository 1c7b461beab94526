"""How text values (branch names, product lines, any dimension) are compared across the product.

Files are read with their text in Unicode NFC and without invisible characters at the edges
(ingestion.readers); every name typed or stored elsewhere — a user's branch scope, a filter
value in a URL or an API call — is tidied the same way, or a decomposed "Zürich" (macOS) would
match nothing the files gave.
"""

import re
import unicodedata

# Invisible characters that editors, web forms and exports leave at the edge of a value
# ("\u200bBern"); they are not whitespace, so a plain strip keeps them.
ZERO_WIDTH = "\u200b\u200c\u200d\ufeff\u2060"
# A regex (Python's and Polars' alike) of whitespace and invisible characters at either edge.
INVISIBLE_EDGES = rf"^[\s{ZERO_WIDTH}]+|[\s{ZERO_WIDTH}]+$"
_INVISIBLE_EDGES = re.compile(INVISIBLE_EDGES)


def text_tidy(value: str) -> str:
    """`value` in NFC without whitespace or invisible characters at its edges; ASCII as it is, trimmed."""
    if value.isascii():
        return value.strip()
    return _INVISIBLE_EDGES.sub("", unicodedata.normalize("NFC", value))
