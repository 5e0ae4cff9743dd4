"""The `attt` command line. Thin: each command parses options and calls the pipeline."""

import functools
import gc
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

import click

import attt
from attt.reports.base import Lang, RenderContext
from attt.reports.bundle import RENDERERS, StagedBundle, check_report_dir, render_bundle, write_bundle
from attt.reports.manifest import load_signing_key
from attt.scanner import pipeline
from attt.scanner.catalog import check_lines
from attt.scanner.changes import REASONS, Comparison, Side, choose_baseline, compare_runs, unlike
from attt.scanner.errors import AtttError, ConfigError, RunBusyError, StoreError
from attt.scanner.evaluate import exit_code
from attt.scanner.exitcodes import ExitCode
from attt.scanner.lifecycle import Interrupts, ResumeConflict, as_list, remember, resumed_options
from attt.scanner.limits import FILES_PER_TARGET, concurrency_for, raise_open_files
from attt.scanner.logs import log_to_terminal
from attt.scanner.messages import language, problem_text, say
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.finding import Finding, FindingCodec
from attt.scanner.models.observation import Observation
from attt.scanner.models.report import Report, RunInfo, report_json_schema
from attt.scanner.models.target import SystemInfo, Target, Zone
from attt.scanner.pipeline import (
    PolicyMode,
    PreparedScan,
    ScanOptions,
    ScanOutcome,
    ScanRequest,
    build_report,
    close_run,
    judged_run,
    own_policies,
    planned_probes,
    prepare,
    prepare_resume,
    reevaluate,
    run_scan,
)
from attt.scanner.plugin import Credential
from attt.scanner.policy import with_settings
from attt.scanner.progress import progress_for
from attt.scanner.registry import Registry
from attt.scanner.runner import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT
from attt.scanner.stored import StoredRun
from attt.scanner.storehost import RunStore, StoreHost
from attt.scanner.text import clean, os_text, safe

if TYPE_CHECKING:
    from attt.scanner.config import Config
    from attt.scanner.distributed import Coordinator
    from attt.scanner.models.owners import PackIndex
    from attt.scanner.store import Store

_GC_THRESHOLDS = (500_000, 20, 100)
"""Allocations before a young collection (default 700), young collections before a middle one,
middle ones before a full one (defaults 10 and 10). A 1,000-host ports scan keeps about 250,000
new containers alive as it goes: at 50,000 each of its five young collections walked them all
(15 to 50 ms apiece), while garbage that only the collector frees (reference cycles, mostly a
failed probe's exception and its frames) is rare; it now waits for at most this many objects,
some tens of MB, before it is freed."""
DEFAULT_FORMATS = "html,json"
_EXHAUSTIVE_TLS = {"tls": {"exhaustive_suites": True}}
"""What --tls-exhaustive lays over every policy's settings (the tls check's, named, not imported)."""
FAIL_ON_CHOICES = [s.value for s in Severity] + ["none"]


_lang: list[Lang] = [language()]
"""The language the command speaks: `--lang`, ATTT_LANG or the locale (`messages.language`)."""
_chosen: list[str | None] = [None]
"""The `--lang` given before the command, if any."""


def _speak(lang: str | None) -> Lang:
    """Settle the language from a `--lang` (None: keep the one already settled); return the
    language of the reports, which without any choice is Vietnamese, the agencies' language."""
    if lang:
        _chosen[0] = lang
    _lang[0] = language(_chosen[0])
    return language(_chosen[0], fallback="vi")


def _say(key: str, **values: object) -> str:
    return say(_lang[0], key, **values)


def _fail(message: str, code: ExitCode = ExitCode.CONFIG_ERROR) -> NoReturn:
    click.echo(f"{_say('error')}: {safe(message, 1000)}", err=True)
    sys.exit(code)


def _error_lines(exc: AtttError) -> list[str]:
    """An error as the user reads it: a file's problems one per line in their language, each
    with file:line; any other error as its one line."""
    if not isinstance(exc, ConfigError) or not exc.problems:
        return [f"{_say('error')}: {safe(str(exc), 1000)}"]
    if len(exc.problems) == 1 and not exc.more:
        return [f"{_say('error')}: {safe(problem_text(exc.problems[0], _lang[0]), 1000)}"]
    files = sorted({p.file for p in exc.problems})
    count = len(exc.problems) + exc.more
    lines = [f"{_say('error')}: {_say('problems_in', file=safe(', '.join(files), 1000), count=count)}"]
    lines.extend(f"  {safe(problem_text(p, _lang[0]), 1000)}" for p in exc.problems)
    if exc.more:
        lines.append(f"  {_say('problems_more', count=exc.more)}")
    return lines


def _registry() -> Registry:
    registry = Registry.load()
    for failure in registry.failures:
        reason = safe(failure.reason)
        text = _say("plugin_not_loaded", name=failure.name, distribution=failure.distribution, reason=reason)
        click.echo(f"{_say('warning')}: {text}", err=True)
    return registry


def _open_store(db: str | None, registry: Registry | None = None, *, create: bool = True) -> "Store":
    """The run store; with a registry, stored observations come back typed by their checks.
    Reading commands pass `create=False` and never create one."""
    from attt.scanner.store import Store, locate  # SQLAlchemy: a scan leaves it to its store's process

    data_models = registry.data_models if registry else None
    return Store(locate(db), data_models, create=create, warn=_warn)


def _store_host(db: str | None) -> StoreHost | None:
    """A new scan's store, in a process of its own (`attt.scanner.storehost`), starting now; None
    where no process can be started (the scan then opens the store itself)."""
    try:
        return StoreHost(db, _warn)
    except OSError:
        return None


def _warn(line: str) -> None:
    click.echo(f"attt: warning: {safe(line, 1000)}", err=True)


def _formats(value: str) -> list[str]:
    names = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [n for n in names if n not in RENDERERS]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown format {unknown[0] if unknown else value!r}; choose from {', '.join(RENDERERS)}"
        )
    return names


class _Command(click.Group):
    """Turns attt's own errors into one line and exit code 2 (4 for a busy run), never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RunBusyError as exc:
            _fail(str(exc), ExitCode.BUSY)
        except ResumeConflict as exc:
            raise click.UsageError(str(exc)) from None
        except AtttError as exc:
            for line in _error_lines(exc):
                click.echo(line, err=True)
            sys.exit(ExitCode.CONFIG_ERROR)


LANG_HELP = (
    "Language of messages and reports: vi or en (default: $ATTT_LANG, else the locale;"
    " without either, messages are in English and reports in Vietnamese)."
)


def _print_version(ctx: click.Context, _param: click.Parameter, asked: bool) -> None:
    """`--version`: the package's version is looked up only when asked for (`attt.__version__`)."""
    if asked and not ctx.resilient_parsing:
        click.echo(f"attt, version {attt.__version__}")
        ctx.exit()


