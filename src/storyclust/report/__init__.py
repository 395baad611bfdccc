"""Reports people can read: one self-contained HTML page of stories (``storyclust report``).

:func:`render_report` turns stories into the page; :func:`read_stories` and
:func:`stories_from_state` load them from a stories JSONL file or a state file;
:mod:`storyclust.report.commands` holds the ``report`` and ``explain`` click commands.
"""
from .html import render_report
from .load import read_stories, select_stories, stories_from_state

__all__ = ["render_report", "read_stories", "select_stories", "stories_from_state"]
