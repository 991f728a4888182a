"""Plan schemas of the assessment designs, one module per `design.kind`."""
