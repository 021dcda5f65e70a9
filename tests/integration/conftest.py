import pytest

from tests.integration.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One running site for the integration tests that do not break anything."""
    site = Stack(tmp_path_factory.mktemp("stack"))
    try:
        site.start()
    except Exception:
        print(site.logs())
        site.stop()
        raise
    yield site
    site.stop()


@pytest.fixture(scope="session")
def users(stack):
    """Logins on the stack: alice and bob (plain), boss (staff). Password: the username twice."""
    stack.django(
        "from django.contrib.auth.models import User\n"
        "for name, staff in [('alice', False), ('bob', False), ('boss', True)]:\n"
        "    User.objects.create_user(name, password=name * 2, is_staff=staff)\n"
    )
    return {"alice": "alicealice", "bob": "bobbob", "boss": "bossboss"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item (item.rep_call) for fixtures that act on a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
