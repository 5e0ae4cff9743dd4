"""Pydantic models for everything that crosses a boundary. No I/O happens in this package."""
