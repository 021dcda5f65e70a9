"""Removes the group memberships and the apps' rows (presence, say) of WebSockets that are gone, once.

Every runworker already does this every CHANNELS1_KIT_SWEEP_SECONDS (channels1_kit/sockets.py);
this is for an operator who wants it now, or a site that runs with the setting at 0 and a cron.
"""

import json

from django.core.management.base import BaseCommand

from channels1_kit import sockets
from channels1_kit.management import redis_errors_said_plainly


class Command(BaseCommand):
    help = __doc__

    @redis_errors_said_plainly
    def handle(self, *args, **options):
        report = sockets.sweep()
        self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
