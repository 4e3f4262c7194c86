"""Command line: a thin parser over Config and Service.

Exit codes: 0 success (or scheduling disabled, or a run skipped because
proxbox-api was busy), 1 a failed run, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime

from proxbox_scheduler import __version__
from proxbox_scheduler.config import Config, ConfigError, load, name_of, read, read_or_default
from proxbox_scheduler.core.outcome import Status
from proxbox_scheduler.core.schedule import ModeError, ModeKind, parse_mode
from proxbox_scheduler.telemetry.logs import setup_logging

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
PROG = "proxbox-scheduler"

OVERRIDES = {
    "mode": "off, continuous, interval=<s>, cron=<expr>",
    "tz": "IANA zone for cron",
    "invoke": "http or exec",
    "api_url": "base URL of proxbox-api",
    "http_port": "status server port, 0 = off",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
}
"""Config attribute -> help: each flag overrides the variable that sets that attribute."""


def _settings_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = flags.add_argument_group("settings (override the environment)")
    for attr, meaning in OVERRIDES.items():
        group.add_argument(f"--{attr.replace('_', '-')}", dest=attr, help=f"{name_of(attr)}: {meaning}")
    return flags


def build_parser() -> argparse.ArgumentParser:
    flags = _settings_flags()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[flags],
        description="Drive proxbox-api full syncs (Proxmox -> NetBox) on a schedule. "
        "Without a command: run the schedule (same as `run`). Settings come from PROXBOX_* "
        "environment variables; see the README for the full table.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", parents=[flags], help="run the schedule until SIGTERM (the container entrypoint)")
    sub.add_parser("once", parents=[flags], help="one run now; exit 0 success, 1 failure, 2 bad config")
    check = sub.add_parser("check", parents=[flags], help="validate the configuration, show the next fires")
    check.add_argument("--count", type=int, default=5, help="how many fire times to show (default 5)")
    check.add_argument("--from", dest="start", help="ISO-8601 instant to start from (default: now)")
    health = sub.add_parser("healthcheck", help="exit 0 when the running scheduler is alive, else 1")
    health.add_argument("--port", type=int, help="status server port (default: PROXBOX_SCHEDULER_HTTP_PORT)")
    health.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="also unhealthy when the last success is older"
    )
    ctl = sub.add_parser("ctl", help="run now, pause or resume a job of the running scheduler")
    ctl.add_argument("action", choices=["run", "pause", "resume"])
    ctl.add_argument("job", help="the job's name (`default` for the one job)")
    ctl.add_argument("--url", help="ops URL (default: from PROXBOX_SCHEDULER_HTTP_HOST/PORT on loopback)")
    ctl.add_argument(
        "--token-file", help="file holding the token (default: PROXBOX_SCHEDULER_CONTROL_TOKEN_FILE)"
    )
    # Listed for --help only: main() hands `emulate-api ...` to the emulator's own
    # parser, so no other command pays for importing it.
    sub.add_parser("emulate-api", help="serve a proxbox-api emulator (for trials and tests)")
    demo = sub.add_parser("demo", help="the scheduler against the emulator, status page up; Ctrl-C stops")
    demo.add_argument("--interval", type=float, default=6.0, help="seconds between runs (default 6)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    demo.add_argument("--json", action="store_true", help="JSON log lines instead of readable ones")
    return parser


def effective_env(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with command-line overrides applied."""
    env = dict(environ)
    for attr in OVERRIDES:
        value = getattr(args, attr, None)
        if value is not None:
            env[name_of(attr)] = value
    return env


