"""The Gateway data plane: an asyncio proxy serving the gateway brain's route tables.

Layers, bottom up:

- `streams`   request/response values and bounded body streams (backpressure);
- `http1`, `http2`   server protocols (httptools, h2) turning bytes into `Request`s;
- `upstream`  pooled backend connections (HTTP/1.1, h2c) and the error -> status table;
- `tls`       SSL contexts with SNI certificate choice, ClientHello SNI peeking;
- `l4`        TCP, TLS passthrough and UDP forwarding;
- `engine`    applies one routing decision to one request (filters, backends, retries);
- `routing`   the only module that reads the gateway brain: snapshots of its tables;
- `observe`   counters, JSON-lines access log, the admin endpoint;
- `server`    binds listeners, swaps snapshots atomically, worker processes.

The proxy never decides Gateway API semantics: it asks `netlet.gateway` (one
matching implementation) and carries out the answer.
"""
