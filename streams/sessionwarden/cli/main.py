"""The `sessionwarden` command line."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from sessionwarden.errors import SessionwardenError

if TYPE_CHECKING:
    from sessionwarden.config.settings import Settings
    from sessionwarden.policy import Policy

Subcommands = argparse._SubParsersAction  # what add_subparsers returns


def _cmd_topics_create(args: argparse.Namespace) -> int:
    from sessionwarden.kafka.topics import admin_client, ensure_topics, topic_specs

    settings, policy = _load(args)
    specs = topic_specs(settings, policy.max_absolute)
    if args.dry_run:
        for s in specs:
            cfg = ", ".join(f"{k}={v}" for k, v in s.configs.items())
            print(f"{s.name:40} partitions={s.partitions} rf={s.replication_factor} {cfg}")
        return 0
    ensure_topics(admin_client(settings), specs)
    return 0


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from sessionwarden.cli.policy import run_policy_check

    return run_policy_check(args.file, sys.stdout, sys.stderr)


def _load(args: argparse.Namespace) -> tuple[Settings, Policy]:
    from sessionwarden.config.settings import load_settings
    from sessionwarden.policy import default_policy, load_policy

    settings = load_settings(args.config, policy_file=getattr(args, "policy", None))
    policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
    _check_kafka_security(settings)
    return settings, policy


def _check_kafka_security(settings: Settings) -> None:
    """On a secured cluster, a wrong password or an untrusted CA ends the command with one
    line, instead of librdkafka retrying forever."""
    if settings.kafka.security.protocol != "PLAINTEXT":
        from sessionwarden.kafka.security import check_connection

        check_connection(settings.kafka.bootstrap_servers, settings.kafka.security)


def _cmd_acls(args: argparse.Namespace) -> int:
    from sessionwarden.cli.acls import Principals, acl_plan, apply_plan, print_plan
    from sessionwarden.config.settings import load_settings

    settings = load_settings(args.config)  # printing needs no connection
    names = [f.name for f in fields(Principals)]
    given = {n: getattr(args, f"{n}_principal") for n in names if getattr(args, f"{n}_principal")}
    plan = acl_plan(settings, Principals(**given))
    print_plan(plan, sys.stdout)
    if args.apply:
        from sessionwarden.kafka.topics import admin_client

        _check_kafka_security(settings)
        count = apply_plan(admin_client(settings), plan)
        print(f"applied {count} ACL(s)")
    return 0


def _cmd_enforce(args: argparse.Namespace) -> int:
    from sessionwarden.enforcer.loop import EnforcerLoop
    from sessionwarden.enforcer.txn import EnforcerExit
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings, policy = _load(args)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="enforcer", instance=settings.enforcer.instance_id)
    loop = EnforcerLoop(settings, policy)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.stop())
    try:
        loop.run()
    except EnforcerExit as exc:
        return exc.code
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from sessionwarden.cli.publish import publish_lines

    settings, _ = _load(args)
    return publish_lines(settings, sys.stdin, sys.stderr, fill=args.fill)


def _cmd_tail(args: argparse.Namespace) -> int:
    from sessionwarden.cli.tail import tail

    settings, _ = _load(args)
    try:
        return tail(settings, args.topic, args.json, args.follow, sys.stdout)
    except BrokenPipeError:
        return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from sessionwarden.detect.app import run
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings, policy = _load(args)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="detect")
    return run(settings, policy)  # faust's worker handles SIGTERM/SIGINT itself


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sessionwarden.audit.faults import parse_faults
    from sessionwarden.audit.simulate import simulate

    settings, policy = _load(args)
    simulate(
        settings,
        policy,
        args.users,
        args.seed,
        args.rate,
        Path(args.truth),
        faults=parse_faults(args.faults),
        budget=args.producer_delay_budget,
    )
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from sessionwarden.cli.verify import run_verify

    settings, _ = _load(args)
    return run_verify(
        settings,
        Path(args.truth),
        args.tolerance,
        Path(args.json) if args.json else None,
        Path(args.png) if args.png else None,
        wait=not args.no_wait,
    )


def _cmd_sink_postgres(args: argparse.Namespace) -> int:
    from sessionwarden.cli.sink import run_sink_postgres
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings, policy = _load(args)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="sink")
    return run_sink_postgres(settings, policy, init=args.init, print_sql=args.print_sql)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from sessionwarden.config.settings import load_settings
    from sessionwarden.ops.logs import bind_process, configure_logging
    from sessionwarden.web.dashboard.service import serve

    settings = load_settings(
        args.config, dashboard_port=args.port, dashboard_token_file=args.token_file
    )
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="dashboard")
    return serve(settings, settings.dashboard.token_file, args.show_session_ids)


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _add_topics(sub: Subcommands[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="manage the product's Kafka topics")
    tsub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create missing topics, align configs (idempotent)")
    create.add_argument("--dry-run", action="store_true", help="print the layout, change nothing")
    create.set_defaults(func=_cmd_topics_create)


def _add_acls(sub: Subcommands[argparse.ArgumentParser]) -> None:
    acls = sub.add_parser("acls", help="print (--apply: create) the least-privilege ACLs")
    acls.add_argument("--apply", action="store_true", help="create them (needs an admin login)")
    from sessionwarden.cli.acls import Principals

    for who in fields(Principals):
        acls.add_argument(
            f"--{who.name}-principal", metavar="PRINCIPAL", help=f"default {who.default}"
        )
    acls.set_defaults(func=_cmd_acls)


def _add_policy(sub: Subcommands[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="inspect a timeout policy")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate a policy and print its effective timeouts")
    check.add_argument("file", nargs="?", help="policy TOML (default: the shipped policy)")
    check.set_defaults(func=_cmd_policy_check)


def _add_enforce(sub: Subcommands[argparse.ArgumentParser]) -> None:
    enforce = sub.add_parser("enforce", help="run the enforcer (SIGTERM/SIGINT stop it cleanly)")
    enforce.add_argument("--policy", help="policy TOML (default: the shipped policy)")
    enforce.set_defaults(func=_cmd_enforce)


def _add_detect(sub: Subcommands[argparse.ArgumentParser]) -> None:
    detect = sub.add_parser("detect", help="run the anomaly detectors (faust-streaming worker)")
    detect.add_argument("--policy", help="policy TOML with the [anomaly] thresholds")
    detect.set_defaults(func=_cmd_detect)


def _add_publish(sub: Subcommands[argparse.ArgumentParser]) -> None:
    publish = sub.add_parser(
        "publish", help="read auth events as JSON lines on stdin and publish the valid ones"
    )
    publish.add_argument(
        "--fill", action="store_true", help="add a missing event_id, occurred_at or auth_time (now)"
    )
    publish.set_defaults(func=_cmd_publish)


def _add_tail(sub: Subcommands[argparse.ArgumentParser]) -> None:
    tail = sub.add_parser("tail", help="print an output topic (read_committed)")
    tail.add_argument("topic", choices=["revocations", "audit", "alerts", "dlq"])
    tail.add_argument("--json", action="store_true", help="raw JSON lines instead of text")
    tail.add_argument("-f", "--follow", action="store_true", help="keep waiting for new records")
    tail.set_defaults(func=_cmd_tail)


def _add_simulate(sub: Subcommands[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("simulate", help="publish seeded traffic and write its ground truth")
    sim.add_argument("--policy", help="policy TOML the enforcer runs with (default: shipped)")
    sim.add_argument("--users", type=_positive(int), default=50, help="users (default 50)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--rate", type=_positive(float), default=50.0, help="average events/s (default 50)"
    )
    sim.add_argument("--truth", default="sim-truth.json", help="ground truth output file")
    sim.add_argument(
        "--faults",
        default="",
        help="comma-separated fault modes: skew, reorder, delay, duplicate, partitioner (or all)",
    )
    sim.add_argument(
        "--producer-delay-budget",
        type=float,
        default=0.0,
        metavar="S",
        help="the enforcer's SESSIONWARDEN_PRODUCER_DELAY_BUDGET_S (default 0)",
    )
    sim.set_defaults(func=_cmd_simulate)


def _add_verify(sub: Subcommands[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser("verify", help="audit revocations against a simulation's truth")
    verify.add_argument("--truth", default="sim-truth.json", help="ground truth from simulate")
    verify.add_argument(
        "--tolerance",
        type=_positive(float),
        default=2.0,
        help="seconds after a deadline still counted on time (default 2)",
    )
    verify.add_argument("--json", help="also write the report as JSON here")
    verify.add_argument("--png", help="also write a latency histogram (PNG) here")
    verify.add_argument(
        "--no-wait", action="store_true", help="do not wait for the run's last deadline to pass"
    )
    verify.set_defaults(func=_cmd_verify)


def _add_sink(sub: Subcommands[argparse.ArgumentParser]) -> None:
    sink = sub.add_parser("sink", help="keep the revocation set in a database")
    ssub = sink.add_subparsers(dest="sink_command", required=True, metavar="DATABASE")
    pg = ssub.add_parser("postgres", help="revocations into PostgreSQL (SESSIONWARDEN_PG_DSN)")
    pg.add_argument("--policy", help="policy TOML: rows are kept its longest absolute timeout")
    pg.add_argument("--init", action="store_true", help="apply the schema migrations and exit")
    pg.add_argument("--print-sql", action="store_true", help="print the schema's SQL and exit")
    pg.set_defaults(func=_cmd_sink_postgres)


def _add_dashboard(sub: Subcommands[argparse.ArgumentParser]) -> None:
    dashboard = sub.add_parser("dashboard", help="the live web view of revocations and alerts")
    dashboard.add_argument("--port", type=int, help="port on 127.0.0.1 (default 8765)")
    dashboard.add_argument("--token-file", help="file holding the access token (default: random)")
    dashboard.add_argument(
        "--show-session-ids", action="store_true", help="raw session ids instead of salted hashes"
    )
    dashboard.set_defaults(func=_cmd_dashboard)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwarden",
        description="Kafka-native session timeout enforcement and real-time revocation.",
    )
    parser.add_argument("--config", help="TOML settings file (environment variables win)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_topics,
        _add_acls,
        _add_policy,
        _add_enforce,
        _add_detect,
        _add_publish,
        _add_tail,
        _add_simulate,
        _add_verify,
        _add_sink,
        _add_dashboard,
    ):
        add(sub)

    from sessionwarden.cli.drill import add_parser as add_drill

    add_drill(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SessionwardenError as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
