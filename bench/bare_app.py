"""A bare Flask app with a constant /v1/score reply: the ceiling the real service is compared to."""

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)
    body = {"model_version": "bare", "scores": [{"id": "0", "text": "x", "i_score": 50.0, "tier": "blue"}]}

    @app.post("/v1/score")
    def score():
        return jsonify(body)

    return app
