"""Messages name options as the API spells them (`date_format`, `force=true`); the command line
and the upload pages say them as their users see them: flags, and the form's own labels."""

import re

# (the API's spelling, the command line's, the pages')
_SPELLINGS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(?<![\w-])date_format(?!\w)"), "--date-format", "“Date format”"),
    (re.compile(r"(?<![\w-])header_row(?!\w)"), "--header-row", "“Header row”"),
    (re.compile(r"(?<![\w-])max_rejected_ratio(?!\w)"), "--max-rejected-ratio", "“Max rejected share”"),
    (re.compile(r"(?<![\w-])datasource_name(?!\w)"), "--datasource", "“Datasource”"),
    (re.compile(r"(?<![\w-])force=true(?!\w)"), "--force", "“Load even if this exact file was loaded before”"),
    (re.compile(r"(?<![\w-])mode=(append|replace)(?!\w)"), r"--mode \1", r"“Mode: \1”"),
    (re.compile(r'(?<![\w-])decimal=("[.,]"|[.,])'), r"--decimal \1", r"“Decimal mark” \1"),
    # An option's own refusal starts with its name ("mapping is not valid JSON").
    (re.compile(r"^mapping(?= (?:is|must) )"), "--mapping", "“Column mapping”"),
    (re.compile(r"^sheet(?= (?:is|must) )"), "--sheet", "“Sheet”"),
    (re.compile(r"^decimal(?= (?:is|must) )"), "--decimal", "“Decimal mark”"),
)


def cli_spelling(message: str) -> str:
    """`message` with the API's option names as the `ingest` command's flags."""
    for pattern, flag, _ in _SPELLINGS:
        message = pattern.sub(flag, message)
    return message


def page_spelling(message: str) -> str:
    """`message` with the API's option names as the upload form's labels."""
    for pattern, _, label in _SPELLINGS:
        message = pattern.sub(label, message)
    return message
