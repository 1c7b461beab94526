"""Step 4 of the data flow (DESIGN.md): which source column feeds which canonical field.

A mapping is resolved from, in order of authority: the explicit mapping sent with the upload,
the mapping saved for the datasource (for the columns still present), then the known aliases
of `ingestion.schema`. Source columns that feed no canonical field are kept as extra string
dimensions under a safe snake_case name.

Two shapes, as each side speaks: the API's explicit mapping is "source column → canonical field"
("" or null to ignore a column); the mapping saved per datasource is `ColumnMapping.fields`,
"canonical field → source column" (the `ingestion.models.ColumnMapping.mapping` JSON).
"""

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass

from analytics.sql import RESERVED_DIMENSION_NAMES
from ingestion.errors import AMBIGUOUS_COLUMNS, INVALID_MAPPING, MISSING_REQUIRED_COLUMN, IngestionError
from ingestion.schema import (
    CANONICAL_FIELDS,
    FIELDS_BY_NAME,
    LINE_TOTAL_ALIASES,
    normalize_column_name,
    required_fields_missing,
)

# Names an extra dimension may never take: every canonical field plus the columns the
# transform adds, so an extra can never shadow a measure in the published data, and the names
# the query layer gives its own columns (a "Revenue sum" column clashed with the part
# `revenue_sum`, an "Hour" column with the hour computed from the time).
RESERVED_NAMES: frozenset[str] = frozenset(
    {*FIELDS_BY_NAME, "datetime", "row_number", "__row_number", *RESERVED_DIMENSION_NAMES}
)

_ALIAS_RANK: dict[str, tuple[str, int]] = {}
for _field in CANONICAL_FIELDS:
    for _rank, _alias in enumerate((_field.name, *_field.aliases)):
        _ALIAS_RANK.setdefault(normalize_column_name(_alias), (_field.name, _rank))
_LINE_TOTALS: dict[str, str] = {
    normalize_column_name(alias): name for name, aliases in LINE_TOTAL_ALIASES.items() for alias in aliases
}
for _alias, _name in _LINE_TOTALS.items():
    _ALIAS_RANK[_alias] = (_name, -1)  # before the field's own name


@dataclass(frozen=True)
class ColumnMapping:
    """How a file's columns feed the canonical schema."""

    fields: dict[str, str]  # canonical field → source column
    extras: dict[str, str]  # extra dimension name → source column
    ignored: tuple[str, ...]  # source columns dropped on request
    derived: tuple[str, ...]  # measures computed from others (see `mapping_derivable`)

    def source_for(self, name: str) -> str | None:
        """The source column behind a canonical field or an extra dimension."""
        return self.fields.get(name) or self.extras.get(name)


def mapping_resolve(
    *,
    columns: list[str],
    explicit: dict[str, str | None] | None = None,
    saved: dict[str, str] | None = None,
    repeated: tuple[tuple[str, ...], ...] = (),
    saved_columns: list[str] | None = None,
) -> ColumnMapping:
    """Resolve the mapping of a file's columns; raises IngestionError when it cannot be used.

    `explicit` is source column → canonical field; `saved` is canonical field → source column,
    chosen for a file with `saved_columns`. `repeated`: groups of columns with the same header
    (`readers.columns_repeated`); a field is never read from one of them unless chosen.
    """
    mapping = mapping_propose(
        columns=columns, explicit=explicit, saved=saved, repeated=repeated, saved_columns=saved_columns
    )
    _mapping_require(mapping, columns)
    return mapping


