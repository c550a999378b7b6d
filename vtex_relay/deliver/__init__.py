"""Getting jobs out to VTEX: one try (``attempt``), the OMS client (``oms``), finding whether an
earlier try landed (``reconcile``), the order-total check (``totals``), the wait before a retry
(``backoff``), what a try measured (``tally``) and each worker's sweep (``sweep``)."""
