"""End-to-end benchmark of the approval bot: real PostgreSQL, the real bot HTTP app under
uvicorn, a loopback Slack Web API stand-in, an instant scripted model and a no-op tool.

Run ``python -m bench`` (or ``./dev bench``); ``--quick`` gives CI-size numbers. Results and
method are in docs/benchmarks.md.
"""
