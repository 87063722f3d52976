"""cli/supervisor.py with real child processes (sh, sleep) and an injected clock: a dead child is started
again after its backoff, the others keep running, and stopping goes newest first."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.sockets import Listen
from cli.supervisor import ProcessFailed, ProcessSpec, Standby, Supervisor, activation_command
from core.restarts import RestartPolicy
from tests.support.process import free_port

POLICY = RestartPolicy(initial_delay_seconds=0.5, max_delay_seconds=30, factor=2, stable_after_seconds=60)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def supervisor(tmp_path: Path, clock: Clock, lines: list[str]) -> Iterator[Supervisor]:
    (tmp_path / "run").mkdir()
    supervisor = Supervisor(tmp_path / "logs", tmp_path / "run", policy=POLICY, clock=clock, log=lines.append)
    yield supervisor
    supervisor.stop_all()


def sleeper(name: str) -> ProcessSpec:
    return ProcessSpec(name, ["sleep", "60"], stop_timeout=5)


def recorded_pid(supervisor: Supervisor, name: str) -> int:
    return int((supervisor.run_dir / f"{name}.pid").read_text())


def wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def kill(supervisor: Supervisor, name: str) -> int:
    pid = recorded_pid(supervisor, name)
    os.kill(pid, signal.SIGKILL)
    process = next(c.process for c in supervisor.children if c.spec.name == name)
    assert process is not None
    process.wait(5)
    return pid


def test_a_killed_child_is_started_again_after_the_backoff_and_the_others_keep_running(
    supervisor: Supervisor, clock: Clock, lines: list[str]
) -> None:
    for name in ("temporal", "api", "worker"):
        supervisor.start(sleeper(name))
    api, worker = recorded_pid(supervisor, "api"), recorded_pid(supervisor, "worker")
    clock.now += 10
    killed = kill(supervisor, "temporal")

    supervisor.check()
    assert lines == [
        f"temporal (pid {killed}) died: signal 9 (SIGKILL) after 10.0s up; "
        "restarting in 0.5s (crash 1 in a row)"
    ]
    assert supervisor.pid("temporal") is None
    clock.now += 0.4
    supervisor.check()
    assert supervisor.pid("temporal") is None, "restarted before its backoff was over"

    clock.now += 0.1
    supervisor.check()
    restarted = recorded_pid(supervisor, "temporal")
    assert restarted != killed and supervisor.pid("temporal") == restarted
    os.kill(restarted, 0)
    assert lines[1] == f"temporal restarted (pid {restarted})"
    supervisor.check()
    assert lines[2] == f"temporal (pid {restarted}) is ready again, 0.5s after it died"
    assert (recorded_pid(supervisor, "api"), recorded_pid(supervisor, "worker")) == (api, worker)
    assert supervisor.restarts == {"temporal": 1}
    assert "died: signal 9 (SIGKILL)" in (supervisor.log_dir / "temporal.log").read_text()


def test_a_crash_loop_backs_off_and_a_stable_run_resets_it(
    supervisor: Supervisor, clock: Clock, lines: list[str]
) -> None:
    supervisor.start(sleeper("registry"))
    delays = []
    for _ in range(4):
        kill(supervisor, "registry")
        supervisor.check()
        delays.append(lines[-1].split("restarting in ")[1].split("s ")[0])
        clock.now += float(delays[-1])
        supervisor.check()
        assert supervisor.pid("registry") is not None
    assert delays == ["0.5", "1", "2", "4"]

    clock.now += 60  # this run lasted: the next crash starts the backoff over
    kill(supervisor, "registry")
    supervisor.check()
    assert "restarting in 0.5s (crash 1 in a row)" in lines[-1]


def test_a_child_that_exits_while_starting_the_first_time_fails_the_start_with_its_log(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    script = "echo 'port 6379 already in use' >&2; exit 3"
    spec = ProcessSpec("redis", ["sh", "-c", script], ready_path=tmp_path / "never")
    with pytest.raises(ProcessFailed, match=r"redis exited with code 3 while starting(.|\n)*already in use"):
        supervisor.start(spec)


def test_children_started_earlier_are_restarted_while_a_later_one_starts(
    supervisor: Supervisor, tmp_path: Path, lines: list[str]
) -> None:
    supervisor.start(sleeper("temporal"))
    killed = kill(supervisor, "temporal")
    supervisor.clock = time.monotonic  # real time: the API below takes a second to be ready
    gate = tmp_path / "api.ready"
    supervisor.start(
        ProcessSpec("api", ["sh", "-c", f"sleep 1; touch {gate}; exec sleep 60"], ready_path=gate)
    )
    assert any(line.startswith(f"temporal (pid {killed}) died") for line in lines)
    assert supervisor.pid("temporal") not in (None, killed)


def test_stop_signals_only_its_own_children_newest_first(supervisor: Supervisor, tmp_path: Path) -> None:
    order = tmp_path / "order"
    for name in ("temporal", "registry", "api", "traefik"):
        trapped = tmp_path / f"{name}.trapped"
        script = f'trap "echo {name} >> {order}; exit 0" TERM; touch {trapped}; while :; do sleep 0.02; done'
        supervisor.start(ProcessSpec(name, ["sh", "-c", script], ready_path=trapped, stop_timeout=5))
    outsider = os.spawnvp(os.P_NOWAIT, "sleep", ["sleep", "60"])
    try:
        kill(supervisor, "registry")
        supervisor.check()  # registry is waiting out its backoff: nothing to stop
        pids = [recorded_pid(supervisor, name) for name in ("temporal", "api", "traefik")]
        supervisor.stop_all()

        assert order.read_text().split() == ["traefik", "api", "temporal"]
        for pid in pids:
            wait_dead(pid)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert os.waitpid(outsider, os.WNOHANG) == (0, 0), "a process it did not start was stopped"
    finally:
        os.kill(outsider, signal.SIGKILL)
        os.waitpid(outsider, 0)


# A server that takes its socket the way Traefik does (sd_listen_fds) and answers each connection with
# its PID.
ACTIVATED_SERVER = """
import os, socket
assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID must name the program itself"
assert os.environ["LISTEN_FDS"] == "2" and os.environ["LISTEN_FDNAMES"] == "web:websecure"
web = socket.socket(fileno=3)
assert web.getsockname()[1] == int(os.environ["WEB_PORT"])
while True:
    connection, _ = web.accept()
    connection.sendall(str(os.getpid()).encode())
    connection.close()
