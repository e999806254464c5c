"""Task folder (shipped as package data; process.py is loaded by path, not imported)."""
