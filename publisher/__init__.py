"""publisher: write a government information item once, keep every channel in step with it."""

__version__ = "0.1.0"
