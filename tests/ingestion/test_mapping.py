"""Column mapping: aliases, explicit and saved mappings, refusals and drift (DESIGN.md step 4)."""

import pytest

from ingestion.errors import AMBIGUOUS_COLUMNS, INVALID_MAPPING, MISSING_REQUIRED_COLUMN, IngestionError
from ingestion.mapping import (
    dimension_name_make,
    mapping_drift,
    mapping_line_total_decisions,
    mapping_resolve,
    mapping_saved_decisions,
)

SUPERMARKET = [
    "Invoice ID", "Branch", "City", "Customer type", "Gender", "Product line", "Unit price", "Quantity",
    "Tax 5%", "Total", "Date", "Time", "Payment", "cogs", "gross margin percentage", "gross income", "Rating",
]  # fmt: skip


def test_supermarket_header_maps_by_alias():
    mapping = mapping_resolve(columns=SUPERMARKET)
    assert mapping.fields == {
        "invoice_id": "Invoice ID",
        "branch": "Branch",
        "city": "City",
        "customer_type": "Customer type",
        "gender": "Gender",
        "product_line": "Product line",
        "unit_price": "Unit price",
        "quantity": "Quantity",
        "tax": "Tax 5%",
        "revenue": "Total",
        "date": "Date",
        "time": "Time",
        "payment": "Payment",
        "cost": "cogs",
        "gross_profit": "gross income",
        "rating": "Rating",
    }
    assert mapping.extras == {"gross_margin_percentage": "gross margin percentage"}
    assert mapping.derived == ()


def test_order_date_is_preferred_over_ship_date_whatever_the_column_order():
    mapping = mapping_resolve(columns=["Ship Date", "Store", "Category", "Qty", "Sales", "Order Date"])
    assert mapping.fields["date"] == "Order Date"
    assert mapping.extras == {"ship_date": "Ship Date"}
    assert mapping.fields["branch"] == "Store"
    assert mapping.fields["revenue"] == "Sales"


def test_explicit_mapping_overrides_aliases_and_can_ignore_columns():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total", "Net", "Notes"]
    mapping = mapping_resolve(columns=columns, explicit={"Net": "revenue", "Notes": "", "Total": None})
    assert mapping.fields["revenue"] == "Net"
    assert mapping.ignored == ("Total", "Notes")
    assert mapping.extras == {}


def test_explicit_mapping_takes_a_field_from_an_alias_column_which_becomes_a_dimension():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total", "Net"]
    mapping = mapping_resolve(columns=columns, explicit={"Net": "revenue"})
    assert mapping.fields["revenue"] == "Net"
    assert mapping.extras == {"total": "Total"}


def test_explicit_mapping_matches_column_names_loosely_when_unique():
    columns = ["Day", "Branch", "Product line", "Quantity", "Amount"]
    mapping = mapping_resolve(columns=columns, explicit={"product LINE": "product_line"})
    assert mapping.fields["product_line"] == "Product line"


def test_explicit_unknown_column_is_invalid_mapping_listing_columns():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=SUPERMARKET, explicit={"Totl": "revenue"})
    assert caught.value.code == INVALID_MAPPING
    assert "'Totl'" in caught.value.detail
    assert "'Total'" in caught.value.detail


def test_explicit_unknown_field_is_invalid_mapping_listing_fields():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=SUPERMARKET, explicit={"Total": "turnover"})
    assert caught.value.code == INVALID_MAPPING
    assert "turnover" in caught.value.detail
    assert "revenue" in caught.value.detail and "gross_profit" in caught.value.detail


def test_two_columns_to_one_field_is_invalid_mapping():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=SUPERMARKET, explicit={"Total": "revenue", "cogs": "revenue"})
    assert caught.value.code == INVALID_MAPPING
    assert "'Total', 'cogs'" in caught.value.detail


def test_saved_mapping_applies_to_present_columns():
    columns = ["When", "Shop Name", "Group", "Count", "Turnover", "Colour"]
    saved = {
        "date": "When",
        "branch": "Shop Name",
        "product_line": "Group",
        "quantity": "Count",
        "revenue": "Turnover",
        "cost": "Gone",
    }
    mapping = mapping_resolve(columns=columns, saved=saved)
    assert mapping.fields == {
        "date": "When",
        "branch": "Shop Name",
        "product_line": "Group",
        "quantity": "Count",
        "revenue": "Turnover",
    }
    assert mapping.extras == {"colour": "Colour"}


def test_saved_mapping_wins_over_aliases_and_explicit_wins_over_saved():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total", "Net"]
    saved = mapping_resolve(columns=columns, saved={"revenue": "Net"})
    assert saved.fields["revenue"] == "Net"
    assert saved.extras == {"total": "Total"}
    explicit = mapping_resolve(columns=columns, explicit={"Total": "revenue"}, saved={"revenue": "Net"})
    assert explicit.fields["revenue"] == "Total"
    assert explicit.extras == {"net": "Net"}


