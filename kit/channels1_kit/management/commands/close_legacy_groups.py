"""Closes with 4503 every socket still in a group name an app registered as no longer used, once.

After a deploy that renames groups (sockets.register(..., legacy_groups=...)), the sockets that
joined under the old code are in groups the new code never sends to. Every runworker's sweep
closes them within CHANNELS1_KIT_SWEEP_SECONDS; this does it now, once every process runs the
new code. Prints how many memberships it closed, as JSON.
"""

import json

from django.core.management.base import BaseCommand

from channels1_kit import sockets
from channels1_kit.management import redis_errors_said_plainly


class Command(BaseCommand):
    help = __doc__

    @redis_errors_said_plainly
    def handle(self, *args, **options):
        self.stdout.write(json.dumps({"legacy_closed": sockets.close_legacy_groups()}))
