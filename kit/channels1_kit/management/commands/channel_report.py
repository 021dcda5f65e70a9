"""Prints the channel layer's backlog per channel, so an operator can see that workers are behind.

    python manage.py channel_report              # a table, rates over one second
    python manage.py channel_report --json --interval 5

The columns are described in channels1_kit/monitoring.py.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from channels1_kit.management import redis_errors_said_plainly
from channels1_kit.monitoring import channel_report


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="seconds over which to measure rates")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print JSON instead of a table")

    @redis_errors_said_plainly
    def handle(self, *args, interval: float, as_json: bool, **options):
        try:
            report = channel_report(interval=interval)
        except ValueError as error:
            raise CommandError(str(error))
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
            return
        width = max(len(name) for name in report["channels"]) + 2
        self.stdout.write(
            f"{'channel':<{width}}{'backlog':>9}{'oldest s':>10}{'in/s':>9}{'out/s':>9}{'full':>7}{'gone':>7}"
        )
        for name, row in report["channels"].items():
            # gone: replies dropped because the daphne of this reply channel is gone.
            self.stdout.write(
                f"{name:<{width}}{row['backlog']:>9}{row['oldest_message_age']:>10}"
                f"{row['messages_per_second']:>9}{row['consumed_per_second']:>9}{row['channel_full_total']:>7}"
                f"{row.get('replies_dropped_gone', ''):>7}"
            )
        self.stdout.write(
            f"backlog for the workers: {report['backlog']}; ChannelFull in all: {report['channel_full_total']}; "
            f"replies dropped to gone sockets: {report['replies_dropped_to_gone_sockets']}"
        )
