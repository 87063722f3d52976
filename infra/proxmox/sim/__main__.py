"""python -m infra.proxmox.sim --host 127.0.0.5 --port 8006 --state-dir /tmp/pve-sim [options]

Serves the PVE API on https://HOST:PORT/api2/json, with its CA in STATE_DIR/ca.pem and the credentials
in STATE_DIR/credentials.json; writes STATE_DIR/ready.json and prints one `ready` line once it serves.
SIGTERM or SIGINT stops it, and every guest's agent with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from infra.proxmox.sim.app import Simulator
from infra.proxmox.sim.cluster import Cluster
from infra.proxmox.sim.faults import Faults
from infra.proxmox.sim.guests import GuestAgents, load_launcher
from infra.proxmox.sim.schema import FULL_SCHEMA_NAME, Schema
from infra.proxmox.sim.server import serve
from infra.proxmox.sim.tls import server_context

# The whole API tree, only to tell "PVE has no such method" from "the simulator does not have it".
FULL_SCHEMA_CANDIDATES = [
    Path(__file__).resolve().parents[3].parent / "shared" / "proxmox" / FULL_SCHEMA_NAME
]


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.proxmox.sim", description="Proxmox VE API simulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address to serve on")
    parser.add_argument("--port", type=int, default=8006)
    parser.add_argument("--state-dir", type=Path, required=True, help="CA, credentials, guests' disks, logs")
    parser.add_argument("--cluster", type=Path, help="JSON overriding parts of the default cluster")
    parser.add_argument(
        "--guest-launcher", help="module:callable starting a guest's agent (default: on the host)"
    )
    parser.add_argument(
        "--docker-host", default="unix:///var/run/docker.sock", help="the default launcher's engine"
    )
    parser.add_argument("--task-speed", type=float, default=1.0, help="2 runs every task twice as fast")
    parser.add_argument(
        "--hidden-task-seconds", type=float, default=0.1, help="a new UPID's 'no such task' window"
    )
    parser.add_argument("--full-schema", type=Path, help=f"{FULL_SCHEMA_NAME}, for 501 verdicts (optional)")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.host.startswith("127.") and args.host not in ("::1", "localhost"):
        sys.exit(f"--host {args.host}: the simulator serves on loopback addresses only")
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    full_schema = args.full_schema or next((path for path in FULL_SCHEMA_CANDIDATES if path.is_file()), None)
    cluster = Cluster.from_file(args.cluster, Faults())
    agents = GuestAgents(load_launcher(args.guest_launcher), state_dir / "guests", args.docker_host)
    simulator = Simulator(
        cluster, Schema.load(full_schema), agents, args.task_speed, args.hidden_task_seconds
    )
    context = server_context(state_dir, args.host, list(cluster.nodes))
    server = serve(simulator, args.host, args.port, context)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    url = f"https://{host}:{port}/api2/json"
    user = next(iter(cluster.users))
    token_id = next(iter(cluster.tokens))
    credentials = {
        "url": url,
        "host": host,
        "port": port,
        "ca_file": str(state_dir / "ca.pem"),
        "user": user,
        "password": cluster.users[user],
        "token_id": token_id,
        "token_secret": cluster.tokens[token_id]["secret"],
    }
    (state_dir / "credentials.json").write_text(json.dumps(credentials, indent=2) + "\n")
    (state_dir / "credentials.json").chmod(0o600)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    (state_dir / "ready.json").write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    print(
        f"PVE simulator ready: {url} (CA {state_dir / 'ca.pem'}, "
        f"credentials {state_dir / 'credentials.json'})"
    )
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        agents.stop_all()
        (state_dir / "ready.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
