"""GraphQL types for dashboard numbers; every resolver asks `run_query`, scoped to the caller."""

import datetime as dt
from dataclasses import dataclass

import graphene
from django.conf import settings
from graphql import GraphQLError, StringValueNode, Undefined

from analytics.engines import EngineError
from analytics.query import (
    TOP_N_MAX,
    Breakdown,
    Filters,
    Grain,
    QueryError,
    ResultTooLarge,
    Summary,
    TimeSeries,
    TopN,
    bucket_partial,
)
from analytics.runner import QueryResult, breakdown_run_bounded, run_query
from sales_analytics.query_params import iso_date_parse

# Cost and gross profit are unknown (null) over lines none of which has a cost; 0 without lines.
COST_UNKNOWN = "Null when none of the lines has a cost (0 when there are no lines)."
BOUNDED_LIST_LIMIT = (
    "The first rows in order, at most METRICS_MAX_ROWS (default 10,000). Without it, a longer list is an "
    "error with code result_too_large, never a cut one."
)


class Date(graphene.Date):
    """GraphQL's `Date`, read as REST and the pages read a day: YYYY-MM-DD only.

    graphene's own reads with `fromisoformat`, which takes `20190201` and `2019-W05-4` too: the same
    filter answered on GraphQL and was refused on REST. The schema keeps the type's name.
    """

    class Meta:
        name = "Date"

    @staticmethod
    def parse_value(value):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return iso_date_parse(value if isinstance(value, str) else repr(value))
        except ValueError as exc:
            # REST's code for a parameter of the wrong type.
            raise GraphQLError(str(exc), extensions={"code": "invalid_request"}) from None

    @classmethod
    def parse_literal(cls, node, _variables=None):
        if not isinstance(node, StringValueNode):
            return Undefined
        return cls.parse_value(node.value)


class FiltersInput(graphene.InputObjectType):
    start = Date()
    end = Date()
    branch = graphene.List(graphene.NonNull(graphene.String))
    product_line = graphene.List(graphene.NonNull(graphene.String))
    city = graphene.List(graphene.NonNull(graphene.String))
    customer_type = graphene.List(graphene.NonNull(graphene.String))
    gender = graphene.List(graphene.NonNull(graphene.String))
    payment = graphene.List(graphene.NonNull(graphene.String))
    exclude_branch = graphene.List(graphene.NonNull(graphene.String))
    exclude_product_line = graphene.List(graphene.NonNull(graphene.String))


def invalid_argument(detail: str, *, code: str = "invalid_query") -> GraphQLError:
    """A refused argument, with the code REST gives the same refusal: `invalid_query` for a rule
    of the query layer (400 there), `invalid_request` for a value out of its type's range (422)."""
    return GraphQLError(detail, extensions={"code": code})


_INCLUDE = ("branch", "product_line", "city", "customer_type", "gender", "payment")


def filters_from_input(value: dict | None) -> Filters:
    value = value or {}
    try:
        return Filters(
            start=value.get("start"),
            end=value.get("end"),
            include={name: tuple(value[name]) for name in _INCLUDE if value.get(name)},
            exclude={
                name: tuple(value[f"exclude_{name}"])
                for name in ("branch", "product_line")
                if value.get(f"exclude_{name}")
            },
        )
    except QueryError as exc:
        raise invalid_argument(str(exc)) from None


@dataclass(frozen=True)
class DashboardQuery:
    """What `dashboardData` resolved to; child fields run only the queries they need."""

    datasource: str
    filters: Filters
    user: object

    def run(self, spec) -> QueryResult:
        """The answer to `spec`; a breakdown's is at most METRICS_MAX_ROWS rows, or an error saying so."""
        try:
            if isinstance(spec, Breakdown):
                return breakdown_run_bounded(spec, user=self.user, max_rows=settings.METRICS_MAX_ROWS)
            return run_query(spec, user=self.user)
        except ResultTooLarge as exc:
            raise GraphQLError(str(exc), extensions={"code": exc.code}) from None
        except QueryError as exc:
            raise invalid_argument(str(exc)) from None
        except EngineError as exc:
            raise GraphQLError(exc.detail, extensions={"code": exc.code}) from None


class RevenueSummary(graphene.ObjectType):
    total_revenue = graphene.Float(required=True)
    total_cost = graphene.Float(description=COST_UNKNOWN)
    gross_profit = graphene.Float(description=COST_UNKNOWN)
    gross_margin = graphene.Float()
    lines = graphene.BigInt(required=True)
    transactions = graphene.BigInt(required=True)
    units_sold = graphene.BigInt(required=True)
    average_ticket = graphene.Float()
    data_version = graphene.Int()
    engine = graphene.String(required=True)
    source = graphene.String(required=True)


class SeriesPoint(graphene.ObjectType):
    period = Date(required=True, description="The first day of the day, week (Monday), month… bucket.")
    partial = graphene.Boolean(
        required=True,
        description="True when the filters' start or end cuts the bucket: its sums cover only the days inside them.",
    )
    revenue = graphene.Float(required=True)
    gross_profit = graphene.Float(description=COST_UNKNOWN)
    transactions = graphene.BigInt(required=True)
    units_sold = graphene.BigInt(required=True)


class ProductRow(graphene.ObjectType):
    product_line = graphene.String()
    value = graphene.Float(
        description="The ranking metric's value; null when unknown (cost, gross profit or tax of lines none of "
        "which has one) or undefined (a ratio without a denominator)."
    )
    revenue = graphene.Float(required=True)
    units_sold = graphene.BigInt(required=True)
    gross_profit = graphene.Float(description=COST_UNKNOWN)
    gross_margin = graphene.Float()