@click.group(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="attt.toml (default: $ATTT_CONFIG, then attt.toml in the user's config directory).",
)
@click.option("--lang", "lang", type=click.Choice(["vi", "en"]), help=LANG_HELP)
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, lang: str | None) -> None:
    """attt: compliance scanner for a province's registered information systems."""
    # A province's run is hundreds of thousands of small objects without cycles (observations,
    # findings, their models): at the default thresholds the cyclic collector walks them all
    # again and again, a third of the time a 1,000-host scan spends judging and writing. It still
    # runs, less often.
    gc.set_threshold(*_GC_THRESHOLDS)
    if ctx.invoked_subcommand != "worker":  # a celery worker writes its own log, as celery sets it
        log_to_terminal()
    _chosen[0] = None  # each command line chooses afresh (tests run many in one process)
    _speak(lang)
    from attt.scanner.config import Config, config_path, load_config

    path = config_path(config_file)
    config = Config() if path is None else load_config(path)
    ctx.obj = config
    defaults = config.scan_defaults()
    store_only = {"db": defaults["db"]} if "db" in defaults else {}
    ctx.default_map = {
        "scan": defaults,
        "report": {
            k: v
            for k, v in defaults.items()
            if k not in ("inventory", "credentials", "fail_on", "vantage", "processes")
        },
        "notify": store_only,
        "history": store_only,
        "diff": store_only,
        "prune": store_only,
        "worker": config.worker_defaults(),
    }


def _config() -> "Config":
    from attt.scanner.config import Config

    obj = click.get_current_context().find_root().obj
    return obj if isinstance(obj, Config) else Config()


common_report_options: list[Callable[[Callable[..., object]], Callable[..., object]]] = [
    click.option("--out", "out", type=click.Path(path_type=Path), help="Report directory."),
    click.option(
        "--format",
        "formats",
        default=DEFAULT_FORMATS,
        show_default=True,
        help="Comma-separated: html, json, junit, sarif, csv, pdf.",
    ),
    click.option("--lang", type=click.Choice(["vi", "en"]), help=LANG_HELP),
    click.option(
        "--db",
        help="Run store: a path, sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
        " (default $ATTT_DB or ~/.local/share/attt/attt.db).",
    ),
    click.option(
        "--sign-key",
        type=click.Path(path_type=Path),
        help="Ed25519 private key: sign the report manifest (check it with attt verify --public-key).",
    ),
    click.option(
        "--per-owner", is_flag=True, help="One self-contained pack per owner agency, and an index of them."
    ),
    click.option("--owner", help="Only the pack of this owner agency (its name as in the inventory)."),
    click.option(
        "--waivers",
        "waivers",
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="Waiver file, applied on top of each system's policy (repeatable).",
    ),
    click.option(
        "--policy-mode",
        type=click.Choice(["force", "overlay"]),
        default="force",
        show_default=True,
        help="force: -p policies alone judge every system; overlay: each -p policy is laid over"
        " the system's own level policy.",
    ),
]


def report_options(fn: Callable[..., object]) -> Callable[..., object]:
    for option in reversed(common_report_options):
        fn = option(fn)
    return fn