def _fail_config(exc: ConfigError) -> int:
    print(f"{PROG}: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def _setup_logging_leniently(env: Mapping[str, str]) -> None:
    """Logging for paths that must not fail on other variables (mode off): bad values fall back."""
    setup_logging(read_or_default("log_level", env), read_or_default("log_json", env))


def cmd_run(env: Mapping[str, str]) -> int:
    try:
        if read("mode", env).kind is ModeKind.OFF:
            _setup_logging_leniently(env)
            logging.getLogger("proxbox_scheduler").info(
                f"scheduling is disabled ({name_of('mode')}=off); exiting", extra={"mode": "off"}
            )
            return EXIT_OK
        config = load(env)
    except ConfigError as exc:
        return _fail_config(exc)
    setup_logging(config.log_level, config.log_json)
    from proxbox_scheduler.service import Service

    try:
        asyncio.run(Service(config).serve())
    except ConfigError as exc:
        return _fail_config(exc)
    return EXIT_OK


def cmd_once(env: Mapping[str, str]) -> int:
    try:
        config = load(env, need_target=True)
    except ConfigError as exc:
        return _fail_config(exc)
    from proxbox_scheduler.core.observer import Observer
    from proxbox_scheduler.service import Service

    observers: list[Observer] = []
    if sys.stdout.isatty():
        from proxbox_scheduler.telemetry.progress import TerminalProgress

        # the bar replaces the INFO lines; warnings and errors still print
        setup_logging(max(config.log_level, "WARNING", key=logging.getLevelName), config.log_json)
        observers.append(TerminalProgress())
    else:
        setup_logging(config.log_level, config.log_json)
    outcome = asyncio.run(Service(config, observers=observers).once())
    if outcome.status is Status.SKIPPED:
        print(f"{PROG}: run skipped: {outcome.reason}", file=sys.stderr)
        return EXIT_OK
    if outcome.ok:
        return EXIT_OK
    print(f"{PROG}: run failed: {outcome.reason}", file=sys.stderr)
    return EXIT_FAILED


def _parse_start(raw: str | None, config: Config) -> datetime:
    if raw is None:
        return datetime.now(config.tz)
    try:
        start = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigError(
            "--from", raw, "expected an ISO-8601 time such as 2026-03-08T01:00:00-05:00"
        ) from None
    return start if start.tzinfo else start.replace(tzinfo=config.tz)


def cmd_check(env: Mapping[str, str], count: int, start_raw: str | None) -> int:
    from proxbox_scheduler.core.schedule import upcoming

    try:
        config = load(env)
        if not 1 <= count <= 10000:
            raise ConfigError("--count", str(count), "expected a whole number from 1 to 10000")
        start = _parse_start(start_raw, config)
    except ConfigError as exc:
        return _fail_config(exc)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    mode = config.mode
    print(
        f"# configuration valid: mode {mode}, zone {config.tz.key}, invoke {config.invoke}", file=sys.stderr
    )
    if mode.kind is ModeKind.OFF:
        print("# scheduling is disabled: `run` exits 0 at once", file=sys.stderr)
    elif mode.kind is ModeKind.CONTINUOUS:
        print("# continuous: each run starts as soon as the previous one succeeded", file=sys.stderr)
    try:
        for fire in upcoming(mode, start, config.tz, count):
            print(f"{fire.isoformat()}  {fire.strftime('%a')}  {fire.tzname()}")
    except (OverflowError, StopIteration):
        print("# no further fire times before the year 9999", file=sys.stderr)
    return EXIT_OK


def emulate_api(argv: Sequence[str]) -> int:
    from proxbox_emulator.cli import main as emulator_main

    return emulator_main(argv, prog=f"{PROG} emulate-api")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulate-api"]:
        return emulate_api(argv[1:])
    args = build_parser().parse_args(argv)
    env = effective_env(args, os.environ)
    command = args.command or "run"
    if command == "run":
        return cmd_run(env)
    if command == "once":
        return cmd_once(env)
    if command == "check":
        return cmd_check(env, args.count, args.start)
    if command == "healthcheck":
        return cmd_healthcheck(env, args.port, args.max_age)
    if command == "ctl":
        return cmd_ctl(env, args.action, args.job, args.url, args.token_file)
    if command == "demo":
        from proxbox_scheduler.demo import run_demo

        try:
            parse_mode(f"interval={args.interval}")
        except ModeError as exc:
            return _fail_config(ConfigError("--interval", str(args.interval), str(exc)))
        return run_demo(interval=args.interval, duration=args.duration, json_logs=args.json)
    raise AssertionError(f"unhandled command {command}")


def cmd_healthcheck(env: Mapping[str, str], port: int | None, max_age: float | None) -> int:
    from proxbox_scheduler.ops.healthcheck import check

    try:
        healthy, why = check(env, port, max_age)
    except ConfigError as exc:
        return _fail_config(exc)
    print(f"{'healthy' if healthy else 'unhealthy'}: {why}", file=sys.stdout if healthy else sys.stderr)
    return EXIT_OK if healthy else EXIT_FAILED


def cmd_ctl(env: Mapping[str, str], action: str, job: str, url: str | None, token_file: str | None) -> int:
    from proxbox_scheduler.ops.ctl import default_url, read_token, send

    try:
        token = read_token(token_file, env)
        target = url or default_url(env)
    except ConfigError as exc:
        return _fail_config(exc)
    accepted, why = send(target, action, job, token)
    print(why, file=sys.stdout if accepted else sys.stderr)
    return EXIT_OK if accepted else EXIT_FAILED
