"""Streams uploads to a temporary file, hashing and enforcing the size limit as bytes arrive."""

import hashlib
import weakref

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

from ingestion.overlap import BackgroundConsumer


def upload_limit_bytes() -> int:
    return settings.MAX_UPLOAD_MB * 1024 * 1024


class HashingUploadHandler(TemporaryFileUploadHandler):
    """Every upload goes to disk (never whole in memory) with its sha256 computed on the way.

    Past MAX_UPLOAD_MB the upload stops and `request.upload_too_large` is set, so the
    view answers 413; the rest of the body is drained so the client reads the answer.
    """

    # Django reads the body in 64 KB chunks by default; at hundreds of megabytes the per-chunk
    # Python work (multipart parsing, hashing, writing) is then most of the request's time.
    chunk_size = 4 * 1024 * 1024

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self._sha256 = hashlib.sha256()
        self._received = 0
        # Hashing (which releases the GIL) runs in a thread while the chunk is written to disk.
        self._hasher = BackgroundConsumer(self._sha256.update, name="upload-sha256")
        # However the request ends (a client gone mid-upload raises past every handler hook),
        # the thread ends with the handler.
        weakref.finalize(self, self._hasher.close, raise_failure=False)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self._received += len(raw_data)
        if self._received > upload_limit_bytes():
            self.request.upload_too_large = True
            self._hasher.close(raise_failure=False)
            self.file.close()
            raise StopUpload(connection_reset=False)
        self._hasher.put(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def upload_interrupted(self) -> None:
        # The handler and its request refer to each other, so the finalizer above would only run
        # at the next cyclic garbage collection: end the thread now.
        if hasattr(self, "_hasher"):
            self._hasher.close(raise_failure=False)
        super().upload_interrupted()

    def file_complete(self, file_size: int) -> TemporaryUploadedFile:
        uploaded = super().file_complete(file_size)
        self._hasher.close()
        uploaded.sha256 = self._sha256.hexdigest()
        return uploaded