@main.command()
@click.option("-i", "--inventory", type=click.Path(path_type=Path), help="The inventory (YAML).")
@click.option("--resume", "resume", metavar="RUN", help="Finish an interrupted run instead of starting one.")
@click.option(
    "-p",
    "--policy",
    "policies",
    multiple=True,
    help="Policy file or bundled id (repeatable). Default: each system's level policy.",
)
@click.option("--system", "systems", multiple=True, help="Only this system id (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only systems with this tag (repeatable).")
@click.option("--check", "checks", multiple=True, help="Only this check (repeatable).")
@click.option("--fail-on", type=click.Choice(FAIL_ON_CHOICES), default="low", show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=DEFAULT_CONCURRENCY, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(1, 3600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds one check may wait on one host without an answer (a check still hearing"
    " from the host, or waiting for attt's own workers, is not cut off).",
)
@click.option(
    "--credentials", type=click.Path(path_type=Path), help="Credentials file (YAML, not world-readable)."
)
@click.option(
    "--trigger",
    type=click.Choice(["schedule", "manual"]),
    envvar="ATTT_TRIGGER",
    default="manual",
    show_default=True,
    help="What started the run, recorded with it ($ATTT_TRIGGER; the systemd unit sets schedule).",
)
@click.option(
    "--notify/--no-notify",
    default=None,
    help="Mail each owner its pack and call the webhook (default: when attt.toml has [notify]).",
)
@click.option("--notify-all", is_flag=True, help="Notify every open failure, not only what is new.")
@click.option(
    "--engine",
    type=click.Choice(["local", "celery"]),
    default="local",
    show_default=True,
    help="local: probe from this machine; celery: hand each probe to a worker of the host's zone"
    " (attt worker), see docs/distributed.md.",
)
@click.option(
    "--broker",
    envvar="ATTT_BROKER",
    metavar="URL",
    help="The celery engine's broker: redis://, rediss://, redis+socket:///PATH, amqp:// ($ATTT_BROKER;"
    " its password is better given in $ATTT_BROKER_PASSWORD).",
)
@click.option(
    "--vantage",
    metavar="ZONE",
    help="The inventory zone this machine sits in: every observation records it, and rules that"
    " ask for the Internet are judged on what a zone with `vantage: outside` saw.",
)
@click.option(
    "--tls-exhaustive",
    is_flag=True,
    help="Enumerate TLS cipher suites one handshake per suite, as sslyze does, instead of by"
    " elimination (the same answer in far fewer connections); recorded with the run.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    help="Worker processes for CPU-heavy probes (TLS, SSH); 1: all in this process. Default:"
    " one per core (at most 4), started when the scan holds enough such probes to repay them.",
)
@report_options
def scan(
    inventory: Path | None,
    resume: str | None,
    policies: tuple[str, ...],
    systems: tuple[str, ...],
    tags: tuple[str, ...],
    checks: tuple[str, ...],
    fail_on: str,
    concurrency: int,
    timeout: float,
    credentials: Path | None,
    trigger: str,
    notify: bool | None,
    notify_all: bool,
    engine: str,
    broker: str | None,
    vantage: str | None,
    tls_exhaustive: bool,
    processes: int | None,
    out: Path | None,
    formats: str,
    lang: str | None,
    db: str | None,
    sign_key: Path | None,
    per_owner: bool,
    owner: str | None,
    waivers: tuple[Path, ...],
    policy_mode: str,
) -> None:
    """Scan the systems of an inventory and write the compliance report."""
    ctx = click.get_current_context()
    _refuse_undecodable(ctx.params)
    args = _ScanArgs(
        policies,
        systems,
        tags,
        checks,
        timeout,
        concurrency,
        formats,
        lang,
        fail_on,
        out,
        credentials,
        tls_exhaustive,
        processes,
    )
    unset = (click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP, None)
    explicit = {**asdict(args), "waivers": waivers, "policy_mode": policy_mode, "vantage": vantage}
    given = {k: v for k, v in explicit.items() if ctx.get_parameter_source(k) not in unset}
    request = ScanRequest(
        inventory or Path(),
        policies,
        systems,
        tags,
        checks,
        waivers=waivers,
        policy_mode=cast(PolicyMode, policy_mode),
        trigger=_trigger(trigger),
        vantage=vantage,
    )
    output = _ReportChoice(sign_key, per_owner, owner, notify, notify_all, engine, broker)
    with Interrupts() as interrupts:
        opened: list[tuple[RunStore, str]] = []
        hosts: list[StoreHost] = []
        try:
            code = _scan(
                interrupts, opened, hosts, request if inventory else None, resume, args, given, db, output
            )
        except KeyboardInterrupt:
            code = _abandoned(opened)
        finally:
            for host in hosts:
                host.close()
    sys.exit(code)


@dataclass(frozen=True)
class _ScanArgs:
    """The options of `attt scan` that a resumed run takes from the run itself."""

    policies: tuple[str, ...]
    systems: tuple[str, ...]
    tags: tuple[str, ...]
    checks: tuple[str, ...]
    timeout: float
    concurrency: int
    formats: str
    lang: str | None
    fail_on: str
    out: Path | None
    credentials: Path | None
    tls_exhaustive: bool = False
    processes: int | None = None
    """How, not what: never remembered with the run."""


@dataclass(frozen=True)
class _ReportChoice:
    """How `attt scan` reports, beyond the formats: signing, owner packs, notifications."""

    sign_key: Path | None
    per_owner: bool
    owner: str | None
    notify: bool | None
    notify_all: bool
    engine: str = "local"
    """Where probes run: `local`, or `celery` (the zones' workers, through `broker`)."""
    broker: str | None = None


def _scan(
    interrupts: Interrupts,
    opened: list[tuple[RunStore, str]],
    hosts: list[StoreHost],
    request: ScanRequest | None,
    resume: str | None,
    args: _ScanArgs,
    given: dict[str, object],
    db: str | None,
    choice: _ReportChoice,
) -> int:
    """The whole scan; `opened` learns the store and run as soon as the run exists, `hosts` the
    store's process as soon as it starts (closed by the caller, after a Ctrl-C's last write)."""
    host = _store_host(db) if request is not None and resume is None else None
    if host is not None:
        hosts.append(host)
    registry = _registry()
    store: RunStore
    if choice.sign_key is not None:
        load_signing_key(choice.sign_key)  # a bad key is a configuration error before, not after, the scan
    if resume is not None and request is None:
        store = _open_store(db, registry, create=False)
        stored = store.load(resume)
        if "vantage" in given and given["vantage"] != stored.info.vantage:
            raise ResumeConflict(
                f"--vantage {given['vantage']} conflicts with run {resume}'s own"
                f" ({stored.info.vantage or 'none'}): a resumed run is probed from where it started"
            )
        args = _decoded(args, resumed_options(stored.info.id, stored.info.options, given))
        _check_out_dir(args.out, stored.info.id)
        prepared = prepare_resume(stored, store.probes_done(stored.info.id), registry)
        _check_owner(choice.owner, prepared.systems)
        options = _scan_options(args)
    elif request is not None and resume is None:
        prepared = prepare(request, registry, remember(asdict(args)))
        _check_out_dir(args.out, prepared.run.id)
        _check_owner(choice.owner, prepared.systems)
        options = _scan_options(args)
        # Opened only now: a refused scan leaves no trace in the store. Its process opens it, or
        # this one where none could start.
        store = host if host is not None and host.open(registry.data_models) else _open_store(db, registry)
    else:
        raise click.UsageError("give either -i INVENTORY or --resume RUN")
    if args.tls_exhaustive:
        prepared = replace(prepared, policies=with_settings(prepared.policies, _EXHAUSTIVE_TLS, registry))
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    total = planned_probes(prepared, registry, remote=choice.engine == "celery")
    with (
        _remote(choice, prepared, registry, interrupts, options) as remote,
        progress_for(total, interactive) as progress,
        interrupts.gently(),
    ):
        opened.append((store, prepared.run.id))
        if remote is not None:
            options = replace(options, concurrency=IN_FLIGHT)
        outcome = run_scan(prepared, options, store, registry, progress, interrupts.stop, remote, close=False)
    settings = _config().notify

    def notifying_of(outcome: ScanOutcome) -> bool:
        whole = not outcome.interrupted and outcome.store_error is None
        return whole and (choice.notify if choice.notify is not None else settings is not None)

    # Owners' packs (sent with notifications too) are cut from the closed run; a bundle is
    # rendered while the store closes it.
    packs = choice.per_owner or choice.owner is not None or notifying_of(outcome)
    if packs:
        outcome = close_run(store, outcome)
    notifying = notifying_of(outcome)
    formats, lang = _formats(args.formats), _speak(args.lang)
    output = ReportOutput(
        formats, lang, choice.sign_key, choice.per_owner or notifying, choice.owner, _severity(args.fail_on)
    )
    if packs:
        report = build_report(outcome.run)
        written = _write_reports(store, report, args.out, output, outcome.codec)
    else:
        outcome, report, written = _closed_while_rendering(store, outcome, args.out, output)
    if notifying and written is not None:
        _notify(store, report, written, choice.notify_all)
    run_id = report.run.id
    if outcome.store_error is not None:
        _error(
            f"{outcome.store_error}; probing stopped, the report holds everything observed and run {run_id}"
            f" is incomplete (once the store takes writes again: attt scan --resume {run_id})"
        )
    code = exit_code(report.findings, _severity(args.fail_on), report.run.status == "complete")
    _keep_until_exit(outcome, report)
    if remote is not None and remote.lost is not None:
        _error(
            f"{remote.lost}; run {run_id} is incomplete and keeps what was observed"
            f" (finish it with: attt scan --resume {run_id})"
        )
        return ExitCode.INTERRUPTED
    if outcome.interrupted:
        click.echo(f"attt: {_say('interrupted', run=run_id)}", err=True)
        return ExitCode.INTERRUPTED
    if written is None and code != ExitCode.VIOLATION:
        return ExitCode.REPORT_NOT_WRITTEN
    return code


_kept: list[object] | None = None
"""What the `attt` program holds until it exits (`run` sets it); None where commands run one after
another in one process (the tests), each freeing what it made."""


def _keep_until_exit(*objects: object) -> None:
    """Hold a scan's results until the process ends. The program leaves without freeing anything
    (`attt.console`); letting a province's scan go when `_scan` returns, tens of thousands of
    findings and observations freed one by one, took 0.04 s after the report was written."""
    if _kept is not None:
        _kept.extend(objects)


IN_FLIGHT = 256
"""Hosts the celery engine's coordinator keeps in its zones' queues at once: each worker's own
`--concurrency` bounds what is probed at once; a deep queue only keeps the workers busy."""


@contextmanager
def _remote(
    choice: _ReportChoice,
    prepared: PreparedScan,
    registry: Registry,
    interrupts: Interrupts,
    options: ScanOptions,
) -> "Iterator[Coordinator | None]":
    """The celery engine's coordinator for this run, or None for the local engine."""
    if choice.engine != "celery":
        yield None
        return
    _require_celery()
    from attt.scanner.distributed import Coordinator, resolve_broker

    if prepared.run.vantage is not None:
        raise ConfigError(
            f"--engine celery with --vantage {prepared.run.vantage}: the vantage is where a local scan"
            " runs; with the celery engine each observation carries the zone of the worker that made it"
        )
    broker = resolve_broker(choice.broker, _config().broker)
    homeless = next((t for t in prepared.targets if t.zone is None), None)
    if homeless is not None:
        raise ConfigError(
            f"--engine celery: host {homeless.address} is in no zone; give the inventory `zones:`"
            " (each zone's worker probes its hosts) or scan with --engine local"
        )
    run = prepared.run.id
    with Coordinator(
        broker, run, registry.data_models, interrupts.stop, options.timeout, prepared.redo
    ) as coordinator:
        yield coordinator


def _require_celery() -> None:
    """A one-line error when Celery, an extra the local engine does without, is not installed."""
    from importlib.util import find_spec

    if find_spec("celery") is None:
        raise ConfigError(
            "the celery engine needs Celery, which is not installed: pip install 'attt-scanner[celery]'"
        )


def _scan_options(args: _ScanArgs) -> ScanOptions:
    """How to probe; the formats and the credentials file are checked here, before any packet."""
    _formats(args.formats)
    return ScanOptions(
        args.timeout, _affordable(args.concurrency), _credential_lookup(args.credentials), args.processes
    )


def _decoded(args: _ScanArgs, saved: dict[str, str]) -> _ScanArgs:
    """`args` with a resumed run's own options, back from text to the types the command line gives."""
    text = {name: saved.get(name) for name in asdict(args)}
    return _ScanArgs(
        policies=args.policies
        if text["policies"] is None
        else tuple(r for r in text["policies"].split(",") if r),
        systems=args.systems if text["systems"] is None else tuple(as_list(text["systems"])),
        tags=args.tags if text["tags"] is None else tuple(as_list(text["tags"])),
        checks=args.checks if text["checks"] is None else tuple(as_list(text["checks"])),
        timeout=args.timeout if text["timeout"] is None else float(text["timeout"]),
        concurrency=args.concurrency if text["concurrency"] is None else int(text["concurrency"]),
        formats=text["formats"] or args.formats,
        lang=text["lang"] or args.lang,
        fail_on=text["fail_on"] or args.fail_on,
        out=args.out if text["out"] is None else Path(text["out"]) if text["out"] else None,
        credentials=args.credentials,
        tls_exhaustive=args.tls_exhaustive
        if text["tls_exhaustive"] is None
        else text["tls_exhaustive"] == str(True),
        processes=args.processes,
    )


def _check_out_dir(out: Path | None, run_id: str) -> None:
    """Refuse, before anything is scanned, a report directory that holds files of its own."""
    check_report_dir(_out_dir(out, run_id))


def _check_owner(owner: str | None, systems: Sequence[SystemInfo]) -> None:
    """`--owner NAME` names an owner of a system the run covers: else it is a usage error, found
    before anything is scanned or written (the pack could not be written)."""
    known = sorted({s.owner for s in systems})
    if owner is not None and owner not in known:
        raise ConfigError(f"--owner {owner!r} owns no system of the run (owners: {'; '.join(known)})")


def _out_dir(out: Path | None, run_id: str) -> Path:
    """`--out`, else a directory of the run's own under the configured report directory."""
    return out or (_config().report_dir or Path("attt-reports")) / run_id


def _abandoned(opened: list[tuple[RunStore, str]]) -> int:
    """A signal outside the open run, or a second one: leave at once, the run marked incomplete."""
    if not opened:
        _error("interrupted before anything was scanned")
        return ExitCode.INTERRUPTED
    store, run_id = opened[0]
    with suppress(AtttError):  # else it stays "running" with a dead lease, shown incomplete
        store.mark(run_id, "incomplete", pipeline.utcnow())
    _error(
        f"interrupted; run {run_id} is incomplete and keeps what was observed"
        f" (finish it with: attt scan --resume {run_id})"
    )
    return ExitCode.INTERRUPTED


def _error(message: str) -> None:
    click.echo(f"{_say('error')}: {safe(message, 1000)}", err=True)


def _affordable(concurrency: int) -> int:
    """`--concurrency`, lowered (and said so) when the open-file limit cannot carry it."""
    files = raise_open_files()
    allowed = concurrency_for(concurrency, files)
    if allowed < concurrency:
        lowered = _say(
            "concurrency_lowered", asked=concurrency, allowed=allowed, files=files, per_host=FILES_PER_TARGET
        )
        click.echo(f"attt: {lowered}", err=True)
    return allowed


def _credential_lookup(path: Path | None) -> Callable[[Target], Credential | None]:
    if path is None:
        return lambda _target: None
    from attt.scanner.credentials import load_credentials  # only needed when credentials are given

    return load_credentials(path).for_target


def _severity(value: str) -> Severity | None:
    return None if value == "none" else Severity(value)


def _print_summary(report: Report, out_dir: Path) -> None:
    overall = report.summary.overall
    status = _say(f"run_status_{report.run.status}")
    click.echo(_say("summary_run", run=report.run.id, status=status, province=safe(report.run.province)))
    first, *columns = _say("summary_columns").split("|")
    table = [f"{first:<24} " + " ".join(f"{c:>9}" for c in columns)]
    for system in report.systems:
        counts = report.summary.systems[system.id].by_status
        score = report.summary.systems[system.id].score
        cells = (system.level, *(counts[s] for s in ("pass", "fail", "error", "waived", "not_applicable")))
        judged = safe(report.run.judged_by.get(system.id, ""))
        cells_text = " ".join(f"{c:>9}" for c in (*cells, _score(score)))
        table.append(f"{system.id:<24} {cells_text}  {judged}")
    click.echo("\n".join(table))  # one write: a province's table is a thousand lines
    failed = ", ".join(f"{_say('severity_' + k)} {v}" for k, v in overall.by_severity.items() if v)
    click.echo(_say("summary_failed", failed=failed or _say("summary_none"), score=_score(overall.score)))
    if overall.not_probed:
        click.echo(_say("summary_not_probed", count=overall.not_probed))
    click.echo(_say("summary_formula", formula=report.summary.score_formula.get(_lang[0])))
    for line in _zone_lines(report.run.zones, report.targets, report.observations):
        click.echo(line)
    systems_at: dict[str, list[str]] = {}
    for target in report.targets:
        systems_at.setdefault(target.address, []).append(target.system.id)
    for address, ids in sorted(systems_at.items()):
        if len(ids) > 1:
            click.echo(_say("summary_shared_host", host=safe(address), systems=", ".join(ids)))
    for path in sorted(out_dir.iterdir()):
        click.echo(_say("summary_report", path=safe(str(path), 1000)))


def _score(score: float | None) -> str:
    return "—" if score is None else f"{score * 100:.0f}%"


@main.command()
@click.argument("run")
@click.option("-p", "--policy", "policies", multiple=True, help="Evaluate the stored observations again.")
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_CHOICES),
    default="low",
    show_default=True,
    help="Severity from which a failure fails the verdict, JUnit and SARIF (as in scan).",
)
@report_options
def report(
    run: str,
    policies: tuple[str, ...],
    fail_on: str,
    out: Path | None,
    formats: str,
    lang: str | None,
    db: str | None,
    sign_key: Path | None,
    per_owner: bool,
    owner: str | None,
    waivers: tuple[Path, ...],
    policy_mode: str,
) -> None:
    """Render a stored run again; with -p or --waivers, re-evaluate it (no network): --waivers
    alone lays the waivers over the policies the run was judged by. A run that ended before it
    was judged (killed while probing) is judged now, by its own policies and waivers."""
    report_lang = _speak(lang)
    chosen_formats = _formats(formats)
    store = _open_store(db, create=False)
    stored = store.load(run)
    _check_owner(owner, stored.systems)
    if policies or waivers:
        refs, mode = (policies, cast(PolicyMode, policy_mode)) if policies else own_policies(stored.info)
        stored = reevaluate(stored, refs, _registry(), pipeline.utcnow(), mode=mode, waivers=waivers)
    else:
        stored = judged_run(stored, _registry(), pipeline.utcnow())
    output = ReportOutput(chosen_formats, report_lang, sign_key, per_owner, owner, _severity(fail_on))
    if _write_reports(store, build_report(stored), out, output) is None:
        sys.exit(ExitCode.REPORT_NOT_WRITTEN)


