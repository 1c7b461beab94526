"""The analytics query suite on both engines: the same published uploads, the same answers.

One datasource is published once for the module with ANALYTICS_ENGINE=druid, which builds the
embedded engine's segments and rollups *and* loads Druid (datasource_publish does both), through
appends and a replace. Each spec below then runs through `run_query` on the embedded engine and
on Druid, unscoped and for a user scoped to two branches; rows (order included), comparison
periods and data versions must be identical.

Amounts are dyadic rationals (multiples of 1/8, as in tests/analytics/helpers.py): every sum is
exact in double precision whatever order an engine adds in, so "identical" means identical, and
ties in a ranking are real ties, broken the same way by both engines.
"""

import datetime as dt
import random
import tempfile
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from accounts.services import user_branch_scope_set
from analytics.models import Datasource
from analytics.query import QuerySpec, Summary
from analytics.runner import run_query
from analytics.services import PublishRequest, datasource_publish
from tests.analytics.helpers import sales_frame
from tests.druid.conftest import druid_datasource_drop, druid_select, s3_prefixes_delete
from tests.druid.specs import parity_specs

pytestmark = [pytest.mark.druid, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db]

DATASOURCE = f"t_parity_{uuid.uuid4().hex[:10]}"
SCOPE = ("A", "C")
BRANCHES = ("A", "B", "C", "D")
PRODUCT_LINES = ("Food", "Health", "Home", "Sports")
OPTIONAL = {
    "city": ("Yangon", "Mandalay", "Naypyitaw"),
    "customer_type": ("Member", "Normal"),
    "gender": ("Female", "Male"),
    "payment": ("Cash", "Card", "Ewallet"),
}


def parity_rows(*, seed: int, first_day: dt.date, days: int) -> list[dict]:
    """Invoices of 1–3 lines sharing a header; some days empty, some values NULL, some returns;
    branch D without tax."""
    rng = random.Random(seed)
    rows = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        for number in range(rng.choice((0, 1, 2, 3, 4))):
            hour = rng.choice((None, *range(24)))
            header = {
                "date": day,
                "datetime": None if hour is None else dt.datetime.combine(day, dt.time(hour, 30)),
                "branch": rng.choice(BRANCHES),
                "invoice_id": None if rng.random() < 0.1 else f"S{seed}-{offset}-{number}",
                **{name: rng.choice((None, *values)) for name, values in OPTIONAL.items()},
            }
            for _ in range(rng.randint(1, 3)):
                quantity = rng.randint(-2, 9)
                unit_price = rng.randint(1, 400) / 4
                drawn_tax = None if rng.random() < 0.3 else rng.randint(0, 200) / 8
                # Branch D's files have no tax column: its tax is unknown (NULL), not 0, on both engines.
                tax = None if header["branch"] == "D" else drawn_tax
                revenue = quantity * unit_price + (tax or 0.0)
                cost = quantity * rng.randint(0, 400) / 4
                rows.append(
                    {
                        **header,
                        "product_line": rng.choice(PRODUCT_LINES),
                        "quantity": quantity,
                        "unit_price": unit_price,
                        "revenue": revenue,
                        "cost": cost,
                        "gross_profit": revenue - cost,
                        "tax": tax,
                        "rating": None if rng.random() < 0.3 else rng.randint(2, 20) / 2,
                    }
                )
    return rows


# (rows, replace): a year-earlier upload for comparisons, two overlapping appends, then a replace
# of five days in the middle of the overlap.
UPLOADS = (
    (parity_rows(seed=1, first_day=dt.date(2023, 2, 1), days=59), False),
    (parity_rows(seed=2, first_day=dt.date(2024, 1, 20), days=51), False),
    (parity_rows(seed=3, first_day=dt.date(2024, 2, 25), days=25), False),
    (parity_rows(seed=4, first_day=dt.date(2024, 3, 1), days=5), True),
)


def upload_publish(*, rows: list[dict], replace: bool, workdir: Path) -> None:
    upload_id = uuid.uuid4()
    path = workdir / f"{upload_id.hex}.parquet"
    sales_frame(rows).write_parquet(path)
    datasource_publish(
        request=PublishRequest(
            datasource_name=DATASOURCE,
            upload_id=upload_id,
            upload_name=f"{upload_id.hex[:6]}.csv",
            uploaded_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
            curated_path=path,
            rows=len(rows),
            interval_start=min(row["date"] for row in rows),
            interval_end=max(row["date"] for row in rows),
            replace=replace,
        )
    )


@pytest.fixture(scope="module")
def published(django_db_setup, django_db_blocker):
    """The module's datasource, published once to both engines, and a user scoped to two branches."""
    with django_db_blocker.unblock():
        with override_settings(ANALYTICS_ENGINE="druid"), tempfile.TemporaryDirectory() as workdir:
            for rows, replace in UPLOADS:
                upload_publish(rows=rows, replace=replace, workdir=Path(workdir))
        scoped = get_user_model().objects.create_user(username=f"scoped-{DATASOURCE}")
        user_branch_scope_set(user=scoped, branches=list(SCOPE))
    try:
        yield scoped
    finally:
        with django_db_blocker.unblock():
            Datasource.objects.filter(name=DATASOURCE).delete()
            scoped.delete()
        druid_datasource_drop(DATASOURCE)
        s3_prefixes_delete(DATASOURCE)


SPECS = parity_specs(DATASOURCE)


def answers(spec: QuerySpec, user, engine: str):
    with override_settings(ANALYTICS_ENGINE=engine):
        result = run_query(spec, user=user, use_cache=False)
    assert result.engine == engine
    comparison = result.comparison
    return {
        "columns": result.columns,
        "rows": result.rows,
        "data_version": result.data_version,
        "period": result.period,
        "comparison": None if comparison is None else (comparison.rows, comparison.period),
    }


@pytest.mark.parametrize("scoped", [False, True], ids=["unscoped", "scoped"])
@pytest.mark.parametrize("name", list(SPECS))
def test_both_engines_answer_alike(published, name: str, scoped: bool) -> None:
    user = published if scoped else None
    embedded = answers(SPECS[name], user, "embedded")
    druid = answers(SPECS[name], user, "druid")

    for key in ("columns", "data_version", "period", "comparison"):
        assert druid[key] == embedded[key], key
    assert len(druid["rows"]) == len(embedded["rows"])
    for number, (left, right) in enumerate(zip(druid["rows"], embedded["rows"], strict=True)):
        assert left == right, f"row {number}: druid {left} ≠ embedded {right}"


def test_the_data_really_is_in_druid_and_replaced(published) -> None:
    """Druid's own totals for the module's uploads: the replace rewrote its five days, once."""
    first, last = min(row["date"] for row in UPLOADS[3][0]), max(row["date"] for row in UPLOADS[3][0])
    kept = [row for rows, _ in UPLOADS[:3] for row in rows if not first <= row["date"] <= last] + UPLOADS[3][0]
    [[lines, revenue]] = druid_select(DATASOURCE, "SUM(lines), SUM(revenue_sum)")
    assert lines == len(kept)
    assert revenue == sum(row["revenue"] for row in kept)
    embedded = answers(Summary(datasource=DATASOURCE, metrics=("lines", "revenue")), None, "embedded")["rows"][0]
    assert (embedded["lines"], embedded["revenue"]) == (lines, revenue)
