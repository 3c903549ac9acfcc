"""Baseline: a bare Flask "hello" app, served under the same gunicorn settings as the platform."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello"
