"""Renderers of a stored run: html, json, junit, sarif, csv."""
