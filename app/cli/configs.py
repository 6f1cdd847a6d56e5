"""``mlops-configs`` / ``python -m app.cli.configs``: the configs run_demo.sh and Compose run, from validated values.

    python -m app.cli.configs nginx --listen-port 5000 --upstream-port 15000 --run-dir run --temp-dir run/nginx/temp
    python -m app.cli.configs nginx --compose          # what docker/nginx/frontdoor.compose.conf holds
    python -m app.cli.configs prometheus --api-target 127.0.0.1:15000 --prometheus-target 127.0.0.1:9090

Every value a user can set (ports, addresses, paths, limits) is parsed and checked here and only then
written into the one template, docker/nginx/frontdoor.conf.template (``{{ name }}`` placeholders; nginx's
own ``$variables`` are left alone), or into docker/prometheus.yml's two target lines. Nothing is
interpolated by a shell: a value that is not a port, an address or a plain path stops the render
with a message naming it, and nothing is written.
"""

from __future__ import annotations

import argparse
import grp
import ipaddress
import json
import os
import pwd
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.settings import REPO_DIR, Settings, SettingsError

NGINX_TEMPLATE = REPO_DIR / "docker" / "nginx" / "frontdoor.conf.template"
COMPOSE_NGINX_CONFIG = REPO_DIR / "docker" / "nginx" / "frontdoor.compose.conf"
PROMETHEUS_TEMPLATE = REPO_DIR / "docker" / "prometheus.yml"
# docker/prometheus.yml's targets as Compose reaches them; the native config replaces exactly these.
PROMETHEUS_TARGETS = {"api": "'flask-api:5000'", "prometheus": "'localhost:9090'"}

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")  # used with fullmatch
# Characters nginx would read as syntax or as a variable even inside double quotes, and controls.
_UNSAFE_IN_PATH = re.compile(r'["\\$;{}#\x00-\x1f\x7f]')

Port = Annotated[int, Field(gt=0, lt=65536)]
Seconds = Annotated[int, Field(ge=1, le=3600)]


class ConfigError(ValueError):
    """A value cannot go into a config; the message names it."""


