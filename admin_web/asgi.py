"""ASGI entry point for running the admin site under any ASGI server."""

from admin_web.app import create_app

app = create_app()
