from django.urls import path

from dashboard import alerts_views, uploads, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sales", views.dashboard_page, {"page_key": "sales"}, name="sales"),
    path("products", views.dashboard_page, {"page_key": "products"}, name="products"),
    path("branches", views.dashboard_page, {"page_key": "branches"}, name="branches"),
    path("profitability", views.dashboard_page, {"page_key": "profitability"}, name="profitability"),
    path("panel/<str:page_key>/<str:key>", views.dashboard_panel, name="panel"),
    path("export/<str:page_key>/<str:key>.<str:fmt>", views.dashboard_export, name="export"),
    path("alerts", alerts_views.alerts_page, name="alerts"),
    path("alerts/<int:event_id>/<str:action>", alerts_views.alert_event_action, name="alert_event_action"),
    path("alerts/rules/new", alerts_views.alert_rule_edit, name="alert_rule_new"),
    path("alerts/rules/<int:rule_id>", alerts_views.alert_rule_edit, name="alert_rule_edit"),
    path("alerts/rules/<int:rule_id>/delete", alerts_views.alert_rule_delete, name="alert_rule_delete"),
    path("uploads", uploads.uploads, name="uploads"),
    path("uploads/<uuid:task_id>", uploads.upload_task, name="upload_task"),
    path("uploads/<uuid:task_id>/retry", uploads.upload_task_retry, name="upload_task_retry"),
    path("uploads/<uuid:task_id>/cancel", uploads.upload_task_cancel, name="upload_task_cancel"),
    path("uploads/<uuid:task_id>/raw", uploads.upload_raw_file, name="raw_file"),
    path("uploads/<uuid:task_id>/errors.csv", uploads.upload_error_report, name="error_report"),
]
