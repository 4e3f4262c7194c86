"""NetBox 4.7 + netbox-proxbox: configuration, the migrated template, users, gunicorn, the RQ worker."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from tests.e2e.stack import postgres, procs
from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import HOST, Layout

WEB, WORKER, REDIS = "netbox-gunicorn", "netbox-rqworker", "redis"
MIGRATE_TIMEOUT = 1800.0

CONFIG = """\
# Written by tests/e2e/stack for one stack run; regenerated on every `up`.
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
DATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql', 'NAME': '{db}', 'USER': '{role}',
    'PASSWORD': '{password}', 'HOST': '{host}', 'PORT': '{pg_port}', 'CONN_MAX_AGE': 300}}}}
REDIS = {{
    'tasks': {{'HOST': '{host}', 'PORT': {redis_port}, 'USERNAME': '', 'PASSWORD': '', 'DATABASE': 0,
        'SSL': False}},
    'caching': {{'HOST': '{host}', 'PORT': {redis_port}, 'USERNAME': '', 'PASSWORD': '', 'DATABASE': 1,
        'SSL': False}},
}}
SECRET_KEY = '{secret_key}'
API_TOKEN_PEPPERS = {{1: '{pepper}'}}
PLUGINS = ['netbox_proxbox']
PLUGINS_CONFIG = {{'netbox_proxbox': {{}}}}
DEBUG = False
"""

BOOTSTRAP = """\
import os
from django.contrib.auth import get_user_model
from users.models import Token
user = get_user_model().objects.create_superuser('admin', 'admin@example.com', os.environ['E2E_PASSWORD'])
Token.objects.create(user=user, version=1, token=os.environ['E2E_TOKEN'], write_enabled=True,
                     description='e2e stack')
print('bootstrap ok')
"""


def write_config(lay: Layout, pg_port: int, redis_port: int) -> None:
    conf = lay.netbox_root / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "__init__.py").write_text("")
    text = CONFIG.format(
        db=postgres.DB,
        role=postgres.ROLE,
        password=postgres.PASSWORD,
        host=HOST,
        pg_port=pg_port,
        redis_port=redis_port,
        secret_key=secrets.token_urlsafe(50),
        pepper=secrets.token_urlsafe(48),
    )
    (conf / "configuration.py").write_text(text)


def env(lay: Layout, venv: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBOX_", "NETBOX_"))}
    base.update(NETBOX_ROOT=str(lay.netbox_root), PATH=f"{venv / 'bin'}:{base.get('PATH', '')}")
    base.update(extra)
    return base


def command(lay: Layout, venv: Path) -> str:
    """NETBOX_CMD: the command line that runs a NetBox management command with this config."""
    return f"env NETBOX_ROOT={lay.netbox_root} {venv / 'bin' / 'netbox'}"


def template_path(lay: Layout, venv: Path) -> Path:
    """The migrated-template dump belongs to one venv (its migrations)."""
    return lay.templates / f"{venv.name}.dump"


def prepare_db(lay: Layout, venv: Path, pg_port: int) -> str:
    """NetBox's database: restored from the template, or migrated once (~7 min) and dumped."""
    dump = template_path(lay, venv)
    if dump.exists():
        postgres.restore(lay, pg_port, dump)
        return "restored"
    postgres.create_db(lay, pg_port)
    argv = [str(venv / "bin" / "netbox"), "migrate", "--no-input"]
    procs.run_logged(
        argv, lay.log("netbox-migrate"), "netbox (migrate)", env=env(lay, venv), timeout=MIGRATE_TIMEOUT
    )
    postgres.save_template(lay, pg_port, dump)
    return "migrated"


def bootstrap_users(lay: Layout, venv: Path, token: str) -> None:
    argv = [str(venv / "bin" / "netbox"), "shell", "-c", BOOTSTRAP]
    extra = {"E2E_TOKEN": token, "E2E_PASSWORD": secrets.token_urlsafe(16)}
    procs.run_logged(
        argv, lay.log("netbox-bootstrap"), "netbox (superuser + token)", env=env(lay, venv, **extra)
    )


def start_redis(lay: Layout, port: int) -> None:
    data = lay.stack / "redis"
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    try:
        procs.spawn(lay, REDIS, argv, os.environ, data, marker="redis-server")
    except FileNotFoundError as exc:
        raise StackError(REDIS, "redis-server not found (apt-get install redis-server)") from exc
    procs.wait_ready(lay, REDIS, lambda: _redis_ping(port), timeout=30)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _web_argv(venv: Path, port: int) -> list[str]:
    return [
        str(venv / "bin" / "gunicorn"),
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--timeout",
        "300",
        "netbox.wsgi",
    ]


def _wait_web(lay: Layout, port: int, token: str) -> None:
    url = f"http://{HOST}:{port}/api/status/"
    headers = {"Authorization": f"Token {token}"}
    procs.wait_ready(lay, WEB, lambda: procs.http_status(url, headers) == 200, timeout=120)


def _wait_worker(lay: Layout) -> None:
    log = lay.log(WORKER)
    procs.wait_ready(lay, WORKER, lambda: _worker_listening(log), timeout=90)


def start_web(lay: Layout, venv: Path, port: int, token: str) -> None:
    procs.spawn(lay, WEB, _web_argv(venv, port), env(lay, venv), lay.netbox_root, marker="netbox.wsgi")
    _wait_web(lay, port, token)


def start_worker(lay: Layout, venv: Path) -> None:
    argv = [str(venv / "bin" / "netbox"), "rqworker", "high", "default", "low"]
    procs.spawn(lay, WORKER, argv, env(lay, venv), lay.netbox_root, marker="rqworker")
    _wait_worker(lay)


def start_web_and_worker(lay: Layout, venv: Path, port: int, token: str) -> None:
    """Both at once: each spends ~15 s importing Django, so their start-ups overlap."""
    procs.spawn(lay, WEB, _web_argv(venv, port), env(lay, venv), lay.netbox_root, marker="netbox.wsgi")
    argv = [str(venv / "bin" / "netbox"), "rqworker", "high", "default", "low"]
    procs.spawn(lay, WORKER, argv, env(lay, venv), lay.netbox_root, marker="rqworker")
    _wait_web(lay, port, token)
    _wait_worker(lay)


def _worker_listening(log: Path) -> bool:
    try:
        return "Listening on" in log.read_text(errors="replace")
    except FileNotFoundError:
        return False
