"""Redis, the one place state lives: the key layout (``keys``), the Lua scripts (``lua/``)
and their Python faces (``scripts``, ``ordering`` and its ``enqueuing``), task messages
(``messages``), overlapped pipelines (``pipelining``), many threads' script calls sent together
(``combining``), the process's client (``connections``), what makes two jobs the same
(``fingerprints``), the Redis a relay accepts (``preflight``) and the layout's migration
(``migrate``)."""
