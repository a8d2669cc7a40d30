"""`tradeforge optimize`, `optimize-worker` and `optimize-results`: Optuna studies over a bot's
declared parameter ranges. Thin: parse, call the engine, render with rich."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tradeforge.resilience.errors import ConfigError, Problem

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[list[Path], typer.Option("--config", "-c", help="Config file; repeat to overlay.")]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", help="Optuna storage URL (default: sqlite:///<data_dir>/optuna.sqlite)."),
]


def register(app: typer.Typer) -> None:
    """Add the optimization commands to the `tradeforge` app."""
    app.command("optimize")(optimize)
    app.command("optimize-worker")(optimize_worker)
    app.command("optimize-results")(optimize_results)


def _fraction(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError([Problem("--holdout", "not a fraction; use e.g. 20% or 0.2", value)]) from None


def optimize(
    configs: ConfigOption,
    trials: Annotated[int | None, typer.Option("--trials", help="Finished trials the study should have.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Worker processes on this machine.")] = 1,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the bot name).")] = None,
    storage: StorageOption = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            help="sharpe|sortino|calmar|total_return|profit_factor|sqn|max_drawdown|cagr|module:function; "
            "repeat for a Pareto study.",
        ),
    ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First candle (UTC).")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last candle (UTC).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Candle file instead of the config's.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Start no trial after this many seconds.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the study summary here.")] = None,
    walk_forward: Annotated[
        int | None, typer.Option("--walk-forward", help="Score on K out-of-sample walk-forward folds.")
    ] = None,
    walk_forward_mode: Annotated[
        str | None, typer.Option("--walk-forward-mode", help="anchored (default) or rolling.")
    ] = None,
    holdout: Annotated[
        str | None, typer.Option("--holdout", help="Last part of the data kept from the optimizer, e.g. 20%.")
    ] = None,
    min_trades: Annotated[int | None, typer.Option("--min-trades", help="Reject trials with fewer trades.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory instead of data_dir.")] = None,
) -> None:
    """Run (or resume) an Optuna study over the strategy's optimization ranges."""
    from tradeforge.cli import _parse_date
    from tradeforge.engine.optimization import StudyRequest, prepare, run_prepared, shown, study_report

    if jobs < 1:
        raise ConfigError([Problem("--jobs", "must be at least 1", jobs)])
    if timeout is not None and timeout <= 0:
        raise ConfigError([Problem("--timeout", "must be greater than 0", timeout)])
    if walk_forward_mode not in (None, "anchored", "rolling"):
        raise ConfigError([Problem("--walk-forward-mode", "use anchored or rolling", walk_forward_mode)])
    request = StudyRequest(
        configs=configs,
        trials=trials,
        study=study,
        storage=storage,
        objectives=list(objective or []),
        start=_parse_date(date_from, "--from"),
        end=_parse_date(date_to, "--to", end_of_day=True),
        data=data,
        walk_forward=walk_forward,
        walk_forward_mode=walk_forward_mode,
        holdout=_fraction(holdout),
        min_trades=min_trades,
        seed=seed,
        datadir=datadir,
    )
    prepared = prepare(request)
    space = prepared.evaluator.space
    err.print(
        f"study [bold]{escape(prepared.name)}[/] in {escape(shown(prepared.url))}: "
        + ", ".join(f"{d.name} {d.describe()}" for d in space.dimensions)
        + (f"; fixed {space.fixed}" if space.fixed else ""),
        highlight=False,
    )
    progress = Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("best [bold]{task.fields[best]}[/] {task.fields[params]}"),
        console=err,
        transient=False,
        refresh_per_second=2,  # a clock in seconds needs no more; in-process trials share the interpreter with it
    )
    task = progress.add_task("study", total=prepared.budget, best="-", params="")
    started_at: list[int] = []

    def show(snap: Any) -> None:
        if not started_at:  # trials done before this run do not count toward its ETA
            started_at.append(snap.done)
            progress.reset(task, total=prepared.budget, completed=snap.done, best="-", params="")
            progress.start()  # its refresh thread starts after the worker processes are forked
        progress.update(task, completed=snap.done, best=snap.best_value, params=escape(snap.best_params))

    try:
        final = run_prepared(prepared, jobs=jobs, timeout=timeout, on_progress=show)
    except KeyboardInterrupt:
        progress.stop()
        err.print("interrupted: the study is saved; run the same command again to continue it")
        sys.exit(130)
    finally:
        progress.stop()
    if final.done < prepared.budget:
        err.print(f"stopped by --timeout with {final.done} of {prepared.budget} trials; run again to continue")
    try:
        report = study_report(prepared)
    except KeyboardInterrupt:
        err.print("interrupted while reporting: the trials are saved; `optimize-results` lists them")
        sys.exit(130)
    _render_report(prepared.study, report)
    if json_out is not None:
        summary = {
            "study": prepared.name,
            "storage": shown(prepared.url),
            "directions": [d.name.lower() for d in prepared.study.directions],
            "objectives": prepared.evaluator.config.optimize.objectives,
            "trials": final.done,
            "report": report,
        }
        json_out.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
        out.print(f"study summary written to {json_out}")


