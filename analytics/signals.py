from django.dispatch import Signal

# Sent (on commit) after a publish switched a datasource to a new data version.
# kwargs: datasource_name: str, data_version: int, upload_id: UUID.
publish_completed = Signal()
