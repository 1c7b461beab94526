"""The GraphQL root: each app contributes query and mutation classes."""

import graphene

from accounts.roles import Role
from analytics.graphql import AnalyticsQuery
from dashboard.graphql import AlertsQuery
from ingestion.graphql import IngestionMutation, IngestionQuery


class Viewer(graphene.ObjectType):
    username = graphene.String(required=True)
    roles = graphene.List(graphene.NonNull(graphene.String), required=True)


class Query(AnalyticsQuery, IngestionQuery, AlertsQuery, graphene.ObjectType):
    viewer = graphene.Field(Viewer, required=True, description="The authenticated caller.")

    def resolve_viewer(root, info) -> Viewer:
        user = info.context.user
        role_names = {r.value for r in Role}
        roles = sorted(name for name in user.groups.values_list("name", flat=True) if name in role_names)
        return Viewer(username=user.get_username(), roles=roles)


class Mutation(IngestionMutation, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation)