def mapping_propose(
    *,
    columns: list[str],
    explicit: dict[str, str | None] | None = None,
    saved: dict[str, str] | None = None,
    repeated: tuple[tuple[str, ...], ...] = (),
    saved_columns: list[str] | None = None,
) -> ColumnMapping:
    """The mapping `mapping_resolve` would make, even when it lacks a required field: what the
    preview proposes for the uploader to complete. Raises IngestionError for an unusable option."""
    targets = _explicit_targets(columns, explicit or {})
    chosen = set(targets)
    for field, column in (saved or {}).items():
        # A saved choice applies only to a column still present and a field still free.
        if field in FIELDS_BY_NAME and column in columns and column not in targets and field not in targets.values():
            targets[column] = field
    _alias_targets_add(columns, targets)
    for group in repeated:
        # A saved choice among these very columns was made when they were all there.
        saved_choice = set(group) <= set(saved_columns or ()) and bool(set(group) & set((saved or {}).values()))
        if not (chosen & set(group)) and not saved_choice:
            _repeated_refuse(group, columns, targets)
    return _mapping_build(columns, targets)


def saved_mapping_problem(*, mapping: object, source_columns: object) -> str | None:
    """Why a datasource's saved mapping cannot be used (it is edited in the admin as free JSON),
    or None: it must be an object of canonical field → source column name."""
    example = '{"revenue": "Total", "branch": "Store"}'
    if not isinstance(mapping, dict):
        return (
            f"The mapping must be an object of canonical field → source column, e.g. {example} "
            f"(got {json.dumps(mapping)})."
        )
    if unknown := sorted(set(mapping) - set(FIELDS_BY_NAME)):
        return f"Unknown canonical field {unknown[0]!r} in the mapping; the fields are {', '.join(FIELDS_BY_NAME)}."
    for field, column in mapping.items():
        if not isinstance(column, str) or not column.strip():
            return f"The source column for {field} must be a column name in quotes (got {json.dumps(column)})."
    if not isinstance(source_columns, list) or not all(isinstance(column, str) for column in source_columns):
        return (
            f'The source columns must be a list of column names, e.g. ["Date", "Total"] '
            f"(got {json.dumps(source_columns)})."
        )
    return None


def mapping_saved_decisions(
    *, columns: list[str], explicit: dict[str, str | None] | None, mapping: ColumnMapping
) -> list[str]:
    """A sentence naming the fields that `mapping` (resolved with the datasource's saved mapping)
    takes from other columns than the file's own names and aliases would, or none.

    The saved mapping is whatever the last upload of the datasource chose: told nothing, the next
    uploader would not know that their file's 'Total' was not read as revenue.
    """
    targets = _explicit_targets(columns, explicit or {})
    _alias_targets_add(columns, targets)
    by_name = _mapping_build(columns, targets).fields
    changed = [field for field in FIELDS_BY_NAME if mapping.fields.get(field) != by_name.get(field)]
    if not changed:
        return []
    decisions = "; ".join(
        f"{field} ← {_column_label(mapping.fields.get(field))} "
        f"(by the file's column names: {_column_label(by_name.get(field))})"
        for field in changed
    )
    return [f"Used the saved mapping of this datasource: {decisions}. A mapping sent with the upload overrides it."]


def mapping_line_total_decisions(
    *, columns: list[str], explicit: dict[str, str | None] | None, mapping: ColumnMapping
) -> list[str]:
    """A sentence for each field read from a line-total column (`schema.LINE_TOTAL_ALIASES`) although
    a column of the field's bare name was there too, so the uploader can tell it was on purpose."""
    named = set(explicit or {})
    sentences = []
    for name, source in mapping.fields.items():
        if _LINE_TOTALS.get(normalize_column_name(source)) != name or source in named:
            continue
        passed_over = [
            column
            for column in columns
            if _ALIAS_RANK.get(normalize_column_name(column), (None, 0))[0] == name
            and column not in named
            and column not in mapping.fields.values()
        ]
        dimensions = {column: key for key, column in mapping.extras.items()}
        sentences += [
            f"{name} ← '{source}', not '{column}': beside a line total, '{column}' is taken for the "
            f"{name.replace('_', ' ')} of one unit"
            + (f" (kept as the dimension '{dimensions[column]}')" if column in dimensions else "")
            + f'. If it is each line\'s {name}, send the option mapping {{"{column}": "{name}"}}.'
            for column in passed_over
        ]
    return sentences