def check_host(value: str) -> str:
    """An IP address or a DNS name, as given; anything else raises ValueError."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an IP address or a host name") from None
    return value


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_string(value: str) -> str:
    """A path (or ``stderr``) as a double-quoted nginx string; refuses what quoting cannot make inert."""
    if not value or _UNSAFE_IN_PATH.search(value):
        raise ValueError(f"{value!r} contains a character nginx would read as syntax or a variable")
    return f'"{value}"'


def render(template: str, values: Mapping[str, str], *, name: str = "template") -> str:
    """Fill every ``{{ name }}`` of ``template``; a missing or an unused value is an error."""
    wanted = set(_PLACEHOLDER.findall(template))
    if missing := wanted - set(values):
        raise ConfigError(f"{name}: no value for {', '.join(sorted(missing))}")
    if unused := set(values) - wanted:
        raise ConfigError(f"{name}: no placeholder for {', '.join(sorted(unused))}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


class FrontDoor(BaseModel):
    """What the nginx front door is rendered from; every field is validated before it reaches the template."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    listen_host: str = "127.0.0.1"
    """Address nginx listens on (BIND_HOST)."""
    listen_port: Port = 5000
    """The public API port (API_PORT)."""
    upstream_host: str = "127.0.0.1"
    """Where gunicorn listens: loopback natively, the flask-api service in Compose."""
    upstream_port: Port = 15000
    """gunicorn's port (API_UPSTREAM_PORT natively)."""
    replicas: tuple[str, ...] = ()
    """``host:port`` of every API replica to balance over (several hosts); replaces upstream_host/upstream_port."""
    max_fails: Annotated[int, Field(ge=1, le=100)] = 2
    """Failed attempts (connection refused or timed out) within fail_timeout that take a replica out of rotation."""
    fail_timeout: Seconds = 5
    """Seconds a failing replica stays out of rotation before nginx tries it again (passive health checks)."""
    resolve_upstream: bool = False
    """Re-resolve upstream_host while running (Compose: a recreated flask-api container gets a new address)."""
    resolver: str | None = None
    """DNS server for resolve_upstream (Docker's embedded one is 127.0.0.11)."""
    pid_file: str
    """nginx's pid file."""
    error_log: str
    """nginx's error log: a path, or ``stderr``."""
    access_log: str
    """nginx's access log: a path (``/dev/stdout`` in a container)."""
    temp_dir: str
    """Where nginx buffers request bodies and responses; writable by its worker user."""
    user: str | None = None
    """``user group`` the workers run as when the master starts as root; None: as the master's user."""
    max_body_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    """Largest request body (MAX_BODY_BYTES, the app's own limit); larger ones get a JSON 413."""
    client_timeout: Seconds = 5
    """Seconds for a client's whole header, and the longest gap while its body or the response flows."""
    keepalive_timeout: Seconds = 15
    """Seconds an idle client connection stays open."""
    write_rate: Annotated[int, Field(ge=1, le=100_000)] = 10
    """Write requests (any method but GET/HEAD/OPTIONS, except POST /predict) per second per client address."""
    write_burst: Annotated[int, Field(ge=0, le=100_000)] = 20
    """Write requests a client may send at once above the rate before it gets 429."""
    connections_per_client: Annotated[int, Field(ge=1, le=100_000)] = 256
    """Open connections per client address; more get 429."""
    worker_processes: Annotated[int, Field(ge=1, le=64)] = 1
    """nginx worker processes (one event loop proxies far more than gunicorn serves on this box)."""
    worker_connections: Annotated[int, Field(ge=64, le=65536)] = 4096
    """Connections per nginx worker, client and upstream ones together."""
    upstream_keepalive: Annotated[int, Field(ge=1, le=1024)] = 32
    """Idle connections to gunicorn kept for reuse per nginx worker."""

    @field_validator("listen_host", "upstream_host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        targets = tuple(parse_target(target, "replica") for target in value)
        if len(set(targets)) != len(targets):
            raise ValueError("a replica is listed twice")
        return targets

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @field_validator("pid_file", "error_log", "access_log", "temp_dir")
    @classmethod
    def _path(cls, value: str) -> str:
        nginx_string(value)
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31} [a-z_][a-z0-9_-]{0,31}", value):
            raise ValueError(f"{value!r} is not 'user group'")
        return value

    def _upstream_servers(self) -> str:
        """The upstream block's ``server`` lines: every replica with passive health checks, or the one API."""
        if not self.replicas:
            resolve = " resolve" if self.resolve_upstream else ""
            return f"server {host_port(self.upstream_host, self.upstream_port)}{resolve};"
        health = f"max_fails={self.max_fails} fail_timeout={self.fail_timeout}s"
        return "\n        ".join(f"server {target} {health};" for target in self.replicas)

    def render(self, template: str | None = None) -> str:
        """The nginx config."""
        text = NGINX_TEMPLATE.read_text(encoding="utf-8") if template is None else template
        if self.resolve_upstream and self.resolver is None:
            raise ConfigError("resolve_upstream needs a resolver")
        values = {
            "user": f"user {self.user};" if self.user else "# workers run as the master's user",
            "worker_processes": str(self.worker_processes),
            "worker_connections": str(self.worker_connections),
            "pid_file": nginx_string(self.pid_file),
            "error_log": nginx_string(self.error_log),
            "access_log": nginx_string(self.access_log) + " frontdoor buffer=64k flush=1s if=$api_log_it",
            "client_timeout": str(self.client_timeout),
            "keepalive_timeout": str(self.keepalive_timeout),
            "max_body_bytes": str(self.max_body_bytes),
            "write_rate": str(self.write_rate),
            "write_burst": str(self.write_burst),
            "connections_per_client": str(self.connections_per_client),
            "upstream_servers": self._upstream_servers(),
            "upstream_zone": "zone api 64k;" if self.resolve_upstream else "# a fixed address: no shared zone needed",
            "resolver": f"resolver {self.resolver} valid=5s ipv6=off;" if self.resolve_upstream else "",
            "upstream_keepalive": str(self.upstream_keepalive),
            "listen": host_port(self.listen_host, self.listen_port),
        }
        temp = self.temp_dir.rstrip("/")
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            values[f"{kind}_temp"] = nginx_string(f"{temp}/{kind}")
        return render(text, values, name=NGINX_TEMPLATE.name)


