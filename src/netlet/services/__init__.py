"""The services brain: Services + EndpointSlices -> a per-node service table, and the
evaluation of connections through it (kube-proxy's nftables mode, computed).

Modules: table (the IR and its layout contract), endpointslices (the EndpointSlice
controller), endpoints (slice merge, endpoint choice), entries (one Service -> its
entries), builder (full and incremental builds), changes (per-Service diffs for partial
syncs), flow (evaluate / trace), findings (`netlet check`). Pure: no I/O, no clock.
"""

from netlet.services.builder import ProxyConfig, ServiceTableBuilder, build_table, diff_states
from netlet.services.changes import ServiceChange, TableDiff, diff_tables
from netlet.services.flow import FlowResult, Outcome, OutcomeKind, evaluate, trace
from netlet.services.table import ServiceName, ServicePortEntry, ServicePortName, ServiceTable

__all__ = [
    "FlowResult",
    "Outcome",
    "OutcomeKind",
    "ProxyConfig",
    "ServiceChange",
    "ServiceName",
    "ServicePortEntry",
    "ServicePortName",
    "ServiceTable",
    "ServiceTableBuilder",
    "TableDiff",
    "build_table",
    "diff_states",
    "diff_tables",
    "evaluate",
    "trace",
]
