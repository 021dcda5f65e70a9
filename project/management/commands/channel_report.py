"""Prints the channel layer's backlog per channel, so an operator can see that workers are behind."""

import json

from django.core.management.base import BaseCommand

from project.monitoring import channel_report


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="seconds over which to measure rates")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print JSON instead of a table")

    def handle(self, *args, interval: float, as_json: bool, **options):
        report = channel_report(interval=interval)
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
            return
        self.stdout.write(f"{'channel':<24}{'backlog':>9}{'oldest s':>10}{'msg/s':>9}{'full':>7}")
        for name, row in report["channels"].items():
            self.stdout.write(
                f"{name:<24}{row['backlog']:>9}{row['oldest_message_age']:>10}"
                f"{row['messages_per_second']:>9}{row['channel_full_total']:>7}"
            )
        self.stdout.write(f"ChannelFull in all: {report['channel_full_total']}")
