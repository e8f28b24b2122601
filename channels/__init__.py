"""Channel adapters: one module per channel on one small base, plus the local sandboxes."""
