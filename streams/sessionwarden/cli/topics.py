"""`sessionwarden topics create [--dry-run]`: the product's topics, created or aligned."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands, load

EXTRA = None  # the SDK's confluent-kafka admin client


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    topics = sub.add_parser("topics", help="manage the product's Kafka topics")
    tsub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create missing topics, align configs (idempotent)")
    create.add_argument("--dry-run", action="store_true", help="print the layout, change nothing")
    return topics


def run(args: argparse.Namespace) -> int:
    from sessionwarden.kafka.topics import admin_client, ensure_topics, topic_specs

    settings, policy = load(args)
    specs = topic_specs(settings, policy.max_absolute)
    if args.dry_run:
        for s in specs:
            cfg = ", ".join(f"{k}={v}" for k, v in s.configs.items())
            print(f"{s.name:40} partitions={s.partitions} rf={s.replication_factor} {cfg}")
        return 0
    ensure_topics(admin_client(settings), specs)
    return 0