@dataclass(frozen=True)
class ReportOutput:
    """What `scan` and `report` write."""

    formats: list[str]
    lang: Lang
    sign_key: Path | None
    per_owner: bool
    owner: str | None
    fail_on: Severity | None = Severity.LOW
    """`--fail-on`: what fails the verdict, JUnit and SARIF."""


HISTORY_RUNS = 11
"""Earlier runs a report compares with: trends show these and the current one."""


def _history(store: RunStore, current: RunInfo, load: Callable[[str], StoredRun]) -> tuple[Report, ...]:
    """The latest earlier runs over the same inventory, oldest first: trends and "failing since".
    A run this version cannot read leaves the trends without it, with a warning; a store that
    cannot be read at all (its server went away mid-scan) leaves the report without trends."""
    try:
        listed = store.runs(limit=10 * HISTORY_RUNS)
    except StoreError as exc:
        _warn(f"{exc}; the report has no trends")
        return ()
    earlier = [
        info
        for info in listed
        if info.inventory_sha256 == current.inventory_sha256 and info.started < current.started
    ]
    history = []
    for info in reversed(earlier[:HISTORY_RUNS]):
        try:
            run = load(info.id)
        except StoreError as exc:
            _warn(f"{exc}; the trends leave it out")
            continue
        if run.judged:  # else a point with no finding would read "nothing open" that day
            history.append(build_report(run))
    return tuple(history)


