"""The WSGI entry point for gunicorn: ``gunicorn wsgi:app``."""

from interface.app import create_app

app = create_app()
