"""The HTTP intake: ``vtex-relay serve``, VTEX's own three calls on VTEX's paths, enqueued.

An ERP that calls VTEX over HTTP switches to the relay by changing its base URL. Each module is
one concern: ``routes`` (the raw request path, routed before any percent-decoding), ``hosts``
(which account a request is for), ``auth`` (VTEX's key pair, compared in constant time),
``body`` (bounded reading and JSON), ``coalescer`` (requests arriving together share one
pipelined enqueue), ``writes`` (the three calls), ``passthrough`` (GET order, relayed to VTEX),
``relay`` (the relay's own ``/relay/`` endpoints), ``openapi`` (the document of all of them),
``answers`` (VTEX's answer and error shapes) and ``app`` (the server and its limits); the
command is ``vtex_relay.cli.serve``. Needs the ``intake`` extra (aiohttp).
"""
