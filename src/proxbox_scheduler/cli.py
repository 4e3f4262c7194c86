"""Command line: a thin parser over Config and Service.

Exit codes: 0 success (or scheduling disabled, or a run skipped because
proxbox-api or NetBox was busy), 1 a failed run (or one skipped because NetBox
could not be asked, or a failed ``check --probe``), 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime

from proxbox_scheduler import __version__
from proxbox_scheduler.config import DEFAULT_JOB, Config, ConfigError, load, name_of, read, read_or_default
from proxbox_scheduler.core.outcome import Status
from proxbox_scheduler.core.schedule import ModeError, ModeKind, parse_mode
from proxbox_scheduler.ops.control import Action
from proxbox_scheduler.redact import redact_url
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


def _add_version(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--version` works on the program and on every command."""
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def build_parser() -> argparse.ArgumentParser:
    flags = _settings_flags()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[flags],
        description="Drive proxbox-api full syncs (Proxmox -> NetBox) on a schedule. "
        "Without a command: run the schedule (same as `run`). Settings come from PROXBOX_* "
        "environment variables; see the README for the full table.",
    )
    _add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", parents=[flags], help="run the schedule until SIGTERM (the container entrypoint)")
    once = sub.add_parser(
        "once", parents=[flags], help="one run now; exit 0 success, 1 failure, 2 bad config"
    )
    once.add_argument("job", nargs="?", help="the job to run (default: the only job, `default`)")
    check = sub.add_parser("check", parents=[flags], help="validate the configuration, show the next fires")
    check.add_argument("--count", type=int, default=5, help="how many fire times to show (default 5)")
    check.add_argument("--from", dest="start", help="ISO-8601 instant to start from (default: now)")
    check.add_argument(
        "--probe", action="store_true", help="also ask NetBox and proxbox-api once; exit 1 if one fails"
    )
    health = sub.add_parser("healthcheck", help="exit 0 when the running scheduler is alive, else 1")
    health.add_argument("--port", type=int, help="status server port (default: PROXBOX_SCHEDULER_HTTP_PORT)")
    health.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="also unhealthy when the last success is older"
    )
    ctl = sub.add_parser("ctl", help="run now, pause or resume a job of the running scheduler")
    ctl.add_argument("action", choices=[action.value for action in Action])
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
    for command in sub.choices.values():
        _add_version(command)
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
        if read("mode", env).kind is ModeKind.OFF and not env.get(name_of("config_file")):
            _setup_logging_leniently(env)
            logging.getLogger("proxbox_scheduler").info(
                f"scheduling is disabled ({name_of('mode')}=off); exiting", extra={"mode": "off"}
            )
            return EXIT_OK
        config = load(env)
    except ConfigError as exc:
        return _fail_config(exc)
    setup_logging(config.log_level, config.log_json)
    _adopt_orphans(config)
    from proxbox_scheduler.service import Service

    try:
        asyncio.run(Service(config).serve())
    except ConfigError as exc:
        return _fail_config(exc)
    return EXIT_OK


def _adopt_orphans(config: Config) -> None:
    """exec: become a child subreaper, so what a command leaves behind can be stopped and reaped."""
    if any(job.invoke == "exec" for job in config.jobs):
        from proxbox_scheduler.triggers.procs import become_subreaper

        become_subreaper()


def _pick_job(config: Config, name: str | None) -> str:
    """The job `once` runs: the named one, else `default`; ConfigError naming the jobs there are."""
    try:
        return config.job(name or DEFAULT_JOB).name
    except KeyError:
        accepted = "expected one of the configured jobs: " + ", ".join(job.name for job in config.jobs)
        raise ConfigError("once JOB", name or "", accepted) from None