def test_saved_decisions_name_each_field_the_saved_mapping_took_from_another_column():
    saved = {"revenue": "gross income"}
    mapping = mapping_resolve(columns=SUPERMARKET, saved=saved)
    assert mapping_saved_decisions(columns=SUPERMARKET, explicit=None, mapping=mapping) == [
        "Used the saved mapping of this datasource: revenue ← 'gross income' (by the file's column names: 'Total'); "
        "gross_profit ← no column (by the file's column names: 'gross income'). "
        "A mapping sent with the upload overrides it."
    ]


def test_saved_decisions_are_silent_when_the_saved_mapping_agrees_or_is_overridden():
    agreeing = mapping_resolve(columns=SUPERMARKET, saved={"revenue": "Total", "cost": "cogs"})
    assert mapping_saved_decisions(columns=SUPERMARKET, explicit=None, mapping=agreeing) == []
    explicit = {"Total": "revenue"}
    overridden = mapping_resolve(columns=SUPERMARKET, explicit=explicit, saved={"revenue": "gross income"})
    assert mapping_saved_decisions(columns=SUPERMARKET, explicit=explicit, mapping=overridden) == []


def test_missing_required_columns_lists_found_columns_and_nearest_candidates():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=["Dat", "Branch", "Product lin", "Qty", "Totl"])
    error = caught.value
    assert error.code == MISSING_REQUIRED_COLUMN
    assert "date (nearest: 'Dat'" in error.detail
    assert "product_line (nearest: 'Product lin'" in error.detail
    assert "revenue (or unit_price with quantity) (nearest: 'Totl'" in error.detail
    assert "Columns found: 'Dat', 'Branch', 'Product lin', 'Qty', 'Totl'" in error.detail


def test_explicitly_ignoring_a_required_column_is_missing_required_column():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=SUPERMARKET, explicit={"Branch": ""})
    assert caught.value.code == MISSING_REQUIRED_COLUMN
    assert caught.value.detail.startswith("Missing required column(s): branch (")


def test_unit_price_without_quantity_names_only_quantity_as_missing():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=["Date", "Branch", "Product line", "Unit price", "Amnt"])
    assert caught.value.detail.startswith("Missing required column(s): quantity (no similar column). Columns found:")


def test_derivable_measures():
    only_price = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", "Unit price"])
    assert only_price.derived == ("revenue",)
    revenue_and_cost = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", "Total", "cogs"])
    assert revenue_and_cost.derived == ("unit_price", "gross_profit")
    revenue_and_profit = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", "Total", "Profit"])
    assert revenue_and_profit.derived == ("unit_price", "cost")


def test_dimension_names_are_safe_and_never_collide():
    assert dimension_name_make("Gross margin %", set()) == "gross_margin_pct"
    assert dimension_name_make("2nd Address", set()) == "col_2nd_address"
    assert dimension_name_make("Révenue", set()) == "revenue_extra"
    assert dimension_name_make("<b>x</b>", set()) == "b_x_b"
    assert dimension_name_make("Notes", {"notes"}) == "notes_2"
    mapping = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", "Total", "Sales", "sales "])
    assert mapping.extras == {"sales": "Sales", "sales_2": "sales "}


@pytest.mark.parametrize(
    ("column", "dimension"),
    [
        ("Revenue sum", "revenue_sum_extra"),  # a metric part of the query layer's inner query
        ("Invoices", "invoices_extra"),
        ("Bucket", "bucket_extra"),  # a time series' own column
        ("Hour", "hour_extra"),  # computed from the sale's time
        ("Weekday", "weekday_extra"),
        ("Gross margin", "gross_margin_extra"),  # a metric
    ],
)
def test_an_extra_column_never_takes_a_name_the_query_layer_uses(column: str, dimension: str) -> None:
    mapping = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", "Total", column])
    assert mapping.extras == {dimension: column}


def test_a_long_column_name_becomes_a_dimension_name_every_engine_can_query() -> None:
    # 70 characters were published, then refused by every query (and Druid's publish failed after loading).
    column = "Promotion campaign identifier for the regional marketing team, v2 final"
    name = dimension_name_make(column, set())
    assert len(name) <= 63 and name.startswith("promotion_campaign_identifier")
    second = dimension_name_make(column, {name})
    assert len(second) <= 63 and second != name and second.endswith("_2")


def test_drift_sentences():
    saved = {"date": "Date", "revenue": "Total", "cost": "cogs", "branch": "Branch"}
    current = {"date": "Date", "revenue": "Sales", "branch": "Branch", "gross_profit": "Profit"}
    assert mapping_drift(saved=saved, current=current) == [
        "Column 'Total' (revenue) is now called 'Sales'.",
        "Column 'cogs' (cost) is no longer in the file.",
        "New column 'Profit' is used as gross_profit.",
    ]
    assert mapping_drift(saved=None, current=current) == []
    assert mapping_drift(saved=current, current=current) == []


def test_a_cost_price_is_never_read_as_the_selling_price():
    # A unit cost price taken for the unit price gives wrong revenue; it is not the line cost either.
    mapping = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", "Unit cost price", "Total"])
    assert "unit_price" not in mapping.fields and "cost" not in mapping.fields
    assert mapping.extras == {"unit_cost_price": "Unit cost price"}


