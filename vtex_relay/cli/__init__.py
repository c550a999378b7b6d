"""The ``vtex-relay`` command: the group and the producer's commands (``main``), how commands
speak (``console``), ``dlq`` and ``order`` (``dlq``), ``accounts`` (``backlog``), ``health``,
``metrics`` and ``migrate`` (``observe``) and ``serve`` (``serve``)."""
