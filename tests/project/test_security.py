"""Django's fixes for the advisories since 2.2.28 that this site's code reaches (docs/security.md),
the production settings' deploy check, and the WebSocket timeouts that must agree.

The site carried its own fixes for the first four while it ran Django 2.2; Django 5.2 has
each upstream, so these tests hold Django's behaviour to what the site relied on."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import get_hasher
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory, override_settings
from django.utils.translation import get_language_from_request

REPO = Path(__file__).resolve().parents[2]


# -- CVE-2023-23969: Accept-Language ------------------------------------------------------


def language_of(accept_language: str) -> str:
    return get_language_from_request(RequestFactory().get("/", HTTP_ACCEPT_LANGUAGE=accept_language))


def test_only_the_first_500_characters_of_accept_language_are_parsed():
    padding = "xx;q=0.1," * 100
    assert language_of("fr-CH, fr;q=0.9") == "fr"
    assert language_of("fr," + padding) == "fr"
    # French comes after the 500th character: never parsed, so LANGUAGE_CODE (en-us, served as en) stands.
    assert language_of(padding + "fr") == "en"


def test_a_page_asked_for_with_an_over_long_accept_language_is_served():
    assert Client().get("/", HTTP_ACCEPT_LANGUAGE="en;q=0.9," * 600).status_code == 200


# -- CVE-2023-24580: number of files in a multipart body ----------------------------------


def post_files(count: int) -> int:
    files = [SimpleUploadedFile(f"f{n}.txt", b"x") for n in range(count)]
    return Client().post("/accounts/login/", {"username": "x", "password": "y", "f": files}).status_code


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=5)
def test_a_body_with_more_files_than_allowed_is_refused_with_400():
    assert post_files(5) == 200  # the login page, with its "wrong password" form
    assert post_files(6) == 400


@pytest.mark.django_db
def test_the_default_file_limit_is_100():
    assert post_files(100) == 200
    assert post_files(101) == 400


# -- CVE-2024-39329: login timing of users without a usable password ----------------------


@pytest.mark.django_db
def test_logging_in_as_a_user_without_a_usable_password_costs_a_password_hash():
    user = User.objects.create_user("nopass")
    user.set_unusable_password()
    user.save()
    User.objects.create_user("real", password="secret-pass")
    hasher = get_hasher()
    with mock.patch.object(type(hasher), "encode", wraps=hasher.encode) as encode:
        assert authenticate(username="nopass", password="guess") is None
        unusable = encode.call_count
        encode.reset_mock()
        assert authenticate(username="nobody", password="guess") is None
        unknown = encode.call_count
    # The same work as for an unknown user.
    assert unusable == unknown == 1
    assert authenticate(username="real", password="secret-pass").username == "real"


# -- CVE-2025-48432: request paths in the log ----------------------------------------------


def test_control_characters_of_a_logged_request_path_are_written_out(caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert Client().get("/nope%0Aforged%1B[31m").status_code == 404
    [record] = [record for record in caplog.records if record.name == "django.request"]
    assert record.getMessage() == "Not Found: /nope\\nforged\\x1b[31m"


# -- manage.py check --deploy -----------------------------------------------------------------

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "project.settings.prod",
    "DJANGO_SECRET_KEY": "a-production-secret-of-fifty-or-more-characters-0123456789abcdefXYZ",
    "DJANGO_ALLOWED_HOSTS": "chat.example.org",
    # Never reached by the check: it only needs the settings to load.
    "DATABASE_URL": "sqlite:///{workdir}/db.sqlite3",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    # Behind TLS, as docs/deploying.md has it.
    "DJANGO_SSL_REDIRECT": "1",
    "DJANGO_HSTS_SECONDS": "31536000",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_HSTS_PRELOAD": "1",
}


def check_deploy(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
    env.update({key: value.format(workdir=tmp_path) for key, value in PRODUCTION_ENV.items()})
    env.update(overrides)
    env["VAR_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_settings(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_a_deploy_without_tls_settings_lacks(tmp_path):
    result = check_deploy(tmp_path, DJANGO_SSL_REDIRECT="0", DJANGO_HSTS_SECONDS="0")
    assert result.returncode != 0
    assert set(re.findall(r"security\.W\d+", result.stdout + result.stderr)) == {"security.W004", "security.W008"}


# -- WebSocket timeouts: daphne's, the group expiry's ---------------------------------------


def daphne_timeout(command: str) -> int:
    found = re.findall(r"--websocket_timeout (\d+)", command)
    assert len(found) == 1, command
    return int(found[0])


def test_daphne_closes_sockets_when_their_group_memberships_expire_a_week_after_they_open(settings):
    """A socket that outlived its memberships would hear nothing more, silently; one closed at
    that age reconnects and catches up. So every daphne closes sockets at the group expiry,
    which is a week rather than the default day, and the settings say so too."""
    procfile = (REPO / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    site = (REPO / "deploy" / "supervisor" / "site.conf").read_text()
    daphne = next(line for line in site.splitlines() if line.startswith("command=") and "bin/daphne" in line)
    group_expiry = settings.CHANNEL_LAYERS["default"]["CONFIG"]["group_expiry"]
    assert daphne_timeout(web) == daphne_timeout(daphne) == group_expiry == settings.WEBSOCKET_MAX_AGE == 604800


def test_a_stall_is_given_up_on_before_the_frames_waiting_behind_it_expire(settings):
    assert settings.CHANNELS1_KIT_ORDER_STALL_SECONDS < settings.CHANNEL_LAYERS["default"]["CONFIG"]["expiry"]
