"""A throw-away PostgreSQL server for the scale-out tests: Debian's ``postgresql`` binaries, a temporary data
directory, 127.0.0.1 on a free port, trust authentication. :func:`start` returns ``(url, stop)`` or raises
:class:`Unavailable` saying why (the tests skip with that reason)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


class Unavailable(RuntimeError):
    pass


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4] or 0))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise Unavailable(f"PostgreSQL's {name} not found (Debian: apt-get install -y postgresql)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(password: str = "s3cret-pw") -> tuple[str, callable]:
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's postgresql:// driver)
    except ImportError as exc:
        raise Unavailable(f"psycopg 3 is not installed ({exc}); pip install 'optimlab[bench]'") from None
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    root = tempfile.mkdtemp(prefix="optimlab-pg-")
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server") from None
        user = "postgres"
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = os.path.join(root, "data"), _free_port()

    def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, user=user, capture_output=True, text=True, timeout=timeout, cwd=root)

    r = run([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
    if r.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"initdb failed: {r.stderr.strip()[-500:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
    r = run([pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "-t", "60", "start"])
    if r.returncode:
        log = open(os.path.join(root, "log")).read()[-800:] if os.path.exists(os.path.join(root, "log")) else ""
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"the PostgreSQL server did not start: {r.stderr.strip()[-300:]} {log}")

    def stop() -> None:
        run([pg_ctl, "-D", data, "-m", "immediate", "stop"], timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", stop
