"""Download names (Content-Disposition, RFC 6266): the exact name in filename*, a safe ASCII one in filename."""

import pytest

from ingestion.downloads import attachment_disposition


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("sales.csv", 'attachment; filename="sales.csv"'),
        ("売上.csv", "attachment; filename=\"download.csv\"; filename*=UTF-8''%E5%A3%B2%E4%B8%8A.csv"),
        # Nothing can end the quoted string or the header line, or name a folder or a hidden file.
        ('a"b;\r\nc.csv', "attachment; filename=\"a_b_c.csv\"; filename*=UTF-8''a%22b%3Bc.csv"),
        ("C:\\Users\\me\\..\\sales.csv", 'attachment; filename="sales.csv"'),
        ("../../.bashrc", 'attachment; filename="bashrc"'),
        ("..", 'attachment; filename="download"'),
    ],
)
def test_a_download_name_is_kept_exactly_and_given_a_safe_ascii_fallback(name: str, header: str) -> None:
    assert attachment_disposition(name) == header
