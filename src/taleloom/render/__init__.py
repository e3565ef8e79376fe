"""Rendering a book: HTML templates, PDF (WeasyPrint) and the QR code."""
