"""Synthetic curated rows published through `datasource_publish`, with totals computed in Python.

The rows have the curated file's columns and types (what the ingestion pipeline writes), so
they mix with segments that came from a real upload.
"""

import datetime as dt
import random
import uuid
from pathlib import Path

import polars as pl
from django.utils import timezone

from analytics.services import PublishOutcome, PublishRequest, datasource_publish
from ingestion.transform import OUTPUT_FIELDS, OUTPUT_TYPES

BRANCHES = ("A", "B", "C")
PRODUCT_LINES = ("Food and beverages", "Health and beauty", "Sports and travel")


def sales_rows(*, start: dt.date, days: int, per_day: int = 3, seed: int = 0) -> list[dict]:
    """`per_day` sale lines on each of `days` days from `start`; amounts in whole cents."""
    rng = random.Random(seed)
    rows = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        for line in range(per_day):
            quantity = rng.randint(1, 9)
            unit_price = rng.randint(100, 9999) / 100
            revenue = round(quantity * unit_price, 2)
            cost = round(revenue * 0.9, 2)
            rows.append(
                {
                    "date": day,
                    "branch": rng.choice(BRANCHES),
                    "product_line": rng.choice(PRODUCT_LINES),
                    "quantity": quantity,
                    "unit_price": unit_price,
                    "revenue": revenue,
                    "cost": cost,
                    "gross_profit": round(revenue - cost, 2),
                    "invoice_id": f"S{seed}-{offset}-{line}",
                    "city": "Yangon",
                    "payment": "Cash",
                }
            )
    return rows


def rows_totals(rows: list[dict]) -> dict:
    """The totals `Summary` must report for exactly these rows."""
    return {
        "revenue": sum(row["revenue"] for row in rows),
        "units_sold": sum(row["quantity"] for row in rows),
        "lines": len(rows),
    }


def curated_write(rows: list[dict], path: Path) -> Path:
    columns = {
        name: pl.Series(name, [row.get(name) for row in rows], dtype=OUTPUT_TYPES.get(name, pl.String()))
        for name in OUTPUT_FIELDS
    }
    pl.DataFrame(columns).write_parquet(path)
    return path


def publish_request(
    *, datasource: str, rows: list[dict], workdir: Path, replace: bool = False, upload_name: str = "synthetic.csv"
) -> PublishRequest:
    upload_id = uuid.uuid4()
    return PublishRequest(
        datasource_name=datasource,
        upload_id=upload_id,
        upload_name=upload_name,
        uploaded_at=timezone.now(),
        curated_path=curated_write(rows, workdir / f"curated-{upload_id.hex}.parquet"),
        rows=len(rows),
        interval_start=min(row["date"] for row in rows),
        interval_end=max(row["date"] for row in rows),
        replace=replace,
    )


def synthetic_publish(
    *, datasource: str, rows: list[dict], workdir: Path, replace: bool = False, upload_name: str = "synthetic.csv"
) -> PublishOutcome:
    return datasource_publish(
        request=publish_request(
            datasource=datasource, rows=rows, workdir=workdir, replace=replace, upload_name=upload_name
        )
    )