@dataclass(frozen=True)
class Written:
    out_dir: Path
    previous: Report | None
    index: "PackIndex | None"


@dataclass(frozen=True)
class _Reporting:
    """Where a report goes and what it is compared with (read from the store)."""

    out_dir: Path
    context: RenderContext

    @property
    def previous(self) -> Report | None:
        return self.context.baseline.previous if self.context.baseline else None


def _reporting(
    store: RunStore, report: Report, out: Path | None, output: ReportOutput, codec: FindingCodec | None
) -> _Reporting:
    # The earlier run compared with is most often the newest of the trends': read once (a stored
    # run of 1,000 systems takes most of a second to read).
    load = functools.cache(store.load)
    baseline = _baseline(store, report, load)
    history = _history(store, report.run, load)
    context = RenderContext(fail_on=output.fail_on, history=history, baseline=baseline, codec=codec)
    return _Reporting(_out_dir(out, report.run.id), context)


def _closed_while_rendering(
    store: RunStore, outcome: ScanOutcome, out: Path | None, output: ReportOutput
) -> tuple[ScanOutcome, Report, Written | None]:
    """Close the run in the store (`close_run`) while its bundle is rendered and written under
    temporary names: at a province's scale each side takes about a fifth of a second. The files
    are put in place once the store holds the run; if the store refused it, the bundle is made
    again as the incomplete run it then is. What the report is compared with is read first,
    before the store is busy writing."""
    report = build_report(outcome.run)
    reporting = _reporting(store, report, out, output, outcome.codec)

    def staged(report: Report) -> StagedBundle | OSError | AtttError:
        try:
            rendered = render_bundle(
                report, output.formats, output.lang, sign_key=output.sign_key, context=reporting.context
            )
            return rendered.stage(reporting.out_dir)
        except (OSError, AtttError) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attt-close") as closing:
        closed = closing.submit(close_run, store, outcome)
        bundle = staged(report)
        # A second interrupt raises here: leaving the block waits for the store first.
        outcome = closed.result()
    if outcome.run.info != report.run:
        if isinstance(bundle, StagedBundle):
            bundle.discard()
        report = build_report(outcome.run)
        bundle = staged(report)
    try:
        if not isinstance(bundle, StagedBundle):
            raise bundle
        bundle.publish()
    except (OSError, AtttError) as exc:
        _cannot_write(reporting.out_dir, report.run.id, exc)
        return outcome, report, None
    _print_summary(report, reporting.out_dir)
    _warn_expired_waivers(report)
    return outcome, report, Written(reporting.out_dir, reporting.previous, None)


def _cannot_write(out_dir: Path, run_id: str, exc: OSError | AtttError) -> None:
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    _error(
        f"cannot write the report to {out_dir}: {reason}; the run is stored,"
        f" write it elsewhere with: attt report {run_id} --out DIR"
    )


