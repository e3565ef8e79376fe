"""`taleloom ray up|status|down`: the model roles as Ray Serve deployments on a Ray cluster."""

from __future__ import annotations

import json
from pathlib import Path

import click

from taleloom.config import Settings, get_settings


def _pairs(text: str, what: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise click.BadParameter(f"{part!r} is not ROLE=VALUE", param_hint=what)
        out[key.strip()] = value.strip()
    return out


def _spec(settings: Settings, role: str) -> str:
    """The backend a replica runs: the configured one, unless that is itself `ray:` (then the default)."""
    spec = getattr(settings, role)
    return str(Settings.model_fields[role].default) if spec.split(":", 1)[0] == "ray" else spec


@click.group()
def ray() -> None:
    """Models on Ray Serve: each role a deployment with replicas; pictures batched across books.

    `taleloom ray up` starts a Ray head on 127.0.0.1 (or joins --address) and deploys the roles; then
    point the service at them: TALELOOM_ILLUSTRATOR=ray:127.0.0.1:6379 (likewise for other roles).
    Needs `pip install 'taleloom[ray]'`. Multi-machine clusters: docs/scale-out.md.
    """


@ray.command()
@click.argument("roles", nargs=-1)
@click.option("--replicas", default="", help="ROLE=N,... replicas per role (default 1)")
@click.option("--address", default=None, help="join this running cluster (HOST:PORT) instead of starting a head")
@click.option("--port", default=6379, show_default=True, type=int, help="port of the head started here")
@click.option("--num-cpus", type=int, default=None, help="CPUs the head offers Ray (default: enough for the replicas)")
@click.option("--cpus-per-replica", default=1.0, show_default=True, type=float)
@click.option("--gpus-per-replica", default=0.0, show_default=True, type=float)
@click.option("--max-batch", default=8, show_default=True, type=int, help="pictures per model call at most")
@click.option("--batch-wait-ms", default=50.0, show_default=True, type=float,
              help="how long a replica waits for more pictures before drawing")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="where the head's log and pid go")
@click.option("--json", "as_json", is_flag=True)
def up(roles: tuple[str, ...], replicas: str, address: str | None, port: int, num_cpus: int | None,
       cpus_per_replica: float, gpus_per_replica: float, max_batch: int, batch_wait_ms: float,
       data_dir: Path | None, as_json: bool) -> None:
    """Deploy ROLES (e.g. `illustrator` or `illustrator=diffusers-sdxl:/models/sdxl`; none: all five roles,
    with the backends configured in settings) on a local Ray head started now, or on --address."""
    import os

    from taleloom.backends.registry import ROLES
    from taleloom.scale import cluster

    cluster.require_ray()
    settings = get_settings(**({"data_dir": data_dir} if data_dir else {}))
    wanted = dict(r.partition("=")[::2] for r in roles) if roles else dict.fromkeys(ROLES, "")
    unknown = set(wanted) - set(ROLES)
    if unknown:
        raise click.BadParameter(f"unknown role(s) {sorted(unknown)}; choose from {', '.join(ROLES)}")
    counts = {role: int(n) for role, n in _pairs(replicas, "--replicas").items()}
    from taleloom.scale.deployments import RoleConfig, app_name, deploy

    configs = [RoleConfig(role, spec or _spec(settings, role), counts.get(role, 1),
                          dict(settings.backend_options.get(role, {})), max_batch, batch_wait_ms / 1000,
                          cpus_per_replica, gpus_per_replica, settings.plugins or os.environ.get("TALELOOM_PLUGINS", ""),
                          settings.device)
               for role, spec in wanted.items()]
    if address is None:
        need = int(sum(c.replicas * c.num_cpus for c in configs)) + 1
        address = cluster.start_head(settings.data_dir, port, num_cpus or max(need, os.cpu_count() or 1))
        click.echo(f"Ray head on {address} (log {settings.data_dir / 'ray-head.log'})", err=True)
    cluster.connect(address)
    for c in configs:
        click.echo(f"deploying {app_name(c.role)}: {c.spec} x{c.replicas}", err=True)
        deploy(c)
    result = {"address": address, "apps": {c.role: {"app": app_name(c.role), "spec": c.spec, "replicas": c.replicas}
                                           for c in configs}}
    if as_json:
        click.echo(json.dumps(result))
    else:
        for c in configs:
            click.echo(f"TALELOOM_{c.role.upper()}=ray:{address}")


@ray.command()
@click.option("--address", default=None, help="the cluster (default: the head started here, else RAY_ADDRESS)")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def status(address: str | None, data_dir: Path | None, as_json: bool) -> None:
    """The deployed roles, their replicas and state."""
    from ray import serve

    from taleloom.scale import cluster

    settings = get_settings(**({"data_dir": data_dir} if data_dir else {}))
    cluster.connect(address or cluster.recorded_address(settings.data_dir))
    apps = {name: {"status": str(app.status), "deployments": {
        d: {"status": str(s.status), "replicas": dict(s.replica_states)} for d, s in app.deployments.items()}}
        for name, app in serve.status().applications.items()}
    if as_json:
        click.echo(json.dumps(apps))
    else:
        for name, app in apps.items():
            click.echo(f"{name}: {app['status']} " + ", ".join(
                f"{d} {s['status']} {s['replicas']}" for d, s in app["deployments"].items()))


@ray.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def down(data_dir: Path | None) -> None:
    """Remove the deployments and stop the Ray head `ray up` started here (only that one)."""
    from taleloom.scale import cluster

    settings = get_settings(**({"data_dir": data_dir} if data_dir else {}))
    address = cluster.recorded_address(settings.data_dir)
    if address is None:
        raise click.ClickException(f"no Ray head started by `taleloom ray up` in {settings.data_dir}")
    try:
        from ray import serve

        cluster.connect(address)
        serve.shutdown()
    except Exception as e:  # the head may be gone already; stopping it is what matters
        click.echo(f"(serve.shutdown: {e})", err=True)
    cluster.stop_head(settings.data_dir)
    click.echo(f"stopped the Ray head at {address}", err=True)
