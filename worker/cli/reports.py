"""``status``, ``failures``, ``retry``: what the state store says of the pipelines; pushing the quarantine again."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from worker import cli
from worker.cli.common import ConfigOption, Exit, JsonOption, check_pipeline, load, one_line, open_store
from worker.cli.runs import execute, print_result
from worker.config import AppConfig, ConfigError


def status(
    pipeline: Annotated[str | None, typer.Argument(help="Only this pipeline.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Last runs, counts and quarantine size, per pipeline."""
    cfg = load(config)
    names = [pipeline] if pipeline else sorted(cfg.pipelines)
    if pipeline:
        check_pipeline(cfg, pipeline)
    store = open_store(cfg, create=False)
    report: list[dict[str, Any]] = []
    for name in names:
        runs = store.runs(name, limit=5)
        report.append(
            {
                "pipeline": name,
                "quarantined": store.count_quarantined(name),
                # Fields the target did not store as written (write verification), per field: how many records.
                "field_not_stored": store.not_stored_counts(cfg.pipeline(name).target),
                "runs": [
                    {
                        "run_id": r.id,
                        "kind": r.kind,
                        "status": r.status,
                        "started_at": r.started_at.isoformat(),
                        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                        **{
                            k: getattr(r, k)
                            for k in ("pulled", "created", "updated", "archived", "unchanged", "failed", "matched")
                        },
                        "error": r.error,
                    }
                    for r in runs
                ],
            }
        )
    store.close()
    _add_schedules(cfg, report)
    if as_json:
        cli.stdout.write(json.dumps(report if not pipeline else report[0], ensure_ascii=False) + "\n")
        return
    from worker import render

    if pipeline is None:
        render.print_overview(cli.out, report)
        for entry in report:
            _print_not_stored(entry)
        cli.out.print("`custsync status PIPELINE` lists a pipeline's last runs.")
        return
    render.print_runs(cli.out, report[0])
    if report[0]["runs"] and report[0]["runs"][0]["error"]:
        cli.out.print(f"Last run's error: {escape(report[0]['runs'][0]['error'])}")
    _print_not_stored(report[0])


def _print_not_stored(entry: dict[str, Any]) -> None:
    if entry["field_not_stored"]:
        fields = ", ".join(f"{name} ({count})" for name, count in entry["field_not_stored"].items())
        cli.out.print(f"{entry['pipeline']}: field_not_stored (the target did not keep what was written): {fields}")


def failures(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List quarantined records: source id, external_id, field and reason."""
    cfg = load(config)
    check_pipeline(cfg, pipeline)
    store = open_store(cfg, create=False)
    entries = store.quarantined(pipeline)
    store.close()
    rows = [
        {
            "source_id": q.source_id,
            "external_id": q.external_id,
            "field": q.field,
            "reason": q.reason,
            "attempts": q.attempts,
            "last_seen": q.last_seen.isoformat(),
        }
        for q in entries
    ]
    if as_json:
        cli.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    if not rows:
        cli.out.print(f"{pipeline}: nothing in quarantine.")
        return
    from worker.render import print_failures

    print_failures(cli.out, pipeline, rows)
    cli.out.print("Fix the records at the source (they are retried when they change) or run `custsync retry`.")


def retry(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Push quarantined records again (a full run that retries them even if unchanged)."""
    cfg = load(config)
    check_pipeline(cfg, pipeline)
    result = execute(cfg, pipeline, retry_quarantined=True, kind="retry")
    print_result(result, as_json)
    raise typer.Exit(result.exit_code)


def _add_schedules(cfg: AppConfig, report: list[dict[str, Any]]) -> None:
    """Add each pipeline's schedule, next run (UTC) and last worker to a status report."""
    from worker.metrics import last_workers
    from worker.render import next_run

    workers = last_workers(cfg.broker.url, [entry["pipeline"] for entry in report])
    for entry in report:
        schedule = cfg.pipelines[entry["pipeline"]].schedule
        when = next_run(schedule)
        entry["schedule"] = schedule
        entry["next_run"] = when.isoformat() if when else None
        worker = workers.get(entry["pipeline"]) or {}
        entry["last_worker"] = worker.get("worker")
        entry["last_worker_run_id"] = worker.get("run_id")


def resolve(
    pipeline: Annotated[str, typer.Argument(help="Either pipeline of the two-way pair.")],
    keep: Annotated[
        str, typer.Option("--keep", metavar="CONNECTION", help="The connection whose values are kept (and written).")
    ],
    external_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[EXTERNAL_ID]...", help="Only these customers (as `custsync failures` lists them)."),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Settle held conflicts of a two-way pair: write the kept side's values to the other side, at once.

    A conflict is a field edited on both sides since the last sync (`conflict = "hold"`, the default);
    `custsync failures PIPELINE` lists them. Example: `custsync resolve books_to_ledger --keep books`.
    """
    import asyncio

    from worker.resolve import resolve as settle

    cfg = load(config)
    check_pipeline(cfg, pipeline)
    store = open_store(cfg, create=False)
    try:
        done = asyncio.run(settle(cfg, pipeline, keep=keep, store=store, external_ids=external_ids or ()))
    except ConfigError as exc:
        cli.err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(Exit.USAGE) from None
    except RuntimeError as exc:
        cli.err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(Exit.FAILED) from None
    finally:
        store.close()
    if as_json:
        report = {"resolved": done.resolved, "failed": done.failed, "unknown": done.unknown}
        cli.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        for external_id, fields in done.resolved.items():
            cli.out.print(f"{external_id}: kept {keep}'s {', '.join(fields)}")
        for external_id, reason in done.failed.items():
            cli.err.print(f"{external_id}: still held: {escape(one_line(reason))}")
        for external_id in done.unknown:
            cli.err.print(f"{external_id}: no held conflict (see `custsync failures {pipeline}`)")
        if not (done.resolved or done.failed or done.unknown):
            cli.out.print(f"{pipeline}: no held conflicts.")
    if done.unknown and not done.resolved:
        raise typer.Exit(Exit.USAGE)
    raise typer.Exit(Exit.QUARANTINED if done.failed else Exit.OK)
