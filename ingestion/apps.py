from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from ingestion.tasks import worker_warm_up

        post_spawn.connect(worker_warm_up, dispatch_uid="ingestion-worker-warm-up")
