from sales_analytics.plural import counted


def test_counted_agrees_with_its_number() -> None:
    assert counted(1, "row") == "1 row"
    assert counted(0, "row") == "0 rows"
    assert counted(1_000, "row") == "1,000 rows"
    assert counted(2, "injected anomaly", "injected anomalies") == "2 injected anomalies"
