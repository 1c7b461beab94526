"""The demo dataset: realistic shape and patterns, deterministic, anomalies that stand out, and
`load_demo` publishing it through the real ingestion pipeline."""

import datetime as dt
import io
import itertools
import json

import polars as pl
import pytest
from django.core.management import CommandError, call_command

from analytics.models import Datasource
from analytics.query import Summary
from analytics.runner import run_query
from ingestion.demo import (
    BRANCHES,
    DEFAULT_ROWS,
    DEFAULT_START,
    PRODUCT_LINES,
    demo_anomalies_for_scope,
    demo_frame_generate,
    demo_manifest_load,
    demo_manifest_path,
)
from tests.conftest import REAL_FILE

SEED = 42
WINDOW_WEEKS = 8


@pytest.fixture(scope="module")
def demo() -> tuple[pl.DataFrame, list[dict]]:
    """The default-size dataset (≈1 s to generate), shared by the pattern and anomaly tests."""
    return demo_frame_generate(rows=DEFAULT_ROWS, seed=SEED, start=DEFAULT_START, years=3)


def daily_revenue(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Revenue per day and scope, with zero for a day a scope sold nothing."""
    dated = frame.with_columns(pl.col("Date").str.to_date().alias("date"))
    grid = dated.select(keys).unique().join(dated.select("date").unique(), how="cross")
    sums = dated.group_by(*keys, "date").agg(pl.col("Total").sum().alias("value"))
    return grid.join(sums, on=[*keys, "date"], how="left").with_columns(pl.col("value").fill_null(0.0))


def robust_z(daily: pl.DataFrame, keys: list[str], *, floor: float = 0.1) -> pl.DataFrame:
    """A day's value against the same weekday of the trailing 8 weeks:
    z = (value − median) / max(1.4826 × MAD, floor × median). The floor keeps the scale of only
    8 values from collapsing (without it |z| > 6 on ~1 % of ordinary Gaussian days)."""
    previous = [f"w{k}" for k in range(1, WINDOW_WEEKS + 1)]
    frame = (
        daily.with_columns(pl.col("date").dt.weekday().alias("weekday"))
        .sort(*keys, "weekday", "date")
        .with_columns(
            pl.col("value").shift(k).over(*keys, "weekday").alias(f"w{k}") for k in range(1, WINDOW_WEEKS + 1)
        )
        .drop_nulls(previous)
        .with_columns(pl.concat_list(previous).alias("window"))
        .with_columns(pl.col("window").list.median().alias("median"))
    )
    deviation = (pl.element() - pl.element().median()).abs().median()
    mad = pl.col("window").list.eval(deviation).list.first() * 1.4826
    scale = pl.max_horizontal(mad, floor * pl.col("median"))
    return frame.with_columns(((pl.col("value") - pl.col("median")) / scale).alias("z"))


def z_on(scores: pl.DataFrame, day: str, **scope: str) -> float:
    condition = pl.col("date") == dt.date.fromisoformat(day)
    for column, value in scope.items():
        condition &= pl.col(column) == value
    (value,) = scores.filter(condition)["z"].to_list()
    return value


# --- the generator ------------------------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = demo_frame_generate(rows=5_000, seed=7, start=DEFAULT_START, years=3)
    again = demo_frame_generate(rows=5_000, seed=7, start=DEFAULT_START, years=3)
    other = demo_frame_generate(rows=5_000, seed=8, start=DEFAULT_START, years=3)
    assert first[0].equals(again[0])
    assert first[1] == again[1]
    assert not first[0].equals(other[0])
    assert first[1] != other[1]


def test_shape_of_the_real_file(demo) -> None:
    frame, _ = demo
    real_header = REAL_FILE.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert frame.columns == real_header
    assert frame.height == DEFAULT_ROWS
    assert sorted(frame["Branch"].unique()) == [b.name for b in BRANCHES]
    assert sorted(frame["Product line"].unique()) == sorted(p.name for p in PRODUCT_LINES)
    dates = frame["Date"].str.to_date("%Y-%m-%d")  # ISO, every one
    assert dates.min() == DEFAULT_START and dates.max() == dt.date(2025, 12, 31)
    assert frame["Time"].min() >= "10:00" and frame["Time"].max() <= "20:59"
    assert frame["Quantity"].min() >= 1
    checks = frame.select(
        ((pl.col("Unit price") * pl.col("Quantity") * 1.05 - pl.col("Total")).abs().max()).alias("total"),
        ((pl.col("Total") - pl.col("cogs") - pl.col("gross income")).abs().max()).alias("income"),
        (pl.col("cogs") < pl.col("Total")).all().alias("profitable"),
    ).row(0, named=True)
    assert checks["total"] < 0.01 and checks["income"] < 1e-6 and checks["profitable"]


def test_invoices_are_one_branch_day_customer_and_payment_with_different_product_lines(demo) -> None:
    frame, _ = demo
    invoices = frame.group_by("Invoice ID").agg(
        pl.len().alias("lines"),
        pl.col("Product line").n_unique().alias("product_lines"),
        *(pl.col(c).n_unique().alias(c) for c in ("Branch", "Date", "Time", "Customer type", "Gender", "Payment")),
        pl.col("Rating").n_unique().alias("Rating"),
    )
    assert invoices["lines"].min() == 1 and invoices["lines"].max() == 4
    assert (invoices["lines"] == invoices["product_lines"]).all()
    for column in ("Branch", "Date", "Time", "Customer type", "Gender", "Payment", "Rating"):
        assert invoices[column].max() == 1, column
    assert 1.8 < frame.height / invoices.height < 2.5
    assert invoices.filter(pl.col("lines") > 1).height > invoices.height / 2


def test_patterns_dashboards_can_show(demo) -> None:
    frame, _ = demo
    dated = frame.with_columns(pl.col("Date").str.to_date().alias("date"))
    by_weekday = dated.group_by("Branch", weekday=pl.col("date").dt.weekday()).agg(pl.col("Total").sum())
    for branch in BRANCHES:
        revenue = dict(by_weekday.filter(pl.col("Branch") == branch.name).select("weekday", "Total").iter_rows())
        assert max(revenue[6], revenue[7]) > 1.1 * revenue[2], branch.name  # a weekend day beats Tuesday
    by_month = dict(dated.group_by(pl.col("date").dt.month()).agg(pl.col("Total").sum()).iter_rows())
    assert by_month[12] == max(by_month.values())
    assert by_month[12] > 1.25 * by_month[6]
    by_year = dated.group_by(pl.col("date").dt.year()).agg(pl.col("Total").sum()).sort("date")["Total"].to_list()
    assert by_year[0] < by_year[1] < by_year[2]  # slow growth
    branch_revenue = dated.group_by("Branch").agg(pl.col("Total").sum()).sort("Total")["Total"].to_list()
    assert branch_revenue[-1] > 1.8 * branch_revenue[0]  # branches of different sizes
    by_hour = dict(dated.group_by(pl.col("Time").str.slice(0, 2)).agg(pl.len()).iter_rows())
    assert by_hour["12"] > 1.5 * by_hour["10"] and by_hour["18"] > 1.5 * by_hour["15"]  # lunch and evening
    margins = dated.group_by("Product line").agg(pl.col("gross income").sum() / pl.col("Total").sum())
    assert margins["gross income"].max() - margins["gross income"].min() > 0.1


def test_anomalies_are_few_and_placed_where_the_week_cannot_explain_them(demo) -> None:
    _, anomalies = demo
    assert 4 <= len(anomalies) <= 6
    assert {a["kind"] for a in anomalies} == {"spike", "drop"}
    assert any(a["product_line"] for a in anomalies) and any(a["product_line"] is None for a in anomalies)
    days = sorted(dt.date.fromisoformat(a["date"]) for a in anomalies)
    assert days[0] >= DEFAULT_START + dt.timedelta(weeks=9)
    assert all(later - earlier > dt.timedelta(weeks=WINDOW_WEEKS) for earlier, later in itertools.pairwise(days))
    for anomaly in anomalies:
        day = dt.date.fromisoformat(anomaly["date"])
        assert anomaly["metric"] == "revenue"
        assert day.weekday() <= 3 if anomaly["kind"] == "spike" else day.weekday() >= 4
        assert (anomaly["factor"] > 1) == (anomaly["kind"] == "spike")
        assert not (day.month == 12 or (day.month, day.day) >= (11, 15) or (day.month, day.day) <= (1, 15))


def test_every_anomaly_stands_out_and_ordinary_days_do_not(demo) -> None:
    frame, anomalies = demo
    by_branch = robust_z(daily_revenue(frame, ["Branch"]), ["Branch"])
    by_line = robust_z(daily_revenue(frame, ["Branch", "Product line"]), ["Branch", "Product line"])
    for anomaly in anomalies:
        sign = 1 if anomaly["kind"] == "spike" else -1
        assert sign * z_on(by_branch, anomaly["date"], Branch=anomaly["branch"]) > 6, anomaly
        if anomaly["product_line"]:
            own = z_on(by_line, anomaly["date"], Branch=anomaly["branch"], **{"Product line": anomaly["product_line"]})
            assert own > 6, anomaly
    anomalous_days = {f"{a['date']} {a['branch']}" for a in anomalies}
    day_and_branch = pl.concat_str(pl.col("date").dt.strftime("%Y-%m-%d"), "Branch", separator=" ")
    ordinary = by_branch.filter(~day_and_branch.is_in(list(anomalous_days)))
    assert ordinary.height == by_branch.height - len(anomalous_days)
    assert ordinary["z"].abs().max() < 4  # every ordinary branch-day, not a sample


def test_anomalies_for_scope() -> None:
    anomalies = [
        {"date": "2024-03-05", "branch": "A", "product_line": None},
        {"date": "2024-06-05", "branch": "A", "product_line": "Food and beverages"},
        {"date": "2024-09-05", "branch": "B", "product_line": None},
    ]
    assert demo_anomalies_for_scope(anomalies, branch="A") == anomalies[:2]
    assert demo_anomalies_for_scope(anomalies, branch="A", product_line="Food and beverages") == anomalies[:2]
    assert demo_anomalies_for_scope(anomalies, branch="A", product_line="Sports and travel") == anomalies[:1]
    assert demo_anomalies_for_scope(anomalies, branch="C") == []


# --- load_demo ------------------------------------------------------------------------------------


def load_demo(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("load_demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_load_demo_publishes_through_the_pipeline(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    options = ("--rows", "20000", "--datasource", "demo_test", "--seed", "7")
    out, err = load_demo(*options)
    assert "Published 20,000 rows" in out
    assert "100%" in err  # the progress bar reached the end
    manifest_path = demo_manifest_path("demo_test")
    assert manifest_path == tmp_path / "demo" / "demo_test-anomalies.json"
    assert str(manifest_path) in out

    frame, anomalies = demo_frame_generate(rows=20_000, seed=7, start=DEFAULT_START, years=3)
    assert demo_manifest_load("demo_test") == anomalies
    assert json.loads(manifest_path.read_text())["seed"] == 7
    assert Datasource.objects.get(name="demo_test").is_demo
    result = run_query(Summary(datasource="demo_test"), user=None)
    totals = result.first
    assert totals["lines"] == 20_000
    assert totals["transactions"] == frame["Invoice ID"].n_unique()
    assert totals["units_sold"] == frame["Quantity"].sum()
    assert totals["revenue"] == pytest.approx(frame["Total"].sum(), rel=1e-9)
    assert totals["cost"] == pytest.approx(frame["cogs"].sum(), rel=1e-9)
    assert totals["gross_profit"] == pytest.approx(frame["gross income"].sum(), rel=1e-9)

    # Same seed again: the same file, refused by the duplicate-upload rule.
    out, _ = load_demo(*options)
    assert "already loaded" in out
    assert run_query(Summary(datasource="demo_test"), user=None).data_version == result.data_version
    # Other options without --replace would pile a second dataset on the first: refused.
    with pytest.raises(CommandError, match="--replace"):
        load_demo("--rows", "20000", "--datasource", "demo_test", "--seed", "8")
    # --replace loads again (forced, replace mode): a new version, the same rows, once.
    out, _ = load_demo(*options, "--replace")
    replaced = run_query(Summary(datasource="demo_test"), user=None)
    assert replaced.data_version == result.data_version + 1
    assert replaced.first["lines"] == 20_000
    assert replaced.first["revenue"] == pytest.approx(totals["revenue"], rel=1e-9)


@pytest.mark.django_db(transaction=True)
def test_load_demo_never_touches_real_data(settings, tmp_path, real_file) -> None:
    settings.VAR_DIR = tmp_path
    call_command("ingest", str(real_file), "--datasource", "real_sales", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="holds uploaded sales data"):
        load_demo("--rows", "1000", "--datasource", "real_sales", "--replace")
    assert not Datasource.objects.get(name="real_sales").is_demo
    assert run_query(Summary(datasource="real_sales"), user=None).first["lines"] == 1000
