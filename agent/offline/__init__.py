"""Atlas's built-in offline model: a deterministic chat model that needs no LLM.

ground → frame → plan → say: the question's words are matched against the live catalog,
read into one query frame, planned as tool calls (SQL built with sqlglot), and answered
from the tool results with templates that state the filters and dates used.
"""

from agent.offline.model import OfflineChatModel

__all__ = ["OfflineChatModel"]
