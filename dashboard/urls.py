from django.urls import path

from dashboard import uploads, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("uploads", uploads.uploads, name="uploads"),
    path("uploads/<uuid:task_id>", uploads.upload_task, name="upload_task"),
    path("uploads/<uuid:task_id>/retry", uploads.upload_task_retry, name="upload_task_retry"),
    path("uploads/<uuid:task_id>/cancel", uploads.upload_task_cancel, name="upload_task_cancel"),
    path("uploads/<uuid:task_id>/raw", uploads.upload_raw_file, name="raw_file"),
    path("uploads/<uuid:task_id>/errors.csv", uploads.upload_error_report, name="error_report"),
]
