"""The ``atlas`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent.config import Settings
from tools.errors import AtlasError, QueryLimitExceeded, SqlRejected
from tools.jsonify import frame_rows

app = typer.Typer(
    help="Atlas: ask questions about the short-video platform's data in plain language.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks (not tests): rerunnable speed measurements.")
app.add_typer(bench_app, name="bench")

DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB warehouse file.")]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="offline | openai:<model> | local:<path.gguf>")
]
SessionOption = Annotated[str, typer.Option("--session", help="Conversation / session id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def _settings(db: Path | None = None, model: str | None = None, **extra: object) -> Settings:
    return Settings().with_overrides(db=db, model=model, **extra)


def _print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One SELECT statement.")],
    db: DbOption = None,
    model: ModelOption = None,
    session: SessionOption = "default",
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one read-only SELECT through Atlas's SQL guard and print the rows.

    Exit status: 0 with rows, 2 when the guard refuses it or a limit stops it, 1 otherwise.
    """
    from tools.workspace import Workspace

    settings = _settings(db, model, sql_timeout_s=timeout)
    console = Console()
    try:
        if not settings.db.exists():
            raise AtlasError(f"there is no database at {settings.db}; run `make setup` or pass --db")
        with Workspace.from_settings(settings, session) as ws:
            result = ws.query(statement)
    except (SqlRejected, QueryLimitExceeded) as exc:
        _fail(str(exc), 2, as_json, console)
    except AtlasError as exc:
        _fail(str(exc), 1, as_json, console)
    if as_json:
        _print_json({"sql": result.sql, "columns": result.columns,
                     "rows": frame_rows(result.df), "row_count": result.row_count,
                     "truncated": result.truncated})
        return
    table = Table(show_lines=False)
    for column in result.columns:
        table.add_column(str(column))
    for row in frame_rows(result.df):
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)
    more = " (truncated: aggregate or filter to see all)" if result.truncated else ""
    console.print(f"[dim]{result.row_count} rows in {result.ms:.0f} ms{more}[/dim]")