@pytest.mark.parametrize("column", ["Sales price", "Selling price", "Sale price"])
def test_a_selling_price_is_the_unit_price(column: str):
    mapping = mapping_resolve(columns=["Date", "Branch", "Product line", "Quantity", column])
    assert mapping.fields["unit_price"] == column
    assert mapping.derived == ("revenue",)


TWICE = ["Date", "Branch", "Product line", "Quantity", "Total", "Total_2"]  # "Total" twice in the file
TWICE_REPEATED = (("Total", "Total_2"),)


def test_a_field_is_never_read_from_one_of_two_columns_with_the_same_header():
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=TWICE, repeated=TWICE_REPEATED)
    assert caught.value.code == AMBIGUOUS_COLUMNS
    detail = caught.value.detail
    assert "2 columns named 'Total' (columns 5 and 6, read as 'Total' and 'Total_2')" in detail
    assert "'Total' would be used as revenue" in detail
    assert '{"Total": "revenue"} or {"Total_2": "revenue"}' in detail


@pytest.mark.parametrize(
    ("explicit", "revenue"),
    [({"Total_2": "revenue"}, "Total_2"), ({"Total": "revenue"}, "Total"), ({"Total": ""}, None)],
)
def test_an_explicit_mapping_naming_one_of_them_chooses(explicit, revenue):
    columns = [*TWICE, "Unit price"]
    mapping = mapping_resolve(columns=columns, explicit=explicit, repeated=TWICE_REPEATED)
    assert mapping.fields.get("revenue") == revenue


def test_a_saved_choice_among_the_same_columns_still_applies():
    saved = {"revenue": "Total_2"}
    chosen = mapping_resolve(columns=TWICE, saved=saved, saved_columns=TWICE, repeated=TWICE_REPEATED)
    assert chosen.fields["revenue"] == "Total_2"
    # Saved when the file had one "Total": which of the two is meant is not known.
    with pytest.raises(IngestionError) as caught:
        mapping_resolve(columns=TWICE, saved={"revenue": "Total"}, saved_columns=TWICE[:5], repeated=TWICE_REPEATED)
    assert caught.value.code == AMBIGUOUS_COLUMNS


def test_repeated_columns_that_feed_no_field_stay_extras():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total", "Note", "Note_2"]
    mapping = mapping_resolve(columns=columns, repeated=(("Note", "Note_2"),))
    assert mapping.extras == {"note": "Note", "note_2": "Note_2"}


UNIT_AND_LINE_COSTS = [
    "Invoice Number",
    "Date",
    "Store",
    "Category",
    "Quantity",
    "Price",
    "Cost",
    "Total",
    "Total Cost",
]


@pytest.mark.parametrize("columns", [UNIT_AND_LINE_COSTS, [*UNIT_AND_LINE_COSTS[:6], "Total Cost", "Total", "Cost"]])
def test_a_line_total_cost_wins_over_a_bare_cost_whatever_the_column_order(columns):
    # "Cost" beside "Price" and "Total" is the unit cost; cost is summed per line, as revenue is.
    mapping = mapping_resolve(columns=columns)
    assert (mapping.fields["cost"], mapping.fields["unit_price"], mapping.fields["revenue"]) == (
        "Total Cost",
        "Price",
        "Total",
    )
    assert mapping.extras["cost_extra"] == "Cost"
    [note] = mapping_line_total_decisions(columns=columns, explicit=None, mapping=mapping)
    assert "cost ← 'Total Cost', not 'Cost'" in note and "dimension 'cost_extra'" in note
    assert '{"Cost": "cost"}' in note


def test_a_bare_cost_alone_is_the_cost_and_an_explicit_choice_is_not_explained():
    alone = mapping_resolve(columns=["Date", "Store", "Category", "Quantity", "Total", "Cost"])
    assert alone.fields["cost"] == "Cost"
    assert mapping_line_total_decisions(columns=["Cost"], explicit=None, mapping=alone) == []
    chosen = mapping_resolve(columns=UNIT_AND_LINE_COSTS, explicit={"Cost": "cost"})
    assert chosen.fields["cost"] == "Cost"
    assert mapping_line_total_decisions(columns=UNIT_AND_LINE_COSTS, explicit={"Cost": "cost"}, mapping=chosen) == []


@pytest.mark.parametrize(
    ("columns", "date", "invoice"),
    [
        (["Invoice No", "Bill Date", "Outlet", "Category", "Qty", "Amount"], "Bill Date", "Invoice No"),
        (["Invoice No.", "Date", "Outlet", "Category", "Qty", "Amount"], "Date", "Invoice No."),
        (["Bill No", "Bill Date", "Outlet", "Category", "Qty", "Amount"], "Bill Date", "Bill No"),
        (["Bill Number", "Bill Date", "Ship Date", "Outlet", "Category", "Qty", "Amount"], "Bill Date", "Bill Number"),
    ],
)
def test_bill_and_invoice_number_headers_map_by_alias(columns, date, invoice):
    mapping = mapping_resolve(columns=columns)
    assert (mapping.fields["date"], mapping.fields["invoice_id"]) == (date, invoice)
