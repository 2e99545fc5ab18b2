"""kopf handlers: thin, one module per resource. They route events to `headroom.reconcilers`."""
