"""rag room (see DESIGN.md)."""
