"""Local stand-ins for the four channels, speaking their real wire protocols (DESIGN §5.5)."""
