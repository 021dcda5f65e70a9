"""A cap on the number of files in one multipart request, for Django 2.2 (CVE-2023-24580)."""

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadhandler import FileUploadHandler


class TooManyFilesSent(SuspiciousOperation):
    """More files than DATA_UPLOAD_MAX_NUMBER_FILES; Django answers 400 Bad Request."""


class FileCountLimitUploadHandler(FileUploadHandler):
    """First of FILE_UPLOAD_HANDLERS: refuses the request at its (N+1)th file part.

    Django 2.2 parses any number of file parts, each one a temporary file or a buffer,
    wherever a POST body is read: CSRF checks and the login page read every POST. Django
    3.2.18+ stops at DATA_UPLOAD_MAX_NUMBER_FILES (100); this does the same. A request
    that goes over is refused as a whole, and Django answers 400.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.files = 0

    def new_file(self, *args, **kwargs):
        self.files += 1
        # Django 2.2 has no such setting; 100 is the default the fixed releases chose.
        limit = getattr(settings, "DATA_UPLOAD_MAX_NUMBER_FILES", 100)
        if limit is not None and self.files > limit:
            raise TooManyFilesSent(f"The number of files exceeded DATA_UPLOAD_MAX_NUMBER_FILES ({limit}).")
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None
