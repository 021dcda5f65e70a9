"""channels1_kit.backports: the Django 2.2 advisory fixes, where they matter (the Django 2.2 run of
make test-kit-django22) and on Django 5.2, where they must still do no harm to a site that keeps them."""

import datetime
import logging
from unittest import mock

import django
import pytest
from django.contrib.auth.hashers import get_hasher
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory, override_settings

from channels1_kit.backports.auth import TimingSafeModelBackend
from channels1_kit.backports.logs import EscapeControlCharacters, escape_controls
from channels1_kit.backports.middleware import RequestLimitsMiddleware
from channels1_kit.backports.uploads import FileCountLimitUploadHandler


def parse_files(count: int) -> int:
    """Parses a multipart body with `count` files behind the backport's handler; the files Django saw."""
    files = [SimpleUploadedFile(f"f{n}.txt", b"x") for n in range(count)]
    request = RequestFactory().post("/", {"name": "x", "f": files})
    request.upload_handlers = [FileCountLimitUploadHandler(request)] + request.upload_handlers
    return len(request.FILES.getlist("f"))


@override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=5)
def test_a_multipart_body_with_more_files_than_allowed_is_refused():
    assert parse_files(5) == 5
    # Django turns a SuspiciousOperation into 400 Bad Request.
    with pytest.raises(SuspiciousOperation):
        parse_files(6)


def test_an_over_long_accept_language_is_dropped_before_django_parses_it():
    seen = {}

    def view(request):
        seen["language"] = request.META.get("HTTP_ACCEPT_LANGUAGE")
        return "response"

    middleware = RequestLimitsMiddleware(view)
    factory = RequestFactory()
    assert middleware(factory.get("/", HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9")) == "response"
    assert seen["language"] == "fr-CH, fr;q=0.9"
    middleware(factory.get("/", HTTP_ACCEPT_LANGUAGE="en;q=0.1," * 100))
    assert seen["language"] is None


@pytest.mark.django_db
def test_a_login_as_a_user_without_a_usable_password_costs_a_password_hash():
    user = User.objects.create_user("nopass")
    user.set_unusable_password()
    user.save()
    User.objects.create_user("real", password="secret-pass")
    backend = TimingSafeModelBackend()
    hasher = get_hasher()
    with mock.patch.object(type(hasher), "encode", wraps=hasher.encode) as encode:
        assert backend.authenticate(None, username="nopass", password="guess") is None
        unusable = encode.call_count
        encode.reset_mock()
        assert backend.authenticate(None, username="nobody", password="guess") is None
        unknown = encode.call_count
    # The same work as for an unknown user, so the time a login takes tells nothing.
    assert unusable == unknown == 1
    assert backend.authenticate(None, username="real", password="secret-pass").username == "real"


def test_control_characters_in_log_messages_and_arguments_are_written_out():
    assert escape_controls("/a\nINFO forged\r\x1b[31m\x00\x7f") == "/a\\nINFO forged\\r\\x1b[31m\\x00\\x7f"
    assert escape_controls("tab\tstays, é and 🦜 too") == "tab\tstays, é and 🦜 too"
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/x\ny",), None)
    assert EscapeControlCharacters().filter(record)
    assert record.getMessage() == "Not Found: /x\\ny"
    mapping = logging.LogRecord("x", logging.INFO, __file__, 1, "%(path)s", ({"path": "/y\rz"},), None)
    assert EscapeControlCharacters().filter(mapping)
    assert mapping.getMessage() == "/y\\rz"


needs_django_2_2 = pytest.mark.skipif(
    django.VERSION >= (3, 1), reason="Django 3.1+ has the fix itself; the backend is for Django 2.2 (test-kit-django22)"
)


@needs_django_2_2
@pytest.mark.parametrize("offset", [0, datetime.timedelta(0)])
def test_utc_offsets_from_psycopg2_2_8_and_2_9_both_read_as_utc(offset):
    from channels1_kit.backports.postgresql.base import utc_tzinfo_factory

    assert utc_tzinfo_factory(offset).utcoffset(None) == datetime.timedelta(0)


@needs_django_2_2
@pytest.mark.parametrize("offset", [60, datetime.timedelta(hours=1)])
def test_a_connection_not_in_utc_is_still_refused(offset):
    from channels1_kit.backports.postgresql.base import utc_tzinfo_factory

    with pytest.raises(AssertionError, match="isn't set to UTC"):
        utc_tzinfo_factory(offset)