def _write_reports(
    store: RunStore, report: Report, out: Path | None, output: ReportOutput, codec: FindingCodec | None = None
) -> Written | None:
    """Write the bundle (or one pack per owner, or one owner's pack), with the change since the
    comparable earlier run, and summarise. A report that cannot be written is one line (the run
    is stored) and None."""
    reporting = _reporting(store, report, out, output, codec)
    context, out_dir = reporting.context, reporting.out_dir
    index = None
    formats, lang, key = output.formats, output.lang, output.sign_key
    try:
        if output.owner is not None or output.per_owner:
            # Imported for packs only: the owners' index is HTML, and its templates (jinja2) are
            # what a JSON-only scan would otherwise load for nothing.
            from attt.reports.owners import write_one_pack, write_owner_packs
        if output.owner is not None:
            write_one_pack(report, output.owner, formats, out_dir, lang, sign_key=key, context=context)
        elif output.per_owner:
            packs = write_owner_packs(report, formats, out_dir, lang, sign_key=key, context=context)
            index = packs.index
        else:
            write_bundle(report, formats, out_dir, lang, sign_key=key, context=context)
    except (OSError, AtttError) as exc:
        _cannot_write(out_dir, report.run.id, exc)
        return None
    _print_summary(report, out_dir)
    _warn_expired_waivers(report)
    return Written(out_dir, reporting.previous, index)


def _baseline(store: RunStore, report: Report, load: Callable[[str], StoredRun]) -> Comparison:
    """The comparable earlier run for the change section (the one function that says which earlier
    run "new since" compares with); none, with a warning, when the store cannot give it (a run this
    version cannot read is skipped by `earlier_runs` already)."""
    try:
        previous_id, reason = choose_baseline(report.run, report.targets, store.earlier_runs(report.run))
        return Comparison(build_report(load(previous_id)) if previous_id else None, reason)
    except StoreError as exc:
        _warn(f"{exc}; the report has no change section")
        return Comparison(
            None,
            Text(vi=f"không đọc được lượt quét trước: {exc}", en=f"the earlier run cannot be read: {exc}"),
        )


def _warn_expired_waivers(report: Report) -> None:
    """Expired waivers, named where the person running the scan looks: the terminal."""
    expired = {
        (f.rule_id, f.system, f.waiver.expires, f.waiver.approved_by)
        for f in report.findings
        if f.waiver is not None and f.waiver.expired
    }
    for rule_id, system, expires, approved_by in sorted(expired):
        click.echo(
            f"attt: warning: waiver of {rule_id} on {system} expired on {expires.isoformat()}"
            f" (approved by {safe(approved_by)}); the rule is judged again",
            err=True,
        )


def _notify(store: RunStore, report: Report, written: Written, everything: bool) -> None:
    """Send the run's notifications; a failure is reported and recorded, never fatal."""
    from attt.scanner.notify import changes_since, notify

    store = store.reader() if isinstance(store, StoreHost) else store

    settings = _config().notify
    if settings is None:
        click.echo("attt: warning: --notify, but attt.toml has no [notify] section; nothing sent", err=True)
        return
    if written.index is None:
        return
    changes = changes_since(report, written.previous, everything or settings.everything)
    try:
        records = notify(store, report, written.out_dir, written.index, changes, settings)
    except AtttError as exc:  # e.g. the password variable is unset: the scan's result stands
        click.echo(f"attt: warning: notifications not sent: {safe(str(exc), 1000)}", err=True)
        return
    for record in records:
        outcome = (
            "sent" if record.status == "sent" else f"FAILED after {record.attempts} attempts: {record.detail}"
        )
        click.echo(f"notify: {record.channel} {safe(record.recipient)}: {safe(outcome, 400)}")


def _refuse_undecodable(params: dict[str, object]) -> None:
    """A scan records its options with the run: one that is not UTF-8 (a Latin-1 file name)
    could be stored nowhere, and the scan would end in a traceback after its first probes."""
    for value in params.values():
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None and os_text(str(item)) != str(item):
                _fail(f"not valid UTF-8 text, which attt records with the run: {os_text(str(item))}")


def _trigger(trigger: str) -> str:
    """`schedule`, or `manual:USER`: who ran it."""
    if trigger == "schedule":
        return trigger
    import getpass

    try:
        return f"manual:{os_text(getpass.getuser())}"
    except (KeyError, OSError):
        return "manual"


