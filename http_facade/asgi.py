from http_facade.app import create_app

app = create_app()
