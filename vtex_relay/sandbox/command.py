"""The ``sandbox`` click command (attached to the ``vtex-relay`` CLI; also ``python -m``)."""

from __future__ import annotations

import click
from pydantic import ValidationError

from vtex_relay.accounts import Accounts, load_accounts_file
from vtex_relay.errors import ConfigurationError
from vtex_relay.sandbox import SandboxConfig, serve
from vtex_relay.sandbox.faults import Faults

_RATE = click.FloatRange(0.0, 1.0)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option(
    "--order-total",
    default=10_000,
    show_default=True,
    type=click.IntRange(0),
    help="Value in cents of orders created on first use.",
)
@click.option("--app-key", default=None, help="Accept only this X-VTEX-API-AppKey.")
@click.option(
    "--app-token",
    default=None,
    envvar="SANDBOX_APP_TOKEN",
    help="Accept only this X-VTEX-API-AppToken (or $SANDBOX_APP_TOKEN).",
)
@click.option(
    "--accounts-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="A TOML accounts file (as VTEX_ACCOUNTS_FILE): each account with an appKey accepts "
    "only its own key and token (appToken, appTokenEnv or appTokenFile); others, the pair above.",
)
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0), help="Added to each request.")
@click.option("--rate-429", default=0.0, type=_RATE, help="Probability of a 429.")
@click.option("--retry-after", default=1, type=click.IntRange(0), help="Retry-After of a 429 (s).")
@click.option("--rate-5xx", default=0.0, type=_RATE, help="Probability of a 503, not applied.")
@click.option(
    "--rate-timeout",
    default=0.0,
    type=_RATE,
    help="Probability of stalling --stall-seconds then 504, not applied.",
)
@click.option(
    "--rate-apply-drop",
    default=0.0,
    type=_RATE,
    help="Probability of applying then closing the connection unanswered.",
)
@click.option(
    "--rate-apply-stall",
    default=0.0,
    type=_RATE,
    help="Probability of applying then stalling --stall-seconds before answering.",
)
@click.option(
    "--stall-seconds",
    default=10.0,
    type=click.FloatRange(0),
    show_default=True,
    help="How long the time-out and apply-stall faults hold a request.",
)
@click.option("--seed", default=None, type=int, help="Seed of the fault RNG.")
@click.option(
    "--log-limit",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Request-log entries kept (oldest dropped first).",
)
@click.option(
    "--strict-schema",
    is_flag=True,
    help="Validate exactly against the spec (refuses VTEX's own guide examples).",
)
def sandbox(
    host: str,
    port: int,
    order_total: int,
    app_key: str | None,
    app_token: str | None,
    accounts_file: str | None,
    latency_ms: float,
    rate_429: float,
    retry_after: int,
    rate_5xx: float,
    rate_timeout: float,
    rate_apply_drop: float,
    rate_apply_stall: float,
    stall_seconds: float,
    seed: int | None,
    log_limit: int,
    strict_schema: bool,
) -> None:
    """Run a fake VTEX OMS (invoice, tracking number, tracking, get order) until interrupted."""
    try:
        faults = Faults(
            latency_ms=latency_ms,
            rate_429=rate_429,
            retry_after=retry_after,
            rate_5xx=rate_5xx,
            rate_timeout=rate_timeout,
            rate_apply_drop=rate_apply_drop,
            rate_apply_stall=rate_apply_stall,
            stall_seconds=stall_seconds,
        )
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    config = SandboxConfig(
        order_total=order_total,
        app_key=app_key,
        app_token=app_token,
        credentials=_credentials(accounts_file) if accounts_file else {},
        faults=faults,
        seed=seed,
        log_limit=log_limit,
        strict_schema=strict_schema,
    )
    serve(config, host, port)


def _credentials(path: str) -> dict[str, tuple[str, str]]:
    """account -> (app key, app token) of each account of *path* that has its own."""
    try:
        own = load_accounts_file(path)
        accounts = Accounts(own, None, None)
        pairs = {name: accounts.credentials(name) for name, it in own.items() if it.app_key}
    except (ValueError, ConfigurationError) as exc:  # their texts never quote a token
        raise click.BadParameter(str(exc), param_hint="--accounts-file") from None
    return {name: (key, token.get_secret_value()) for name, (key, token) in pairs.items()}
