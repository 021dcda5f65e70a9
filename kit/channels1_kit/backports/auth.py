"""Authentication that takes as long whether or not the user can log in, for Django 2.2 (CVE-2024-39329)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class TimingSafeModelBackend(ModelBackend):
    """ModelBackend, with CVE-2024-39329 fixed as Django 4.2.14 fixed it.

    Django 2.2 hashes the password when the username is unknown, but answers at once for a
    user whose password is unusable (set_unusable_password()): the time a login takes
    tells those users apart. Here their password is hashed as well, and refused.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if username is not None and password is not None:
            user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
            if user is not None and not user.has_usable_password():
                # The same work as checking a real password, whose answer is always no.
                user_model().set_password(password)
                return None
        return super().authenticate(request, username=username, password=password, **kwargs)
