"""The first of the two SQL guards (ARCHITECTURE decision 5): a sqlglot check of untrusted SQL.

:func:`guard_sql` accepts exactly one read-only query over named tables and returns the
statement to run, re-generated from the checked syntax tree (so that DuckDB runs what was
checked, not the original text with its comments) with a row LIMIT on the outermost query.
Everything else raises :class:`~tools.errors.SqlRejected` with a sentence a person or a model
can act on. The DuckDB connection of :mod:`tools.workspace` is the second guard.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokens import TokenType

from tools.errors import SqlRejected, UnknownTable

DIALECT = "duckdb"

# Messages (tests and callers match on these stems).
MSG_EMPTY = "the SQL is empty; send one SELECT statement"
MSG_MANY = "only one statement at a time is allowed"
MSG_NOT_SELECT = "only a single SELECT statement is allowed"
MSG_INTO = "SELECT ... INTO is not allowed"
MSG_TABLE_FUNCTION = "table functions such as {name}() are not allowed; query the tables by name"
MSG_FILES = "reading files is not allowed ({name}); query the tables by name"
MSG_FUNCTION = "function {name} is not allowed"
MSG_QUALIFIED = "qualified table names such as {name} are not allowed; use the bare table name"
MSG_PARSE = "could not parse the SQL: {detail}"

_FIRST_TOKENS = {TokenType.SELECT, TokenType.WITH, TokenType.FROM, TokenType.L_PAREN}

# Statement kinds that must not appear anywhere in the tree (CTE bodies included).
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "DML", "DDL", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter",
        "TruncateTable", "Copy", "Command", "Attach", "Detach", "Install", "Pragma", "Set",
        "Use", "Describe", "Summarize", "Show", "Transaction", "Commit", "Rollback", "Export",
        "LoadData", "Analyze", "Cache", "Uncache", "Refresh", "Grant", "Revoke", "Comment",
        "Kill", "Execute", "Declare", "Into",
    )
    if hasattr(exp, name)
)  # fmt: skip

# Functions that reach files, other databases, settings, the environment or run SQL text.
_FILE_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "st_read", "sqlite_", "postgres_",
                  "mysql_", "http")  # fmt: skip
_FILE_NAMES = frozenset({"glob", "sniff_csv", "from_csv_auto"})
_DENIED_PREFIXES = ("duckdb_", "pragma_", "json_execute", "json_deserialize")
_DENIED_NAMES = frozenset({
    "getenv", "current_setting", "getvariable", "query", "query_table", "which_secret",
    "checkpoint", "force_checkpoint", "load_extension", "install_extension",
})  # fmt: skip
_PATHLIKE = re.compile(r"[/\\:.~*?]")


@dataclass(frozen=True)
class GuardedSql:
    """A checked statement: the SQL to run (DuckDB dialect, LIMIT injected) and what it reads."""

    sql: str
    tables: frozenset[str]


def guard_sql(sql: str, allowed_tables: Iterable[str], row_limit: int | None) -> GuardedSql:
    """Check untrusted SQL and return the single read-only query to run.

    ``allowed_tables`` are the bare table names the query may read (case-insensitive); CTE
    names defined in the query are allowed too. ``row_limit`` caps the rows the returned
    statement can produce: the outermost query gets ``LIMIT row_limit``, or keeps its own
    literal LIMIT when smaller (callers that want to know whether rows were cut pass one more
    than they show). ``None`` injects no limit.

    Raises :class:`UnknownTable` for a table outside the allowlist, :class:`SqlRejected` for
    anything else that is not a single plain SELECT / UNION / INTERSECT / EXCEPT.
    """
    if row_limit is not None and row_limit < 1:
        raise ValueError("row_limit must be at least 1")
    allowed = {name.lower() for name in allowed_tables}
    _check_statement_count(sql)
    root = _parse(sql)
    root = _unwrap(root)
    if not isinstance(root, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise SqlRejected(f"{MSG_NOT_SELECT} (this is a {_kind(root)} statement)")
    _check_nodes(root)
    tables = _check_tables(root, allowed)
    _check_functions(root)
    if row_limit is not None:
        root = _limit(root, row_limit)
    return GuardedSql(sql=root.sql(dialect=DIALECT, comments=False), tables=frozenset(tables))


def _unwrap(root: exp.Expression) -> exp.Expression:
    """``(SELECT ...)`` at the top is its inner query; ``(SELECT ...) LIMIT 5`` (modifiers
    outside the parentheses) becomes ``SELECT * FROM (SELECT ...) AS q LIMIT 5``."""
    while isinstance(root, exp.Subquery) and not root.alias:
        modifiers = {k: v for k, v in root.args.items() if k != "this" and v is not None}
        if not modifiers:
            root = root.this
            continue
        outer = exp.select("*").from_(root.this.subquery("q"))
        for key, value in modifiers.items():
            outer.set(key, value)
        return outer
    return root


def _check_statement_count(sql: str) -> None:
    """Count statements on tokens (comments and string literals are already folded away)."""
    try:
        tokens = sqlglot.tokenize(sql, dialect=DIALECT)
    except SqlglotError as error:
        raise SqlRejected(MSG_PARSE.format(detail=_first_line(str(error)))) from None
    statements: list[list[object]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    if not statements:
        raise SqlRejected(MSG_EMPTY)
    if len(statements) > 1:
        raise SqlRejected(MSG_MANY)
    first = tokens[0]
    if first.token_type not in _FIRST_TOKENS:
        # Checked before parsing: sqlglot cannot parse some of these (EXPORT, IMPORT) and
        # falls back to a generic Command, with a logged warning, for others (LOAD, CALL).
        raise SqlRejected(f"{MSG_NOT_SELECT} (this starts with {first.text.upper()})")


def _parse(sql: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=DIALECT) if s is not None]
    except ParseError as error:
        detail = _first_line(str(error))
        if error.errors:
            info = error.errors[0]
            description = _first_line(str(info.get("description") or detail))
            description = re.sub(
                r"<Token token_type: [^>]*text: ([^,]*),[^>]*>", r"'\1'", description
            )
            detail = f"{description} (line {info.get('line')}, column {info.get('col')})"
        raise SqlRejected(MSG_PARSE.format(detail=detail)) from None
    except SqlglotError as error:
        raise SqlRejected(MSG_PARSE.format(detail=_first_line(str(error)))) from None
    statements = [s for s in statements if not isinstance(s, exp.Semicolon)]
    if len(statements) != 1:
        raise SqlRejected(MSG_MANY if statements else MSG_EMPTY)
    return statements[0]


def _check_nodes(root: exp.Expression) -> None:
    for node in root.walk():
        if isinstance(node, exp.Select) and node.args.get("into") is not None:
            raise SqlRejected(f"{MSG_INTO}; ask for the rows instead")
        if isinstance(node, _FORBIDDEN_NODES):
            if isinstance(node, exp.Into):
                raise SqlRejected(f"{MSG_INTO}; ask for the rows instead")
            raise SqlRejected(f"{MSG_NOT_SELECT}; {_kind(node)} is not allowed inside a query")


def _check_tables(root: exp.Expression, allowed: set[str]) -> set[str]:
    for source in root.find_all(exp.From, exp.Join, exp.Lateral):
        inner = source.this
        if isinstance(source, exp.Lateral) and isinstance(inner, exp.Subquery):
            continue
        if isinstance(inner, exp.Table | exp.Subquery | exp.Values | exp.Lateral):
            continue
        raise SqlRejected(MSG_TABLE_FUNCTION.format(name=_function_name(inner)))

    read: set[str] = set()
    for table in root.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SqlRejected(MSG_TABLE_FUNCTION.format(name=_function_name(table.this)))
        name = table.name
        qualified = ".".join(part.name for part in table.parts)
        if _PATHLIKE.search(name):
            raise SqlRejected(MSG_FILES.format(name=f"'{name}'"))
        if table.args.get("db") is not None or table.args.get("catalog") is not None:
            raise SqlRejected(MSG_QUALIFIED.format(name=qualified))
        lowered = name.lower()
        if _is_cte_reference(table, lowered):
            continue
        if lowered not in allowed:
            raise UnknownTable(_unknown_table_message(name, allowed))
        read.add(lowered)
    return read


def _is_cte_reference(table: exp.Table, name: str) -> bool:
    """Whether ``name`` names a CTE visible where ``table`` stands.

    Scope matters: a name defined in another subquery's WITH, or a CTE's reference to itself
    (outside WITH RECURSIVE) or to a later sibling, reaches a real table in DuckDB, possibly a
    system view such as ``duckdb_tables`` or ``sqlite_master``.
    """
    child: exp.Expression = table
    node = table.parent
    came_from: exp.Expression | None = None
    while node is not None:
        if isinstance(node, exp.With):
            came_from = child
        else:
            with_ = node.args.get("with_") or node.args.get("with")
            if isinstance(with_, exp.With):
                ctes = list(with_.expressions)
                if child is with_:
                    index = next((i for i, c in enumerate(ctes) if c is came_from), -1)
                    if index < 0:
                        ctes = []
                    elif with_.args.get("recursive"):
                        ctes = ctes[: index + 1]
                    else:
                        ctes = ctes[:index]
                if any(cte.alias_or_name.lower() == name for cte in ctes):
                    return True
        child, node = node, node.parent
    return False


def _check_functions(root: exp.Expression) -> None:
    for func in root.find_all(exp.Func):
        name = _function_name(func)
        if name in _FILE_NAMES or name.startswith(_FILE_PREFIXES) or name.endswith("_scan"):
            raise SqlRejected(MSG_FILES.format(name=name))
        if name in _DENIED_NAMES or name.startswith(_DENIED_PREFIXES):
            raise SqlRejected(MSG_FUNCTION.format(name=name))


def _limit(root: exp.Query, row_limit: int) -> exp.Query:
    """Cap the outermost query at ``row_limit`` rows."""
    current = root.args.get("limit")
    if current is None and root.args.get("offset") is None and root.args.get("fetch") is None:
        return root.limit(row_limit, copy=False)
    if (
        isinstance(current, exp.Limit)
        and current.args.get("limit_options") is None
        and isinstance(current.expression, exp.Literal)
        and current.expression.is_int
        and root.args.get("fetch") is None
    ):
        current.set("expression", exp.Literal.number(min(current.expression.to_py(), row_limit)))
        return root
    # LIMIT (subquery), LIMIT 10 %, FETCH FIRST, a bare OFFSET: keep it and cap from outside.
    return exp.select("*").from_(root.subquery("q")).limit(row_limit)


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    if isinstance(node, exp.Dot):  # catalog.schema.fn(...)
        return _function_name(node.expression)
    if isinstance(node, exp.Identifier):
        return str(node.name).lower()
    return node.key.lower()


def _kind(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper().replace("TRUNCATETABLE", "TRUNCATE")


def _unknown_table_message(name: str, allowed: set[str]) -> str:
    listing = ", ".join(sorted(allowed)) or "(none)"
    message = f"unknown table '{name}' — tables are: {listing}"
    close = difflib.get_close_matches(name.lower(), sorted(allowed), n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message


def _first_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return text.strip().splitlines()[0][:200] if text.strip() else "unknown error"