def optimize_worker(
    storage: Annotated[str, typer.Option("--storage", help="The study's storage URL (e.g. postgresql://...).")],
    study: Annotated[str, typer.Option("--study", help="Name of a study created by `tradeforge optimize`.")],
    timeout: Annotated[float | None, typer.Option("--timeout", help="Start no trial after this many seconds.")] = None,
) -> None:
    """Work on an existing study (any machine that can reach its storage and data) until it is done."""
    from tradeforge.engine.optimization import run_study_worker

    try:
        finished = run_study_worker(storage, study, timeout=timeout)
    except KeyboardInterrupt:
        err.print("interrupted: this worker's unfinished trial is failed and will be run again")
        sys.exit(130)
    out.print(f"worker finished {finished} trials")


def optimize_results(
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the bot name).")] = None,
    storage: StorageOption = None,
    configs: Annotated[
        list[Path] | None, typer.Option("--config", "-c", help="Bot config: default storage and study name.")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="How many trials to list.")] = 20,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the ranking here.")] = None,
    export_config: Annotated[
        Path | None, typer.Option("--export-config", help="Write a runnable config with a trial's parameters.")
    ] = None,
    trial: Annotated[int | None, typer.Option("--trial", help="Trial number to export (default: the best).")] = None,
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory instead of data_dir.")] = None,
) -> None:
    """Rank a study's trials with parameters and metrics; export one as a config."""
    from tradeforge.config.loader import load_config
    from tradeforge.engine.optimization import REPORT_KEY, open_existing, results_rows
    from tradeforge.engine.optimization import export_config as export

    if top < 1:
        raise ConfigError([Problem("--top", "must be at least 1", top)])
    url, name = storage, study
    if configs:
        config = load_config(configs)
        base = (datadir or config.data_dir).resolve()
        url = url or config.optimize.storage or f"sqlite:///{(base / 'optuna.sqlite').as_posix()}"
        name = name or config.optimize.study or config.name
    if url is None:  # the default storage of a bot with the default data_dir, run from this directory
        default = (datadir or Path("user_data")).resolve() / "optuna.sqlite"
        if not default.is_file():
            raise ConfigError([Problem("--storage", f"no study storage at {default}; give --storage or --config")])
        url = f"sqlite:///{default.as_posix()}"
    if name is None:
        raise ConfigError([Problem("--study", "give the study name (or --config: the bot's name)")])
    found, spec = open_existing(url, name)
    rows = results_rows(found, top)
    objectives = found.user_attrs.get("tradeforge_objectives") or ["value"]
    table = Table("rank", "trial", *objectives, "parameters", "trades", "sharpe", "max dd", "return", title=name)
    for row in rows:
        m = row["metrics"]
        table.add_row(
            f"{row['rank']}{' *' if row['pareto'] else ''}",
            str(row["number"]),
            *(f"{v:.4g}" for v in row["values"]),
            escape(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())),
            str(m.get("n_trades", "")),
            _num(m.get("sharpe")),
            _pct(m.get("max_drawdown")),
            _pct(m.get("total_return")),
        )
    out.print(table)
    if len(found.directions) > 1:
        out.print("* on the Pareto front")
    report = found.user_attrs.get(REPORT_KEY)
    if report:
        _render_report(found, report, heading=False)
    if json_out is not None:
        json_out.write_text(
            json.dumps({"study": name, "objectives": objectives, "trials": rows, "report": report}, indent=1),
            encoding="utf-8",
        )
        out.print(f"{len(rows)} trials written to {json_out}")
    if export_config is not None:
        chosen = export(found, spec, export_config, trial)
        out.print(
            f"trial {chosen.number} written to {export_config}; run it: tradeforge backtest --config {export_config}"
        )


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:,.2f} %"


def _render_report(study: Any, report: dict[str, Any], heading: bool = True) -> None:
    plan = report.get("plan") or {}
    if heading:
        out.print(f"study {study.study_name}: {report.get('n_trials', 0)} trials finished")
    folds = plan.get("folds") or []
    holdout = plan.get("holdout")
    columns = ["trial", "values", "IS sharpe", "OOS sharpe" if folds else "", "hold-out sharpe" if holdout else ""]
    table = Table(*[c for c in columns if c], "IS trades", "hold-out return" if holdout else "", title="top trials")
    for row in report.get("top", []):
        cells = [str(row["number"]), ", ".join(f"{v:.4g}" for v in row["values"] or [])]
        cells.append(_num((row.get("in_sample") or {}).get("sharpe")))
        if folds:
            cells.append(_num((row.get("out_of_sample") or {}).get("sharpe")))
        if holdout:
            cells.append(_num((row.get("holdout") or {}).get("sharpe")))
        cells.append(str((row.get("in_sample") or {}).get("n_trades", "")))
        cells.append(_pct((row.get("holdout") or {}).get("total_return")) if holdout else "")
        table.add_row(*cells)
    out.print(table)
    if folds:
        out.print(f"walk-forward: {len(folds)} folds; values are out-of-sample means; IS = train windows")
    if holdout:
        out.print(f"hold-out {holdout[0]} → {holdout[1]} was never seen by the optimizer")
    dsr = report.get("deflated_sharpe")
    if dsr and dsr.get("value") is not None:
        out.print(
            f"deflated Sharpe ratio of trial {dsr['trial']}: {dsr['value']:.3f} "
            f"(probability its true Sharpe is above 0, given {dsr['n_trials']} trials tried)"
        )