def cmd_once(env: Mapping[str, str], name: str | None = None) -> int:
    try:
        config = load(env, need_target=True)
        job = _pick_job(config, name)
    except ConfigError as exc:
        return _fail_config(exc)
    _adopt_orphans(config)
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
    try:
        outcome = asyncio.run(Service(config, observers=observers).once(job))
    except ConfigError as exc:
        return _fail_config(exc)
    if outcome.status is Status.SKIPPED:
        _say(f"{PROG}: run skipped: {outcome.reason}")
        return EXIT_OK if outcome.skip_reason == "busy" else EXIT_FAILED
    if outcome.ok:
        return EXIT_OK
    _say(f"{PROG}: run failed: {outcome.reason}")
    return EXIT_FAILED


def _say(line: str) -> None:
    """The last word on stderr; a terminal closed meanwhile (SIGHUP) must not turn it into a traceback."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


def _release_streams() -> None:
    """Flush stdout and stderr now; one that cannot take it (a hung-up terminal, a closed pipe)
    is pointed at /dev/null, so that the interpreter's own flush at exit does not turn the
    exit code into 120."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


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


def cmd_check(env: Mapping[str, str], count: int, start_raw: str | None, probe: bool = False) -> int:
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
    fires: list[tuple[datetime, str]] = []
    for job in config.jobs:
        mode = job.mode
        print(
            f"# configuration valid: job {job.name}: mode {mode}, zone {job.tz.key}, invoke {job.invoke}, "
            f"target {job.target}",
            file=sys.stderr,
        )
        if mode.kind is ModeKind.OFF:
            print(f"# job {job.name}: scheduling is disabled", file=sys.stderr)
        elif mode.kind is ModeKind.CONTINUOUS:
            print(
                f"# job {job.name}: continuous: each run starts when the previous one ended", file=sys.stderr
            )
        try:
            fires.extend((fire, job.name) for fire in upcoming(mode, start.astimezone(job.tz), job.tz, count))
        except (OverflowError, StopIteration):
            print(f"# job {job.name}: no further fire times before the year 9999", file=sys.stderr)
    print(f"# {_awareness(config)}", file=sys.stderr)
    for fire, name in sorted(fires, key=lambda pair: pair[0])[:count]:
        print(f"{fire.isoformat()}  {fire.strftime('%a')}  {fire.tzname()}  {name}")
    return _probe(config) if probe else EXIT_OK


def _awareness(config: Config) -> str:
    if config.netbox is None:
        return f"NetBox awareness: off (set {name_of('netbox_url')} to skip runs while NetBox has a sync)"
    policy = f"{name_of('netbox_unreachable')}={config.netbox_unreachable}"
    return f"NetBox awareness: on ({redact_url(config.netbox.url)}, {policy})"


def _probe(config: Config) -> int:
    from proxbox_scheduler.ops.probe import probe

    lines = probe(config)
    for ok, line in lines:
        print(f"probe: {line}" if ok else f"probe failed: {line}", file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if all(ok for ok, _ in lines) else EXIT_FAILED


def emulate_api(argv: Sequence[str]) -> int:
    from proxbox_emulator.cli import build_parser, run_cli

    prog = f"{PROG} emulate-api"
    return run_cli(_add_version(build_parser(prog)).parse_args(argv), prog)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    finally:
        _release_streams()


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["emulate-api"]:
        return emulate_api(argv[1:])
    args = build_parser().parse_args(argv)
    env = effective_env(args, os.environ)
    command = args.command or "run"
    if command == "run":
        return cmd_run(env)
    if command == "once":
        return cmd_once(env, args.job)
    if command == "check":
        return cmd_check(env, args.count, args.start, args.probe)
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
    from proxbox_scheduler.ops.ctl import read_token, send
    from proxbox_scheduler.ops.healthcheck import local_url

    try:
        token = read_token(token_file, env)
        target = url or local_url(env)
    except ConfigError as exc:
        return _fail_config(exc)
    accepted, why = send(target, action, job, token)
    print(why, file=sys.stdout if accepted else sys.stderr)
    return EXIT_OK if accepted else EXIT_FAILED