class BranchRow(graphene.ObjectType):
    branch = graphene.String()
    revenue = graphene.Float(required=True)
    gross_profit = graphene.Float(description=COST_UNKNOWN)
    gross_margin = graphene.Float()
    transactions = graphene.BigInt(required=True)
    average_ticket = graphene.Float()
    units_sold = graphene.BigInt(required=True)


class ProfitabilityCell(graphene.ObjectType):
    branch = graphene.String()
    product_line = graphene.String()
    revenue = graphene.Float(required=True)
    gross_profit = graphene.Float(description=COST_UNKNOWN)
    gross_margin = graphene.Float()


class UploadInfo(graphene.ObjectType):
    upload_id = graphene.String(required=True)
    name = graphene.String(required=True)
    uploaded_at = graphene.DateTime()


class DashboardData(graphene.ObjectType):
    datasource = graphene.String(required=True)
    revenue_summary = graphene.Field(RevenueSummary, required=True)
    sales_over_time = graphene.List(
        graphene.NonNull(SeriesPoint), required=True, grain=graphene.String(default_value="month")
    )
    top_products = graphene.List(
        graphene.NonNull(ProductRow),
        required=True,
        limit=graphene.Int(default_value=10),
        metric=graphene.String(default_value="revenue"),
    )
    branches = graphene.List(
        graphene.NonNull(BranchRow), required=True, limit=graphene.Int(description=BOUNDED_LIST_LIMIT)
    )
    profitability = graphene.List(
        graphene.NonNull(ProfitabilityCell), required=True, limit=graphene.Int(description=BOUNDED_LIST_LIMIT)
    )
    uploads = graphene.List(graphene.NonNull(UploadInfo), required=True)

    @staticmethod
    def resolve_datasource(root: DashboardQuery, info) -> str:
        return root.datasource

    @staticmethod
    def resolve_revenue_summary(root: DashboardQuery, info) -> RevenueSummary:
        result = root.run(Summary(datasource=root.datasource, filters=root.filters))
        row = result.first
        return RevenueSummary(
            total_revenue=row["revenue"],
            total_cost=row["cost"],
            gross_profit=row["gross_profit"],
            gross_margin=row["gross_margin"],
            lines=row["lines"],
            transactions=row["transactions"],
            units_sold=row["units_sold"],
            average_ticket=row["average_ticket"],
            data_version=result.data_version,
            engine=result.engine,
            source=result.source,
        )

    @staticmethod
    def resolve_sales_over_time(root: DashboardQuery, info, grain: str) -> list[SeriesPoint]:
        try:
            parsed = Grain.parse(grain)
        except QueryError as exc:
            raise invalid_argument(str(exc)) from None
        metrics = ("revenue", "gross_profit", "transactions", "units_sold")
        result = root.run(TimeSeries(datasource=root.datasource, filters=root.filters, metrics=metrics, grain=parsed))
        start, end = result.period
        return [
            SeriesPoint(
                period=_as_date(row["bucket"]),
                partial=bucket_partial(_as_date(row["bucket"]), parsed, start=start, end=end),
                **{m: row[m] for m in metrics},
            )
            for row in result.rows
        ]

    @staticmethod
    def resolve_top_products(root: DashboardQuery, info, limit: int, metric: str) -> list[ProductRow]:
        if not 1 <= limit <= TOP_N_MAX:
            # The query layer's own message names REST's `n`.
            raise invalid_argument(f"limit must be between 1 and {TOP_N_MAX}.")
        also = ("revenue", "units_sold", "gross_profit", "gross_margin")
        result = root.run(
            TopN(
                datasource=root.datasource,
                filters=root.filters,
                dimension="product_line",
                metric=metric,
                n=limit,
                also=also,
            )
        )
        return [ProductRow(value=row[metric], **{k: row[k] for k in ("product_line", *also)}) for row in result.rows]

    @staticmethod
    def resolve_branches(root: DashboardQuery, info, limit: int | None = None) -> list[BranchRow]:
        metrics = ("revenue", "gross_profit", "gross_margin", "transactions", "average_ticket", "units_sold")
        result = root.run(
            Breakdown(datasource=root.datasource, filters=root.filters, by=("branch",), metrics=metrics, limit=limit)
        )
        return [BranchRow(**row) for row in result.rows]

    @staticmethod
    def resolve_profitability(root: DashboardQuery, info, limit: int | None = None) -> list[ProfitabilityCell]:
        result = root.run(
            Breakdown(
                datasource=root.datasource,
                filters=root.filters,
                by=("branch", "product_line"),
                metrics=("revenue", "gross_profit", "gross_margin"),
                sort="branch",
                descending=False,
                limit=limit,
            )
        )
        return [ProfitabilityCell(**row) for row in result.rows]

    @staticmethod
    def resolve_uploads(root: DashboardQuery, info) -> list[UploadInfo]:
        result = root.run(Summary(datasource=root.datasource, filters=root.filters, metrics=("lines",)))
        return [UploadInfo(upload_id=u.upload_id, name=u.name, uploaded_at=u.uploaded_at) for u in result.uploads]


def _as_date(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


class AnalyticsQuery(graphene.ObjectType):
    dashboard_data = graphene.Field(
        DashboardData,
        required=True,
        datasource=graphene.String(),
        filters=FiltersInput(),
        description="Dashboard numbers for a datasource (default: DEFAULT_DATASOURCE), scoped to the caller.",
    )

    @staticmethod
    def resolve_dashboard_data(root, info, datasource: str | None = None, filters: dict | None = None):
        return DashboardQuery(
            datasource=datasource or settings.DEFAULT_DATASOURCE,
            filters=filters_from_input(filters),
            user=info.context.user,
        )