def _column_label(column: str | None) -> str:
    return f"'{column}'" if column is not None else "no column"


def mapping_drift(*, saved: dict[str, str] | None, current: dict[str, str]) -> list[str]:
    """Sentences on how the file differs from the datasource's saved mapping (canonical field → column)."""
    if not saved:
        return []
    sentences: list[str] = []
    for field, old in saved.items():
        new = current.get(field)
        if new is None:
            sentences.append(f"Column '{old}' ({field}) is no longer in the file.")
        elif new != old:
            sentences.append(f"Column '{old}' ({field}) is now called '{new}'.")
    sentences += [f"New column '{new}' is used as {field}." for field, new in current.items() if field not in saved]
    return sentences


def mapping_derivable(fields: set[str]) -> tuple[str, ...]:
    """Measures the transform computes because the file lacks them but has their inputs."""
    derived: list[str] = []
    if "revenue" not in fields and {"unit_price", "quantity"} <= fields:
        derived.append("revenue")
    has_revenue = "revenue" in fields or "revenue" in derived
    if "unit_price" not in fields and has_revenue and "quantity" in fields:
        derived.append("unit_price")
    if "cost" not in fields and has_revenue and "gross_profit" in fields:
        derived.append("cost")
    if "gross_profit" not in fields and has_revenue and "cost" in fields:
        derived.append("gross_profit")
    return tuple(derived)


DIMENSION_NAME_MAX = 63


def dimension_name_make(column: str, taken: set[str]) -> str:
    """A safe snake_case name for an extra source column, unique among `taken`."""
    text = unicodedata.normalize("NFKD", str(column)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "_", text.replace("%", " pct ")).strip("_") or "column"
    if text[0].isdigit():
        text = f"col_{text}"
    if text in RESERVED_NAMES:
        text = f"{text}_extra"
    # Identifiers are at most 63 characters (PostgreSQL's limit, which the query layer keeps):
    # a longer one was published, then refused by every query (and by Druid's publish).
    text = text[:DIMENSION_NAME_MAX].rstrip("_")
    name, counter = text, 2
    while name in taken:
        suffix = f"_{counter}"
        name, counter = text[: DIMENSION_NAME_MAX - len(suffix)].rstrip("_") + suffix, counter + 1
    return name


def _explicit_targets(columns: list[str], explicit: dict[str, str | None]) -> dict[str, str]:
    """Validate the API's mapping; returns source column → canonical field ("" = ignore)."""
    targets: dict[str, str] = {}
    for given, field in explicit.items():
        column = _column_match(given, columns)
        target = (field or "").strip()
        _field_check(target, column=given)
        targets[column] = target
    claimed = [target for target in targets.values() if target]
    for field in sorted({target for target in claimed if claimed.count(target) > 1}):
        sources = ", ".join(f"'{column}'" for column, target in targets.items() if target == field)
        raise IngestionError(INVALID_MAPPING, f"Columns {sources} are all mapped to '{field}'; map only one.")
    return targets


def mapping_fields_check(explicit: dict[str, str | None]) -> None:
    """Refuse a mapping that names a canonical field that does not exist, before any file is
    read: a typo (`revenu`) was accepted and failed the task later."""
    for given, field in explicit.items():
        _field_check((field or "").strip(), column=given)


def _field_check(target: str, *, column: str) -> None:
    if not target or target in FIELDS_BY_NAME:
        return
    nearest = difflib.get_close_matches(target.lower(), FIELDS_BY_NAME, n=1, cutoff=0.6)
    hint = f" Did you mean '{nearest[0]}'?" if nearest else ""
    valid = ", ".join(FIELDS_BY_NAME)
    raise IngestionError(
        INVALID_MAPPING,
        f"Unknown field '{target}' for column '{column}'.{hint} Valid fields: {valid} (or \"\" to ignore the column).",
    )


