"""Entry point of the WSGI server for the plain pages: `gunicorn project.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.dev")

application = get_wsgi_application()
