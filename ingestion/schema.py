"""The canonical sales schema and how source column names map onto it (DESIGN.md)."""

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum


class FieldKind(StrEnum):
    DATE = "date"
    TIME = "time"
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"


@dataclass(frozen=True)
class CanonicalField:
    name: str
    kind: FieldKind
    required: bool
    aliases: tuple[str, ...]


# Aliases are compared after `normalize_column_name`; earlier aliases win ties, so an order
# or sale date is preferred over a ship date.
CANONICAL_FIELDS: tuple[CanonicalField, ...] = (
    CanonicalField(
        "date",
        FieldKind.DATE,
        True,
        (
            "date",
            "order date",
            "sale date",
            "sales date",
            "invoice date",
            "bill date",
            "transaction date",
            "order datetime",
            "datetime",
            "timestamp",
            "day",
            "ship date",
        ),
    ),
    CanonicalField("time", FieldKind.TIME, False, ("time", "order time", "sale time", "transaction time")),
    CanonicalField(
        "branch", FieldKind.STRING, True, ("branch", "store", "region", "shop", "outlet", "location", "store name")
    ),
    CanonicalField(
        "product_line",
        FieldKind.STRING,
        True,
        ("product line", "product category", "category", "product_line", "department", "product group"),
    ),
    CanonicalField("quantity", FieldKind.INTEGER, True, ("quantity", "qty", "units", "units sold", "quantity sold")),
    # Not "unit cost price": a cost price read as the selling price gives wrong revenue (it stays an extra).
    CanonicalField(
        "unit_price",
        FieldKind.DECIMAL,
        False,
        ("unit price", "price", "price each", "sales price", "selling price", "sale price", "unit sales price"),
    ),
    CanonicalField(
        "revenue",
        FieldKind.DECIMAL,
        False,
        ("total", "sales", "amount", "revenue", "total sales", "sales amount", "net sales", "line total"),
    ),
    CanonicalField(
        "cost",
        FieldKind.DECIMAL,
        False,
        ("cogs", "cost", "cost of goods sold", "total cost", "line cost", "extended cost"),
    ),
    CanonicalField(
        "gross_profit", FieldKind.DECIMAL, False, ("gross income", "profit", "gross profit", "margin amount")
    ),
    CanonicalField("tax", FieldKind.DECIMAL, False, ("tax", "tax 5%", "vat", "sales tax")),
    CanonicalField(
        "invoice_id",
        FieldKind.STRING,
        False,
        (
            "invoice id",
            "invoice",
            "invoice number",
            "invoice no",
            "bill no",
            "bill number",
            "order id",
            "transaction id",
            "receipt id",
        ),
    ),
    CanonicalField("city", FieldKind.STRING, False, ("city", "town")),
    CanonicalField("customer_type", FieldKind.STRING, False, ("customer type", "customer segment", "segment")),
    CanonicalField("gender", FieldKind.STRING, False, ("gender", "sex")),
    CanonicalField("payment", FieldKind.STRING, False, ("payment", "payment method", "payment type", "tender")),
    CanonicalField("rating", FieldKind.DECIMAL, False, ("rating", "customer rating", "score")),
)

# Names of a line's total, which win their field over a column of the field's bare name: a file
# with "Cost" and "Total Cost" (as with "Price" and "Total") has the unit cost in "Cost", while
# cost is summed per line like revenue. The bare column stays an extra dimension.
LINE_TOTAL_ALIASES: dict[str, tuple[str, ...]] = {"cost": ("total cost", "line cost", "extended cost")}

FIELDS_BY_NAME: dict[str, CanonicalField] = {field.name: field for field in CANONICAL_FIELDS}
REQUIRED_FIELDS: tuple[str, ...] = tuple(field.name for field in CANONICAL_FIELDS if field.required)
MEASURE_FIELDS: tuple[str, ...] = ("unit_price", "revenue", "cost", "gross_profit", "tax")


def normalize_column_name(name: str) -> str:
    """Case-, accent-, punctuation- and spacing-insensitive form of a column name."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9%]+", " ", text.lower())
    return text.strip()


_ALIAS_INDEX: dict[str, str] = {}
for _field in CANONICAL_FIELDS:
    for _alias in (_field.name, *_field.aliases):
        _ALIAS_INDEX.setdefault(normalize_column_name(_alias), _field.name)


def canonical_field_for(column: str) -> str | None:
    """The canonical field a source column name stands for, if any alias matches."""
    return _ALIAS_INDEX.get(normalize_column_name(column))


def header_fit_score(columns: list[str]) -> int:
    """How well a candidate header row fits the schema: required fields count double."""
    matched = {canonical_field_for(column) for column in columns} - {None}
    return sum(2 if FIELDS_BY_NAME[name].required else 1 for name in matched)


def required_fields_missing(fields: Collection[str]) -> list[str]:
    """The required fields that `fields` lacks, and revenue when no unit price can give it."""
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if "revenue" not in fields and "unit_price" not in fields:
        missing.append("revenue")
    return missing


def header_has_required(columns: list[str]) -> bool:
    """Whether a header row names every field a sales upload needs (by name or alias)."""
    return not required_fields_missing({canonical_field_for(column) for column in columns} - {None})