def _column_match(given: str, columns: list[str]) -> str:
    # Exact name first; a unique case/spacing-insensitive match spares users retyping headers.
    if given in columns:
        return given
    loose = [column for column in columns if normalize_column_name(column) == normalize_column_name(given)]
    if len(loose) == 1:
        return loose[0]
    valid = ", ".join(f"'{column}'" for column in columns)
    raise IngestionError(
        INVALID_MAPPING, f"The mapping names column '{given}', which is not in the file. Columns: {valid}."
    )


def _alias_targets_add(columns: list[str], targets: dict[str, str]) -> None:
    """Map the still-unassigned columns by alias; the best-ranked alias wins a field."""
    claimed = {target for target in targets.values() if target in FIELDS_BY_NAME}
    candidates = sorted(
        (rank, index, column, field)
        for index, column in enumerate(columns)
        if column not in targets
        for field, rank in [_ALIAS_RANK.get(normalize_column_name(column), (None, 0))]
        if field is not None
    )
    for _rank, _index, column, field in candidates:
        if field not in claimed:
            targets[column] = field
            claimed.add(field)


def _repeated_refuse(group: tuple[str, ...], columns: list[str], targets: dict[str, str]) -> None:
    """Refuse when a field would read one of the same-named columns: the first is as likely wrong."""
    used = [(column, targets[column]) for column in group if targets.get(column) in FIELDS_BY_NAME]
    if not used:
        return
    column, field = used[0]
    positions = " and ".join(str(columns.index(name) + 1) for name in group)
    names = " and ".join(f"'{name}'" for name in group)
    choices = " or ".join(f'{{"{name}": "{field}"}}' for name in group)
    raise IngestionError(
        AMBIGUOUS_COLUMNS,
        f"The file has {len(group)} columns named '{group[0]}' (columns {positions}, read as {names}), and "
        f"'{column}' would be used as {field} without knowing it is the right one. Say which to use with the "
        f"option mapping: {choices}.",
    )


def _mapping_build(columns: list[str], targets: dict[str, str]) -> ColumnMapping:
    fields: dict[str, str] = {}
    extras: dict[str, str] = {}
    ignored: list[str] = []
    for column in columns:
        target = targets.get(column)
        if target == "":
            ignored.append(column)
        elif target in FIELDS_BY_NAME and target not in fields:
            fields[target] = column
        else:
            extras[dimension_name_make(column, set(extras))] = column
    return ColumnMapping(fields, extras, tuple(ignored), mapping_derivable(set(fields)))


def _mapping_require(mapping: ColumnMapping, columns: list[str]) -> None:
    """Refuse a mapping that lacks a required field or any way to get revenue."""
    missing = required_fields_missing(set(mapping.fields) | set(mapping.derived))
    if not missing:
        return
    unused = [column for column in columns if column not in mapping.fields.values()]
    hints = [_missing_hint(field, unused) for field in missing]
    found = ", ".join(f"'{column}'" for column in columns) or "none"
    detail = f"Missing required column(s): {'; '.join(hints)}. Columns found: {found}."
    raise IngestionError(MISSING_REQUIRED_COLUMN, detail)


def _missing_hint(field: str, columns: list[str]) -> str:
    label = "revenue (or unit_price with quantity)" if field == "revenue" else field
    names = [normalize_column_name(name) for name in (field, *FIELDS_BY_NAME[field].aliases)]
    if field == "revenue":
        names += [normalize_column_name(name) for name in ("unit_price", *FIELDS_BY_NAME["unit_price"].aliases)]
    scored = sorted(
        ((max(difflib.SequenceMatcher(None, normalize_column_name(c), n).ratio() for n in names), c) for c in columns),
        reverse=True,
    )
    near = [f"'{column}'" for score, column in scored[:3] if score >= 0.6]
    return f"{label} (nearest: {', '.join(near)})" if near else f"{label} (no similar column)"
