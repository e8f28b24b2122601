"""Local stand-ins for the four channels, speaking their real protocols (docs/protocols.md §7)."""
