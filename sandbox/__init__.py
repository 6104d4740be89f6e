"""A local stand-in for Slack.

The sandbox plays Slack's Web API, Events API and interactivity for a Bolt bot
that runs unchanged against it, so the project can be tested end to end and
demoed in a browser without a real Slack workspace.
"""

from sandbox.clock import FakeClock
from sandbox.config import SandboxConfig
from sandbox.server import Sandbox, create_app, running_sandbox

__all__ = ["FakeClock", "Sandbox", "SandboxConfig", "create_app", "running_sandbox"]
