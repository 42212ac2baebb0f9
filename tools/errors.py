"""Typed errors of Atlas's tools.

Each error carries a sentence a person (or the model) can act on. Front-ends show
``str(error)``; the agent returns it to the model as a fixable tool message.
"""

from __future__ import annotations


class AtlasError(Exception):
    """Base class: an expected failure whose message is meant for a person."""


class SqlRejected(AtlasError):
    """The SQL guard refused a statement (not a single read-only SELECT, a forbidden
    table, function or construct)."""


class UnknownTable(SqlRejected):
    """A query names a table that is neither in the warehouse nor in the session."""


class QueryLimitExceeded(AtlasError):
    """A resource limit stopped a query (time or memory)."""


class QueryTimeout(QueryLimitExceeded):
    """The query ran past its time limit and was interrupted."""


class QueryMemoryExceeded(QueryLimitExceeded):
    """The query needed more memory than the workspace allows."""


class QueryError(AtlasError):
    """DuckDB could not run an allowed query (unknown column, type mismatch, ...)."""


class ToolArgumentError(AtlasError):
    """A tool was called with arguments it cannot use; the message says how to fix them."""


class SessionTableClash(AtlasError):
    """A session table would shadow a warehouse table of the same name."""
