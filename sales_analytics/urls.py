from django.contrib import admin
from django.urls import include, path

from sales_analytics.api import api
from sales_analytics.graphql_view import graphql_endpoint

handler404 = "sales_analytics.errors.page_not_found"
handler500 = "sales_analytics.errors.server_error"

admin.site.site_header = "Sales Analytics administration"
admin.site.site_title = "Sales Analytics admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", api.urls),
    path("graphql", graphql_endpoint, name="graphql"),
    path("", include("dashboard.urls")),
]