def worker_user() -> str | None:
    """``nobody <its group>`` when running as root (nginx workers must not be root), else None."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"


def native_frontdoor(
    *,
    run_dir: Path,
    temp_dir: Path,
    listen_host: str,
    listen_port: int,
    upstream_port: int | None,
    settings: Settings,
    limits: Mapping[str, str | int] | None = None,
    replicas: tuple[str, ...] = (),
) -> FrontDoor:
    """The front door of the native stack: nginx's files under run_dir, in front of gunicorn on loopback at
    ``upstream_port`` or of the API ``replicas`` (several hosts); ``limits`` are FrontDoor fields (timeouts,
    rates) as given, validated by the model."""
    run_dir = run_dir.resolve()
    return FrontDoor.model_validate(
        {
            "listen_host": listen_host,
            "listen_port": listen_port,
            "upstream_host": "127.0.0.1",
            **({"upstream_port": upstream_port} if upstream_port is not None else {}),
            "pid_file": str(run_dir / "nginx" / "nginx.pid"),
            "error_log": "stderr",  # run_demo.sh sends nginx's stderr to RUN_DIR/frontdoor.log
            "access_log": str(run_dir / "frontdoor-access.log"),
            "temp_dir": str(temp_dir.resolve()),
            "user": worker_user(),
            "max_body_bytes": settings.max_body_bytes,
            "replicas": replicas,
            **(limits or {}),
        }
    )


def compose_frontdoor() -> FrontDoor:
    """The front door container of docker-compose.yml: the API is the flask-api service on the compose network."""
    return FrontDoor(
        listen_host="0.0.0.0",
        listen_port=5000,
        upstream_host="flask-api",
        upstream_port=5000,
        resolve_upstream=True,
        resolver="127.0.0.11",
        pid_file="/tmp/nginx.pid",
        error_log="stderr",
        access_log="/dev/stdout",
        temp_dir="/tmp",
        user=None,  # the container runs nginx as an unprivileged user already
        max_body_bytes=Settings.from_env({}).max_body_bytes,
    )


def render_prometheus(
    api_target: str | None,
    prometheus_target: str,
    template: str | None = None,
    *,
    api_targets_file: str | None = None,
) -> str:
    """docker/prometheus.yml with its two targets replaced; each must be on exactly one line outside comments.

    With ``api_targets_file`` (several hosts) the API job discovers its replicas from that file instead
    (file-based service discovery: ``render_targets`` / the ``targets`` command writes it, and Prometheus
    rereads it when it changes).
    """
    text = PROMETHEUS_TEMPLATE.read_text(encoding="utf-8") if template is None else template
    lines = text.splitlines(keepends=True)
    found = {}
    for name in ("api", "prometheus"):
        old = PROMETHEUS_TARGETS[name]
        at = [i for i, line in enumerate(lines) if old in line and not line.lstrip().startswith("#")]
        if len(at) != 1:
            raise ConfigError(f"{PROMETHEUS_TEMPLATE.name}: expected the target {old} on exactly one line")
        found[name] = at[0]
    lines[found["prometheus"]] = lines[found["prometheus"]].replace(
        PROMETHEUS_TARGETS["prometheus"], f"'{prometheus_target}'"
    )
    api = found["api"]
    if api_targets_file is None:
        if api_target is None:
            raise ConfigError("the API target or an API targets file is needed")
        lines[api] = lines[api].replace(PROMETHEUS_TARGETS["api"], f"'{api_target}'")
        return "".join(lines)
    if lines[api - 1].strip() != "static_configs:":
        raise ConfigError(f"{PROMETHEUS_TEMPLATE.name}: the API target must be the only one of its static_configs")
    indent = lines[api - 1][: len(lines[api - 1]) - len(lines[api - 1].lstrip())]
    lines[api - 1 : api + 1] = [
        f"{indent}file_sd_configs:\n",
        f"{indent}  - files: [{json.dumps(api_targets_file)}]\n",
        f"{indent}    refresh_interval: 30s\n",
    ]
    return "".join(lines)


def render_targets(targets: list[str]) -> str:
    """A file_sd targets file: every API replica in one group (job="flask-api" comes from the job)."""
    return json.dumps([{"targets": targets, "labels": {}}], indent=2) + "\n"


def parse_target(value: str, name: str) -> str:
    """``host:port`` with a valid host and port, normalised; ConfigError naming ``name`` otherwise."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        if not sep:
            raise ValueError("expected host:port")
        return host_port(check_host(host), parse_port(port, name))
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"{name}={value!r}: {exc}") from None


def _targets_path(value: str) -> str:
    """An absolute path for the targets file (Prometheus resolves a relative one against its config's folder)."""
    if not value or _UNSAFE_IN_PATH.search(value):
        raise ConfigError(f"API targets file {value!r}: not a plain path")
    return str(Path(value).resolve())


