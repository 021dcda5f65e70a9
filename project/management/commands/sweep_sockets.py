"""Removes the presence rows and group memberships of WebSockets that are gone, once.

Every runworker already does this every SOCKET_SWEEP_SECONDS (project/sockets.py); this is
for an operator who wants it now, or a site that runs with SOCKET_SWEEP_SECONDS=0 and a cron.
"""

import json

from django.core.management.base import BaseCommand

from project import sockets


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        report = sockets.sweep()
        self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
