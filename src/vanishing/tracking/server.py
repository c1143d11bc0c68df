"""A shared MLflow tracking server that lets in only those with credentials: ``make mlflow-server``.

It is ``mlflow server --app-name basic-auth`` (MLflow's own authentication) with:

- the admin's user name and password from ``MLFLOW_AUTH_ADMIN_USERNAME`` and
  ``MLFLOW_AUTH_ADMIN_PASSWORD``, MLflow's own variables, which the user must set: nothing here
  or in the repository holds a password, and the server refuses to start, naming the variable,
  when one is unset or the password is shorter than MLflow's minimum (12 characters);
- an auth config (``MLFLOW_AUTH_CONFIG_PATH``) written beside the server's store, not taken from
  MLflow's package: its users database lies in that folder, and users without a grant may do
  nothing (``default_permission = NO_PERMISSIONS``);
- a check that an existing users database holds the admin with that password: MLflow keeps the
  first password it was given and ignores a changed variable, which would leave jobs refused;
- the key that signs the UI's CSRF tokens (``MLFLOW_FLASK_SERVER_SECRET_KEY``, which the auth app
  requires) drawn afresh at each start unless set: nothing secret is written to disk.

Jobs authenticate with ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD`` (MLflow's
client reads them); local and SLURM jobs inherit them from the shell that starts the study.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

from vanishing.tracking.processes import NO_SERVER_JOBS

ADMIN_VARS = ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")
MIN_PASSWORD = 12  # mlflow.utils.validation._validate_password
AUTH_INI = """\
# Written by `vanishing mlflow-server`; MLflow reads the admin's name and password from
# MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD, never from this file.
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = {database_uri}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


class ServerConfigError(RuntimeError):
    """The server cannot start as asked; the message says what to set."""


def admin_credentials(env: dict) -> tuple[str, str]:
    missing = [v for v in ADMIN_VARS if not env.get(v)]
    if missing:
        raise ServerConfigError(
            f"set {' and '.join(missing)}: the server's admin user and a password of your "
            f"choosing (at least {MIN_PASSWORD} characters; there is no default). Jobs then "
            "authenticate with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    user, password = (env[v] for v in ADMIN_VARS)
    if len(password) < MIN_PASSWORD:
        raise ServerConfigError(
            f"MLFLOW_AUTH_ADMIN_PASSWORD is {len(password)} characters; MLflow requires at "
            f"least {MIN_PASSWORD}"
        )
    return user, password


def with_port(allowed_hosts: str, port: int) -> str:
    """``--allowed-hosts`` for names given without a port: MLflow compares the whole Host header,
    which carries the port (``login1`` matches no request; ``login1:5000`` does)."""
    names = [h.strip() for h in allowed_hosts.split(",") if h.strip()]
    bare = [h for h in names if not h.rsplit("]", 1)[-1].count(":") and "*" not in h]
    return ",".join(dict.fromkeys([*names, *(f"{h}:{port}" for h in bare)]))


def check_existing_admin(database_uri: str, user: str, password: str) -> None:
    """Refuse when the users database already holds ``user`` with another password."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)
    if store.has_user(user) and not store.authenticate_user(user, password):
        raise ServerConfigError(
            f"the users database {database_uri} already holds user {user!r} with another "
            "password (MLflow keeps the first one); use that password, change it through "
            "MLflow's users/update-password API, or delete the database to start afresh"
        )


def serve(store: Path, host: str, port: int, allowed_hosts: str, extra: list[str]) -> None:
    """Replace this process with the authenticated server (same PID, so signals reach it)."""
    user, password = admin_credentials(os.environ)
    store = store.resolve()
    store.mkdir(parents=True, exist_ok=True)
    database_uri = f"sqlite:///{store / 'mlflow-auth.db'}"
    ini = store / "mlflow-auth.ini"
    ini.write_text(AUTH_INI.format(database_uri=database_uri))
    check_existing_admin(database_uri, user, password)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    cmd = [mlflow, "server", "--app-name", "basic-auth",
           "--backend-store-uri", f"sqlite:///{store / 'mlflow-server.db'}",
           "--artifacts-destination", str(store / "mlartifacts"), "--host", host,
           "--port", str(port), "--allowed-hosts", with_port(allowed_hosts, port),
           *extra]  # fmt: skip
    env = {"MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32), **NO_SERVER_JOBS,
           **os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini)}  # fmt: skip
    os.execve(mlflow, cmd, env)