def parse_port(value: str, name: str) -> int:
    """A TCP port given as decimal digits only."""
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 0 < int(value) < 65536:
        raise ConfigError(f"{name}={value!r}: must be a port number, 1-65535")
    return int(value)


# Options of `nginx` that set a FrontDoor limit directly (validated by the model).
_LIMITS = {
    "--client-timeout": "client_timeout",
    "--keepalive-timeout": "keepalive_timeout",
    "--write-rate": "write_rate",
    "--write-burst": "write_burst",
    "--connections-per-client": "connections_per_client",
    "--worker-processes": "worker_processes",
}


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)


def _errors(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "value"
    return f"{field.upper()}={first.get('input')!r}: {first['msg']}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 when a value is refused)."""
    parser = argparse.ArgumentParser(
        description="Render the nginx front door or load balancer, the native Prometheus config, its targets file."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    nginx = commands.add_parser("nginx", help="the nginx front door config")
    nginx.add_argument("--compose", action="store_true", help="the Compose container's config (no other option)")
    nginx.add_argument("--listen-host", default="127.0.0.1", help="address to listen on (BIND_HOST)")
    nginx.add_argument("--listen-port", default="5000", help="public API port (API_PORT)")
    nginx.add_argument("--upstream-port", default=None, help="gunicorn's loopback port (API_UPSTREAM_PORT)")
    nginx.add_argument(
        "--replica",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="an API replica to balance over (repeat for each host; instead of --upstream-port)",
    )
    nginx.add_argument("--run-dir", type=Path, default=Path("run"), help="pid and access log go under it")
    nginx.add_argument("--temp-dir", type=Path, default=None, help="body buffers (default RUN_DIR/nginx/temp)")
    for option, field in _LIMITS.items():
        nginx.add_argument(option, dest=field, default=None, help=FrontDoor.model_fields[field].description)
    nginx.add_argument("--output", "-o", help="file to write (default: stdout)")
    prometheus = commands.add_parser("prometheus", help="docker/prometheus.yml with the native targets")
    api = prometheus.add_mutually_exclusive_group(required=True)
    api.add_argument("--api-target", help="host:port Prometheus scrapes the API at")
    api.add_argument("--api-targets-file", help="file_sd file listing every replica (several hosts; see `targets`)")
    prometheus.add_argument("--prometheus-target", required=True, help="host:port of Prometheus itself")
    prometheus.add_argument("--output", "-o", help="file to write (default: stdout)")
    targets = commands.add_parser("targets", help="the file_sd file of the API replicas Prometheus scrapes")
    targets.add_argument("replicas", nargs="+", metavar="HOST:PORT", help="every API replica")
    targets.add_argument("--output", "-o", help="file to write, atomically (default: stdout)")
    args = parser.parse_args(argv)
    try:
        if args.command == "prometheus":
            text = render_prometheus(
                None if args.api_target is None else parse_target(args.api_target, "API target"),
                parse_target(args.prometheus_target, "Prometheus target"),
                api_targets_file=None if args.api_targets_file is None else _targets_path(args.api_targets_file),
            )
        elif args.command == "targets":
            text = render_targets([parse_target(target, "replica") for target in args.replicas])
        elif args.compose:
            text = compose_frontdoor().render()
        else:
            listen_port = parse_port(args.listen_port, "API_PORT")
            if args.replica and args.upstream_port is not None:
                raise ConfigError("--replica and --upstream-port: give one or the other")
            if args.upstream_port is None and not args.replica:
                raise ConfigError("API_UPSTREAM_PORT: --upstream-port (or --replica for several hosts) is required")
            upstream_port = None
            if args.upstream_port is not None:
                upstream_port = parse_port(args.upstream_port, "API_UPSTREAM_PORT")
                if upstream_port == listen_port:
                    raise ConfigError(f"API_UPSTREAM_PORT={upstream_port} must differ from API_PORT")
            limits = {field: getattr(args, field) for field in _LIMITS.values() if getattr(args, field) is not None}
            text = native_frontdoor(
                run_dir=args.run_dir,
                temp_dir=args.temp_dir or args.run_dir / "nginx" / "temp",
                listen_host=args.listen_host,
                listen_port=listen_port,
                upstream_port=upstream_port,
                settings=Settings.from_env(),
                limits=limits,
                replicas=tuple(args.replica),
            ).render()
    except ValidationError as exc:
        print(f"error: {_errors(exc)}", file=sys.stderr)
        return 2
    except (ConfigError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _write(text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
