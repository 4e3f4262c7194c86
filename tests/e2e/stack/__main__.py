"""CLI: python -m tests.e2e.stack up|env|status|down|fault KIND ...

``up`` and ``env`` print only KEY=VALUE lines on stdout; progress and errors go
to stderr. Exit 0 on success, 3 when the stack is not up (env, status, fault),
1 when a service could not start (the message names it and shows its log).
"""

from __future__ import annotations

import argparse
import sys

from tests.e2e.stack import faults, netbox, procs, stack
from tests.e2e.stack.errors import StackError
from tests.e2e.stack.layout import Layout, layout

NOT_UP = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.stack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "env", "status", "down"):
        sub.add_parser(name)
    fault = sub.add_parser("fault").add_subparsers(dest="kind", required=True)
    fault.add_parser("proxmox-404", help="the mock Proxmox answers 404 for PATH").add_argument("path")
    five = fault.add_parser("netbox-5xx", help="NetBox (behind the proxy) answers STATUS")
    five.add_argument("--status", type=int, default=500)
    five.add_argument("--method", default="*")
    five.add_argument("--path", default="", help="regex on the request path (default: every path)")
    five.add_argument("--times", type=int, default=None, help="only this many times (default: always)")
    fault.add_parser("netbox-latency", help="delay every NetBox request").add_argument("ms", type=int)
    fault.add_parser("netbox-stop", help="stop NetBox's gunicorn (clear starts it)")
    fault.add_parser("worker-stop", help="stop NetBox's RQ worker (clear starts it)")
    fault.add_parser("clear", help="drop every fault")
    return parser


def _status(lay: Layout) -> int:
    state = stack.load_state(lay) or {}
    for name in stack.SERVICES:
        pid = procs.alive(lay, name)
        note = " (stopped by a fault)" if name in state.get("stopped", []) else ""
        print(f"{name}: {'pid ' + str(pid) if pid else 'not running'}{note}")
    return 0 if stack.is_up(lay) else NOT_UP


def _fault(lay: Layout, args: argparse.Namespace) -> None:
    actions = {
        "proxmox-404": lambda: faults.proxmox_404(lay, args.path),
        "netbox-5xx": lambda: faults.netbox_status(lay, args.status, args.method, args.path, args.times),
        "netbox-latency": lambda: faults.netbox_latency(lay, args.ms),
        "netbox-stop": lambda: faults.stop_service(lay, netbox.WEB),
        "worker-stop": lambda: faults.stop_service(lay, netbox.WORKER),
        "clear": lambda: faults.clear(lay),
    }
    actions[args.kind]()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lay = layout()
    try:
        if args.command == "up":
            print("\n".join(stack.up(lay)))
        elif args.command == "env":
            if not stack.is_up(lay):
                print("e2e stack: not up", file=sys.stderr)
                return NOT_UP
            print("\n".join(stack.env_lines(lay, stack.load_state(lay) or {})))
        elif args.command == "status":
            return _status(lay)
        elif args.command == "down":
            print(f"stopped: {', '.join(stack.down(lay)) or 'nothing'}", file=sys.stderr)
        else:
            if not stack.is_up(lay):
                print("e2e stack: not up", file=sys.stderr)
                return NOT_UP
            _fault(lay, args)
    except StackError as exc:
        print(f"e2e stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