def _fail(message: str, code: int, as_json: bool, console: Console) -> None:
    if as_json:
        _print_json({"error": message})
    else:
        Console(stderr=True).print(f"[red]Error:[/red] {message}")
    raise typer.Exit(code)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in plain language.")],
    db: DbOption = None,
    model: ModelOption = None,
    session: SessionOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Ask one question; print the answer, then the trace (tools, SQL, rows, time)."""
    from agent.analyst import Analyst
    from agent.events import Error
    from agent.render_cli import answer_json, print_answer

    settings = _settings(db, model)
    with Analyst(settings) as analyst:
        events = list(analyst.stream(question, session, user="cli"))
        if as_json:
            _print_json(answer_json(analyst, session, events))
        else:
            print_answer(Console(), analyst, session, events)
    if any(isinstance(e, Error) for e in events):
        raise typer.Exit(1)


@app.command()
def chat(db: DbOption = None, model: ModelOption = None, session: SessionOption = "default",
         trace: Annotated[bool, typer.Option(help="Show tools and SQL after answers.")] = True,
         ) -> None:
    """A conversation in the terminal, with memory (empty line or Ctrl-D to leave)."""
    from agent.analyst import Analyst
    from agent.render_cli import print_answer

    settings = _settings(db, model)
    console = Console()
    mode = "offline mode" if settings.model == "offline" else settings.model
    console.print(f"[bold]Atlas[/bold] — {mode}, database {settings.db.name}, session {session}")
    with Analyst(settings) as analyst:
        while True:
            try:
                question = console.input("[bold cyan]you>[/bold cyan] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not question or question in ("exit", "quit"):
                break
            with console.status("thinking…"):
                events = list(analyst.stream(question, session, user="cli"))
            print_answer(console, analyst, session, events, show_trace=trace)


@app.command()
def ui(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 7860,
    db: DbOption = None,
    model: ModelOption = None,
) -> None:
    """Start the chat page in the browser (Gradio)."""
    import ui as chat_ui

    chat_ui.launch(_settings(db, model), host=host, port=port)


@app.command()
def slack(
    mode: Annotated[str, typer.Option("--mode", help="socket (no public URL) or http.")] = "socket",
    port: Annotated[int, typer.Option("--port", help="HTTP mode: port for /slack/events.")] = 3000,
    db: DbOption = None,
    model: ModelOption = None,
) -> None:
    """Run the Slack bot (tokens from SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN)."""
    from agent.slack_bot import SlackSetupError, run_slack

    try:
        run_slack(_settings(db, model), mode=mode, port=port)
    except SlackSetupError as exc:
        Console(stderr=True).print(f"[red]Error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and its charts.")] = Path("atlas-report"),
    session: SessionOption = "default",
    refresh: Annotated[bool, typer.Option(help="Draft a new strategy even if one exists.")] = False,
    db: DbOption = None,
    model: ModelOption = None,
) -> None:
    """Export the strategy suggestions as a Markdown report with its chart."""
    from agent.analyst import Analyst
    from agent.report import write_report

    try:
        with Analyst(_settings(db, model)) as analyst:
            path = write_report(analyst, session, out, refresh=refresh)
    except AtlasError as exc:
        _fail(str(exc), 1, False, Console())
    Console().print(f"Wrote {path}")


@app.command("sample-db")
def sample_db(
    scale: Annotated[float, typer.Option("--scale", help="Size multiplier (1 = 1M events).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    out: Annotated[Path | None, typer.Option("--out", "--db", help="Output DuckDB file.")] = None,
) -> None:
    """Generate the deterministic sample database (and its planted truth beside it)."""
    from agent.config import DEFAULT_DB
    from sample_db.generate import generate

    target = out or DEFAULT_DB
    counts = generate(target, scale=scale, seed=seed, progress=True)
    summary = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    Console().print(f"Wrote {target}: {summary}")


@bench_app.command("sql")
def bench_sql(
    db: DbOption = None,
    scale: Annotated[float, typer.Option("--scale", help="Scale of the generated DB.")] = 10.0,
    repeat: Annotated[int, typer.Option("--repeat", help="Runs per query.")] = 5,
    out: Annotated[Path | None, typer.Option("--out", help="Write the figures as JSON.")] = None,
) -> None:
    """Typical analyst queries through `atlas sql` vs directly in DuckDB, in one run."""
    from agent.bench import run_sql_benchmark

    report = run_sql_benchmark(db=db, scale=scale, repeat=repeat)
    Console().print(report.table())
    if out is not None:
        out.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")


@app.command("eval")
def eval_suite(
    suite: Annotated[Path, typer.Argument(help="Suite YAML (e.g. tests/evals/sample.yaml).")],
    db: DbOption = None,
    model: ModelOption = None,
    min_accuracy: Annotated[float | None, typer.Option(
        "--min-accuracy", help="Exit 1 when accuracy is below this (0-1).")] = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="An earlier report.json to compare with.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Report folder (default reports/<suite>-<model>-<time>/).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Run at most N cases.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip the cases already in the report at --out.")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Cases in parallel (offline default 2).")] = None,
    case: Annotated[list[str] | None, typer.Option(
        "--case", help="Run only this case id (repeatable).")] = None,
) -> None:
    """Run an evaluation suite and write report.json and report.md.

    Exit status: 0 when done (and accuracy reaches --min-accuracy), 1 below it, 2 when the
    suite or a report cannot be used.
    """
    from agent.eval_report import print_report
    from agent.evals import EvalError, default_out, latest_out, load_suite, run_suite

    settings = _settings(db, model)
    console = Console()
    try:
        loaded = load_suite(suite)
        if out is None:
            found = latest_out(loaded, settings.model) if resume else None
            out = found or default_out(loaded, settings.model)
        report = run_suite(suite, settings, workers=workers, limit=limit, out=out,
                           resume=resume, baseline=baseline, only=case, progress=True)
    except (EvalError, FileNotFoundError) as exc:
        _fail(str(exc), 2, False, console)
    data = report.to_dict()
    print_report(console, data)
    console.print(f"[dim]report: {out / 'report.json'} and {out / 'report.md'}[/dim]")
    if min_accuracy is not None and (data["accuracy"] or 0.0) < min_accuracy:
        console.print(f"[red]accuracy {data['accuracy'] or 0:.0%} is below "
                      f"{min_accuracy:.0%}[/red]")
        raise typer.Exit(1)


def main() -> None:
    """Entry point for ``python -m agent.cli``."""
    app()


if __name__ == "__main__":
    main()
