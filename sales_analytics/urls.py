from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.forms import (
    ThrottledAdminAuthenticationForm,
    ThrottledAuthenticationForm,
    TokenRevokingPasswordChangeForm,
)
from sales_analytics.api import api
from sales_analytics.graphql_view import graphql_endpoint

handler404 = "sales_analytics.errors.page_not_found"
handler500 = "sales_analytics.errors.server_error"

admin.site.site_header = "Sales Analytics administration"
admin.site.site_title = "Sales Analytics admin"
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    # Not django.contrib.auth.urls: no self-service password reset (admins set passwords, and only
    # the login page is public); a logged-in user changes their own password.
    path(
        "accounts/login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(form_class=TokenRevokingPasswordChangeForm),
        name="password_change",
    ),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("api/", api.urls),
    path("graphql", graphql_endpoint, name="graphql"),
    path("", include("dashboard.urls")),
]