"""


def ask_pid(connection: socket.socket) -> int:
    with connection:
        connection.settimeout(10)
        return int(connection.recv(100))


def test_a_socket_it_holds_keeps_connections_waiting_while_the_child_restarts(
    supervisor: Supervisor, clock: Clock
) -> None:
    web, websecure = free_port(), free_port()
    spec = ProcessSpec(
        "traefik",
        [sys.executable, "-c", ACTIVATED_SERVER],
        env={"WEB_PORT": str(web)},
        sockets=(Listen("web", "127.0.0.1", web), Listen("websecure", "127.0.0.1", websecure)),
    )
    supervisor.start(spec)
    first = recorded_pid(supervisor, "traefik")
    assert ask_pid(socket.create_connection(("127.0.0.1", web), timeout=5)) == first

    kill(supervisor, "traefik")
    supervisor.check()
    waiting = socket.create_connection(("127.0.0.1", web), timeout=5)  # accepted by the kernel, not refused
    clock.now += 0.5
    supervisor.check()
    second = recorded_pid(supervisor, "traefik")
    assert second != first
    assert ask_pid(waiting) == second

    supervisor.stop_all()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web), timeout=5)


def test_without_sockets_the_command_is_left_as_it_is() -> None:
    spec = ProcessSpec("api", ["dockyard", "api"], env={"A": "1"})
    assert activation_command(spec) == (["dockyard", "api"], {"A": "1"})
    activated = ProcessSpec("traefik", ["traefik", "--configFile=t.yml"], sockets=(Listen("web", "::1", 80),))
    argv, env = activation_command(activated)
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3:] == ["traefik", "traefik", "--configFile=t.yml"]
    assert env == {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}


def test_a_child_may_have_its_own_restart_policy(
    supervisor: Supervisor, clock: Clock, lines: list[str]
) -> None:
    quick = RestartPolicy(initial_delay_seconds=0.1, max_delay_seconds=30)
    supervisor.start(ProcessSpec("traefik", ["sleep", "60"], restart_policy=quick))
    supervisor.start(sleeper("api"))
    kill(supervisor, "traefik")
    kill(supervisor, "api")
    supervisor.check()
    assert "traefik" in lines[0] and "restarting in 0.1s" in lines[0]
    assert "api" in lines[1] and "restarting in 0.5s" in lines[1]
    clock.now += 0.1
    supervisor.check()
    assert supervisor.pid("traefik") is not None and supervisor.pid("api") is None


# An instance of a pair: answers its PID on "web" and "ready" on its own "private" socket.
PAIR_SERVER = """
import os, socket, threading
assert os.environ["LISTEN_FDNAMES"] == "web:private"
web, private = socket.socket(fileno=3), socket.socket(fileno=4)
def serve(sock, answer):
    while True:
        connection, _ = sock.accept()
        connection.sendall(answer)
        connection.close()
