"""Fixes of Django advisories that a site still on Django 2.2 does not get upstream.

Django 2.2's support ended with 2.2.28 (April 2022). A Channels 1 site that adopts the kit
before it upgrades Django can name these in its settings; on Django 5.2 each is Django's own
behaviour and the site leaves them out (docs/security.md):

- CVE-2023-24580, files per multipart body: ``FILE_UPLOAD_HANDLERS`` starting with
  ``channels1_kit.backports.uploads.FileCountLimitUploadHandler`` (``DATA_UPLOAD_MAX_NUMBER_FILES``, 100).
- CVE-2023-23969, long Accept-Language: ``MIDDLEWARE`` starting with
  ``channels1_kit.backports.middleware.RequestLimitsMiddleware`` (``ACCEPT_LANGUAGE_HEADER_MAX_LENGTH``, 500).
- CVE-2024-39329, login timing: ``AUTHENTICATION_BACKENDS = ["channels1_kit.backports.auth.TimingSafeModelBackend"]``.
- Not an advisory, a crash: psycopg2 2.9 (the first with Python 3.11 wheels) breaks every datetime read
  on Django 2.2; ``ENGINE: "channels1_kit.backports.postgresql"`` is the backend with Django 3.1's fix.
- CVE-2025-48432, log injection: the filter ``channels1_kit.backports.logs.EscapeControlCharacters`` on each
  log handler.
"""
