"""Entry point of the WSGI server for the plain pages: `gunicorn project.wsgi`.

Production settings unless DJANGO_SETTINGS_MODULE says otherwise, as in project/asgi.py.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.prod")

application = get_wsgi_application()
