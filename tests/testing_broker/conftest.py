"""The Twisted adapter's check that no test leaves a logged failure behind applies here too."""

from __future__ import annotations

from tests.twisted_adapter.conftest import logged_failures

__all__ = ["logged_failures"]