@main.command()
@click.option(
    "--zone", required=True, help="The zone this worker serves: it consumes queue attt.zone.ZONE only."
)
@click.option(
    "--scope",
    "networks",
    multiple=True,
    metavar="CIDR",
    help="An address range this worker may probe (repeatable; or [worker] scope): a task for any"
    " other address is refused, whatever the broker says.",
)
@click.option(
    "--broker", envvar="ATTT_BROKER", metavar="URL", help="As for attt scan --broker ($ATTT_BROKER)."
)
@click.option(
    "--credentials",
    type=click.Path(path_type=Path),
    help="This worker's own credentials file (YAML, not world-readable); never sent through the broker.",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 256), default=4, show_default=True, help="Probes run at once."
)
@click.option(
    "--max-timeout",
    type=click.FloatRange(1, 3600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="The largest probe budget (seconds) granted to a task; it also sets how soon a task"
    " held by a dead worker runs elsewhere.",
)
def worker(
    zone: str,
    networks: tuple[str, ...],
    broker: str | None,
    credentials: Path | None,
    concurrency: int,
    max_timeout: float,
) -> None:
    """Run the probes of one zone for the celery engine (attt scan --engine celery)."""
    import socket

    _require_celery()
    from attt.scanner.distributed import WorkerScope, parse_networks, resolve_broker, serve

    if not networks:
        raise click.UsageError("give the addresses this worker may probe: --scope CIDR or [worker] scope")
    scope = WorkerScope(
        zone=zone,
        networks=parse_networks(networks),
        registry=_registry(),
        credentials=_credential_lookup(credentials),
        max_timeout=max_timeout,
    )
    settings = resolve_broker(broker, _config().broker)
    shown = ", ".join(str(n) for n in scope.networks)
    click.echo(f"attt worker: zone {zone}, networks {shown}, broker {settings.shown}", err=True)
    sys.exit(serve(scope, settings, concurrency, f"attt-{zone}-{os.getpid()}@{socket.gethostname()}"))


@main.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--db")
def diff(run_a: str, run_b: str, db: str | None) -> None:
    """Rules that are new, fixed, not re-checked and still failing from RUN_A to RUN_B.

    A run is an id, a unique prefix of one, `latest` (the newest run) or `previous` (the run
    `latest` is compared with: the latest earlier complete run over the same hosts with the same
    checks). Fixed means the rule passes in RUN_B; one that could not be judged there (error,
    not probed, endpoint gone) is "not re-checked". A verdict that changed while the policy
    judging its system changed too is "judged otherwise", never new or fixed."""
    store = _open_store(db, create=False)
    registry, now = _registry(), pipeline.utcnow()
    before, after = (judged_run(_diff_run(store, ref), registry, now) for ref in (run_a, run_b))
    changes = compare_runs(*(Side(r.info, r.targets, r.findings) for r in (before, after)))
    click.echo(f"{before.info.id} -> {after.info.id}")
    for info in (before.info, after.info):
        if info.status != "complete":
            status = _say(f"run_status_{info.status}")
            click.echo(f"! {_say('diff_unfinished', run=info.id, status=status)}")
    if before.info.started > after.info.started:
        click.echo(f"! {_say('diff_reversed', a=before.info.id, b=after.info.id)}")
    why = unlike(after.info, after.targets, before.info, before.targets)
    if why in ("other_hosts", "other_checks"):  # other vantages: a note of `changes` says so
        click.echo(f"! {_say('diff_unlike', why=REASONS[why][0 if _lang[0] == 'vi' else 1])}")
    for note in changes.notes:
        click.echo(f"! {_say('diff_policy_changed', change=safe(note.get(_lang[0])))}")
    sections = [
        (_say("diff_new"), changes.new),
        (_say("diff_first_judged"), changes.first_judged),
        (_say("diff_fixed"), changes.fixed),
        (_say("diff_not_rechecked"), changes.not_rechecked),
        (_say("diff_unverified"), changes.unverified),
        (_say("diff_still"), changes.still),
    ]
    for label, findings in sections:
        click.echo(f"{label}: {len(findings)}")
        for f in findings:
            click.echo(f"  {f.rule_id:<28} {f.system} {safe(_where(f))}")
    if changes.rejudged:
        click.echo(f"{_say('diff_rejudged')}: {len(changes.rejudged)}")
        for r in changes.rejudged:
            was, verdict = (_say(f"verdict_{s or 'none'}") for s in (r.was, r.now))
            click.echo(
                f"  {r.finding.rule_id:<28} {r.finding.system} {safe(_where(r.finding))}  {was} -> {verdict}"
            )


def _where(f: Finding) -> str:
    return f"{f.host}:{f.port}" if f.port is not None else f.host


def _diff_run(store: "Store", ref: str) -> StoredRun:
    if ref != "previous":
        return store.load(ref)
    latest = store.load("latest")
    previous_id, reason = choose_baseline(latest.info, latest.targets, store.earlier_runs(latest.info))
    if previous_id is None:
        raise AtttError(f"no run to call 'previous': {reason.en}")
    return store.load(previous_id)


@main.command()
@click.option("--system", help="Only runs that observed this system.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--db")
def history(system: str | None, limit: int, db: str | None) -> None:
    """List stored runs, newest first."""
    store = _open_store(db, create=False)
    runs = store.runs(system=system, limit=limit)
    if not runs:
        click.echo(_say("no_runs"))
        return
    for info in runs:
        finished = info.finished.isoformat(timespec="seconds") if info.finished else "—"
        # With its content's hash: a policy edited between two runs keeps its id, and its rules'
        # verdicts may change with it rather than with the servers.
        policies = ",".join(f"{p.id}@{p.sha256[:8]}" for p in info.policies)
        trigger = info.options.get("trigger", "—")
        click.echo(
            f"{info.id}  {info.status:<10} {finished}  {safe(trigger):<16} {safe(info.province)}  {policies}"
        )
        for note in store.notifications(info.id):
            detail = f" ({safe(note.detail, 200)})" if note.detail else ""
            tries = f"{note.attempts} attempt(s)"
            click.echo(f"    notify {note.channel} {safe(note.recipient)}: {note.status}, {tries}{detail}")


@main.command("notify")
@click.argument("run")
@click.option("--all", "everything", is_flag=True, help="Every open failure, not only what is new.")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the packs mailed.")
@click.option("--lang", type=click.Choice(["vi", "en"]), help=LANG_HELP)
@click.option("--db")
def notify_command(run: str, everything: bool, out: Path | None, lang: str | None, db: str | None) -> None:
    """Send a stored run's notifications that were not sent yet (each goes once per run)."""
    speaks = _speak(lang)
    store = _open_store(db, create=False)
    report = build_report(judged_run(store.load(run), _registry(), pipeline.utcnow()))
    if report.run.status != "complete":
        # `attt scan` notifies only a run that ended; mailed now, a half-probed run's packs would
        # read as the agencies' whole result.
        _fail(_say("notify_unfinished", run=run, status=_say(f"run_status_{report.run.status}")))
    output = ReportOutput(["html", "json"], speaks, _config().sign_key, True, None)
    written = _write_reports(store, report, out, output)
    if written is None:
        sys.exit(ExitCode.REPORT_NOT_WRITTEN)
    _notify(store, report, written, everything)


@main.command()
@click.option("--keep-last", type=click.IntRange(1, None), help="Keep the N newest runs.")
@click.option(
    "--older-than", type=click.IntRange(0, None), metavar="DAYS", help="Remove runs older than DAYS."
)
@click.option("--db")
def prune(keep_last: int | None, older_than: int | None, db: str | None) -> None:
    """Remove old runs, but never one a kept run uses as its baseline; then reclaim the space."""
    from datetime import timedelta

    if (keep_last is None) == (older_than is None):
        raise click.UsageError("give exactly one of --keep-last N or --older-than DAYS")
    now = pipeline.utcnow()

    def chosen(runs: Sequence[RunInfo]) -> set[str]:
        if keep_last is not None:
            return {r.id for r in runs[keep_last:]}
        cutoff = now - timedelta(days=cast(int, older_than))
        return {r.id for r in runs if r.started < cutoff}

    result = _open_store(db, create=False).prune(chosen)
    for info in result.removed:
        started = info.started.isoformat(timespec="seconds")
        click.echo(_say("prune_removed", run=info.id, status=info.status, started=started))
    for run_id in result.kept_as_baseline:
        click.echo(_say("prune_kept", run=run_id))
    before, after = result.bytes_before, result.bytes_after
    click.echo(
        _say("prune_total", count=len(result.removed), before=before, after=after, freed=before - after)
    )


@main.group()
def checks() -> None:
    """Registered checks and the controls they provide."""


@checks.command("list")
@click.option(
    "--verbose", "-v", is_flag=True, help="Also what each control checks and why, its params and source."
)
def checks_list(verbose: bool) -> None:
    """Every registered check and control, and the distribution providing it."""
    registry = _registry()
    for name, registered in sorted(registry.checks.items()):
        for line in check_lines(name, registered, verbose):
            # Plugin text is third-party: printed like any other untrusted string.
            click.echo(safe(line, 1000))
    for failure in registry.failures:
        click.echo(f"{failure.name}  (from {failure.distribution}) NOT LOADED: {safe(failure.reason)}")


@main.group()
def policy() -> None:
    """Validate and show policies."""


@policy.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def policy_validate(files: tuple[Path, ...]) -> None:
    """Load each policy file, resolving extends and checking every rule's control and params."""
    from attt.scanner.policy import load_policy

    registry = _registry()
    failed = False
    for file in files:
        try:
            resolved = load_policy(str(file), registry)
        except AtttError as exc:
            for line in _error_lines(exc):
                click.echo(line, err=True)
            failed = True
            continue
        click.echo(
            _say("policy_ok", file=safe(str(file), 1000), policy=resolved.id, rules=len(resolved.rules))
        )
    if failed:
        sys.exit(ExitCode.CONFIG_ERROR)


@policy.command("show")
@click.argument("policy_ref")
@click.option("--format", "fmt", type=click.Choice(["md", "yaml"]), default="md", show_default=True)
@click.option("--lang", type=click.Choice(["vi", "en"]), help=LANG_HELP)
def policy_show(policy_ref: str, fmt: str, lang: str | None) -> None:
    """Print a resolved policy as a rule book (md) or as YAML."""
    from attt.reports.rulebook import policy_markdown, policy_yaml
    from attt.scanner.policy import load_policy

    resolved = load_policy(policy_ref, _registry())
    # Policy text is shown, never obeyed: escapes in a title must not drive the terminal.
    click.echo(
        clean(policy_markdown(resolved, _speak(lang)) if fmt == "md" else policy_yaml(resolved)), nl=False
    )


@main.group()
def inventory() -> None:
    """Validate inventories, and import them from a register spreadsheet."""


@inventory.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--province", required=True, help="The province the inventory belongs to.")
@click.option(
    "--scope",
    "scope",
    multiple=True,
    required=True,
    help="CIDR or *.domain the hosts must lie in (repeatable).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Default: stdout.")
def inventory_import(file: Path, province: str, scope: tuple[str, ...], output: Path | None) -> None:
    """Turn a register (.xlsx or .csv, Vietnamese or English headers) into an inventory.

    Every row that cannot be used is listed with its row number and why; the inventory of the
    usable rows is still written, and the exit code is then 2 so that a script notices.
    """
    from attt.scanner._yaml import load_yaml_text
    from attt.scanner.inventory import inventory_of
    from attt.scanner.register import describe, import_register, inventory_yaml

    result = import_register(file, province, scope)
    for warning in result.warnings:
        click.echo(f"attt: warning: {file}: {safe(warning, 1000)}", err=True)
    for line in describe(result.refused):
        click.echo(f"attt: refused: {file}: {safe(line, 1000)}", err=True)
    if result.inventory is None:
        _fail(f"{file}: no usable row; nothing written")
    text = inventory_yaml(result.inventory)
    # What is written loads as any hand-written inventory does: checked before a byte is
    # written, so a refused import leaves no file behind.
    try:
        inventory_of(load_yaml_text(text, str(output or "<stdout>")))
    except ConfigError as exc:
        _fail(f"{file}: the imported inventory would not load; nothing written: {exc}")
    if output is None:
        click.echo(text, nl=False)
    else:
        _write_whole(output, text)
        click.echo(
            f"{output}: {len(result.inventory.systems)} systems imported, {len(result.refused)} rows refused",
            err=True,
        )
    if result.refused:
        sys.exit(ExitCode.CONFIG_ERROR)


def _write_whole(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a full disk leaves the old file, or none)."""
    part = path.with_name(f".{path.name}.part")
    try:
        part.write_text(text, encoding="utf-8")
        part.replace(path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        _fail(f"{path}: cannot write: {exc.strerror or exc}")


@inventory.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def inventory_validate(file: Path) -> None:
    """Check an inventory: schema, unique ids, addresses, and that every host is in scope."""
    from attt.scanner.inventory import load_inventory, resolve_targets

    loaded = load_inventory(file)
    targets = resolve_targets(loaded.inventory)
    systems, sha = len(loaded.inventory.systems), loaded.sha256[:12]
    click.echo(_say("inventory_ok", file=safe(str(file), 1000), systems=systems, hosts=len(targets), sha=sha))
    if loaded.inventory.zones:
        click.echo(_say("inventory_zones", count=len(loaded.inventory.zones)))
        for line in _zone_lines(loaded.inventory.zones, targets):
            click.echo(f"  {line}")


def _zone_lines(
    zones: Sequence[Zone], targets: Sequence[Target], observations: Sequence[Observation] | None = None
) -> list[str]:
    """One line per zone: its hosts and, after a scan, the observations of them by the vantage
    each was made from; for an outside vantage, the zones it reaches and what it observed."""
    zone_of = {target.address: target.zone for target in targets}
    seen: dict[str | None, Counter[str | None]] = defaultdict(Counter)
    for obs in observations or ():
        seen[zone_of.get(obs.host)][obs.zone] += 1
    lines = []
    for zone in zones:
        name = safe(zone.name)
        if zone.outside:
            line = _say("zone_outside", zone=zone.id, name=name, reaches=", ".join(zone.reaches) or "—")
            made = sum(by_vantage[zone.id] for by_vantage in seen.values())
            lines.append(line + (_say("zone_made", count=made) if observations is not None else ""))
            continue
        hosts = sum(1 for target in targets if target.zone == zone.id)
        line = _say("zone_line", zone=zone.id, name=name, hosts=hosts)
        if observations is not None:
            by_vantage = seen[zone.id]
            sources = ", ".join(
                _say("zone_from", zone=vantage or _say("zone_here"), count=count)
                for vantage, count in sorted(by_vantage.items(), key=lambda item: item[0] or "")
            )
            line += _say("zone_seen", count=sum(by_vantage.values()), sources=sources or "—")
        lines.append(line)
    return lines


@main.command()
@click.argument("report_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--public-key", type=click.Path(path_type=Path), help="Ed25519 public key (PEM) to check the signature."
)
def verify(report_dir: Path, public_key: Path | None) -> None:
    """Check that a report bundle is intact: no file changed, missing or added."""
    from attt.reports.manifest import verify_bundle

    result = verify_bundle(report_dir, public_key)
    for problem in result.problems:
        click.echo(safe(problem, 1000))
    if not result.ok:
        sys.exit(ExitCode.VIOLATION)
    click.echo(_say("bundle_intact", dir=safe(str(report_dir), 1000)))


@main.command()
def schema() -> None:
    """Print the JSON Schema of report.json, with the data of every installed check."""
    schema = report_json_schema(_registry().data_models)
    click.echo(json.dumps(schema, indent=2, ensure_ascii=False))


def run() -> None:
    """The `attt` program: `main` in a process of its own (`attt.console` imports this module with
    the collector off)."""
    # What exists once the command is imported (modules, classes, their schemas) lives until the
    # process exits: frozen, no collection walks it again, nor does the one at exit (a tenth of
    # a second after a province's scan). Only here: a process running many commands (the tests)
    # must not keep each one's garbage for good.
    global _kept
    _kept = []
    gc.freeze()
    gc.enable()
    main()