threading.Thread(target=serve, args=(private, b"ready"), daemon=True).start()
serve(web, str(os.getpid()).encode())
"""


def answers_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.settimeout(1)
            return connection.recv(10) == b"ready"
    except OSError:
        return False


def served_by(port: int, times: int = 20) -> set[int]:
    return {ask_pid(socket.create_connection(("127.0.0.1", port), timeout=5)) for _ in range(times)}


def test_a_pair_sends_new_connections_to_its_active_instance_and_to_the_standby_once_it_dies(
    supervisor: Supervisor, clock: Clock, lines: list[str]
) -> None:
    web = free_port()
    supervisor.start(
        ProcessSpec(
            "edge",
            [sys.executable, "-c", PAIR_SERVER],
            sockets=(Listen("web", "127.0.0.1", web),),
            standby=Standby("private", answers_ready),
        )
    )
    a, b = recorded_pid(supervisor, "edge.a"), recorded_pid(supervisor, "edge.b")
    assert recorded_pid(supervisor, "edge") == supervisor.pid("edge") == a
    assert served_by(web) == {a}  # never the standby: without steering, the kernel would spread them

    kill(supervisor, "edge.a")
    waiting = socket.create_connection(("127.0.0.1", web), timeout=5)  # queued on a's socket, still held
    supervisor.check()
    assert recorded_pid(supervisor, "edge") == b
    if Path("/proc/sys/net/ipv4/tcp_migrate_req").read_text().strip() == "1":
        assert ask_pid(waiting) == b  # moved to the standby's socket when a's closed
    else:
        with pytest.raises((OSError, ValueError)):
            ask_pid(waiting)  # reset: what is lost without tcp_migrate_req
    assert served_by(web) == {b}

    clock.now += 0.5
    supervisor.check()  # a is started again, as the standby
    again = recorded_pid(supervisor, "edge.a")
    assert again != a
    deadline = time.monotonic() + 10
    while f"edge.a (pid {again}) is ready again" not in "\n".join(lines) and time.monotonic() < deadline:
        supervisor.check()
        time.sleep(0.05)
    assert served_by(web) == {b}  # the active stays the active

    kill(supervisor, "edge.b")
    supervisor.check()
    assert recorded_pid(supervisor, "edge") == again
    assert served_by(web) == {again}
    assert "edge: new connections go to edge.a" in lines[-1]
