"""Streams uploads to a temporary file, hashing and enforcing the size limit as bytes arrive."""

import contextlib
import hashlib
import os
import weakref
from collections.abc import Iterator

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import HttpRequest

from ingestion.errors import IngestionError, disk_refusal
from ingestion.overlap import BackgroundConsumer

# Room in a request body, beyond the file, for the multipart envelope and the form's other fields
# (datasource, mapping, options: a few kilobytes at most).
FORM_FIELDS_ALLOWANCE_BYTES = 1024 * 1024


TOO_MANY_FILES_DETAIL = "Send one file per request; this request carried more file parts."


def upload_limit_bytes() -> int:
    return settings.MAX_UPLOAD_MB * 1024 * 1024


def request_body_limit_bytes() -> int:
    """The largest request body worth reading: one file at the limit and its form."""
    return upload_limit_bytes() + FORM_FIELDS_ALLOWANCE_BYTES


def upload_disk_refusal_raise(request: HttpRequest) -> None:
    """Raise the refusal (507 `storage_full` / `storage_unwritable`) of an upload the server's disk
    stopped while it streamed; the upload views call it before looking for the file."""
    refusal: IngestionError | None = getattr(request, "upload_disk_refusal", None)
    if refusal is not None:
        raise refusal


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Every upload goes to disk (never whole in memory) with its sha256 computed on the way.

    The limit is on the request: past MAX_UPLOAD_MB of file data, however many file parts carry
    it, the upload stops and `request.upload_too_large` is set, so the view answers 413; the rest
    of the body is drained so the client reads the answer. (A body whose Content-Length is past
    the limit is refused before it is read: sales_analytics.request_limits.) When the disk refuses
    the temporary file (full, read-only) the upload stops the same way, the partial file is
    removed and `request.upload_disk_refusal` says why (507, not a bare 500).
    """

    # Django reads the body in 64 KB chunks by default; at hundreds of megabytes the per-chunk
    # Python work (multipart parsing, hashing, writing) is then most of the request's time.
    chunk_size = 4 * 1024 * 1024

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # One handler per request (Django builds them per request): file bytes of every part.
        self._request_received = 0

    def new_file(self, *args, **kwargs) -> None:
        with self._disk_refusals_stop_upload():
            super().new_file(*args, **kwargs)
        self._sha256 = hashlib.sha256()
        # Hashing (which releases the GIL) runs in a thread while the chunk is written to disk.
        self._hasher = BackgroundConsumer(self._sha256.update, name="upload-sha256")
        # However the request ends (a client gone mid-upload raises past every handler hook),
        # the thread ends with the handler.
        weakref.finalize(self, self._hasher.close, raise_failure=False)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self._request_received += len(raw_data)
        if self._request_received > upload_limit_bytes():
            self.request.upload_too_large = True
            self._hasher.close(raise_failure=False)
            self.file.close()
            raise StopUpload(connection_reset=False)
        self._hasher.put(raw_data)
        with self._disk_refusals_stop_upload():
            return super().receive_data_chunk(raw_data, start)

    def upload_interrupted(self) -> None:
        # The handler and its request refer to each other, so the finalizer above would only run
        # at the next cyclic garbage collection: end the thread now.
        if hasattr(self, "_hasher"):
            self._hasher.close(raise_failure=False)
        super().upload_interrupted()

    def file_complete(self, file_size: int) -> TemporaryUploadedFile:
        with self._disk_refusals_stop_upload():  # the last buffered bytes are written here
            uploaded = super().file_complete(file_size)
        self._hasher.close()
        uploaded.sha256 = self._sha256.hexdigest()
        return uploaded

    @contextlib.contextmanager
    def _disk_refusals_stop_upload(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            refusal = disk_refusal(
                exc,
                when="while receiving the file (its temporary upload folder)",
                outcome="Nothing was stored",
                then="send the file again",
            )
            if refusal is None:
                raise
            self.request.upload_disk_refusal = refusal
            self._partial_file_remove()
            raise StopUpload(connection_reset=False) from exc

    def _partial_file_remove(self) -> None:
        if hasattr(self, "_hasher"):
            self._hasher.close(raise_failure=False)
        partial = getattr(self, "file", None)
        if partial is None:
            return
        path = partial.temporary_file_path()
        with contextlib.suppress(OSError):  # closing flushes, which the full disk may refuse again
            partial.close()
        with contextlib.suppress(FileNotFoundError):  # closing removed it
            os.unlink(path)
