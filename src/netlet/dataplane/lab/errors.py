"""The one error type of the lab: a message a person can act on.

Every failure the lab reports (not root, a CNI plugin failing or missing, a
port clash, a workload that cannot start) is a `LabError` whose message names
the object and the step; the step's own creations are rolled back before it
is raised.
"""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab operation failed; `str()` says what, where and what to do."""
