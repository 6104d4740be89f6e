"""The sandbox page and its HTTP API (what the browser uses), over loopback."""

from __future__ import annotations

import asyncio
import json

import httpx

from sandbox import SandboxConfig, running_sandbox


def _config() -> SandboxConfig:
    # Nobody listens on port 9: deliveries fail fast and are merely logged.
    return SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=())


async def test_page_and_static_assets_are_served() -> None:
    async with running_sandbox(_config()) as sb, httpx.AsyncClient(base_url=sb.url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert 'data-testid="user-picker"' in page.text
        for asset in ("app.js", "blocks.js", "mrkdwn.js", "style.css"):
            assert (await http.get(f"/static/{asset}")).status_code == 200


async def test_ui_api_posts_reads_and_streams() -> None:
    async with running_sandbox(_config()) as sb, httpx.AsyncClient(base_url=sb.url) as http:
        state = (await http.get("/sandbox/api/state", params={"user": "U0CAROL"})).json()
        carol = next(u for u in state["users"] if u["id"] == "U0CAROL")
        assert carol["approver"] is False
        async with http.stream("GET", "/sandbox/stream") as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            body = {"user": "U0BOB", "channel": "C0GENERAL", "text": "hi <@U0BOT>"}
            posted = (await http.post("/sandbox/api/messages", json=body)).json()
            change = None
            while change is None:
                line = await asyncio.wait_for(anext(lines), 5)
                if line.startswith("data: "):
                    change = json.loads(line[6:])
            assert change == {"kind": "message", "channel": "C0GENERAL", "ts": posted["ts"]}
        msgs = (await http.get("/sandbox/api/channels/C0GENERAL/messages")).json()["messages"]
        assert [m["ts"] for m in msgs] == [posted["ts"]]
        missing = await http.post("/sandbox/api/views/U0BOB/submit", json={"values": {}})
        assert missing.status_code == 400
        assert missing.json()["error"] == "view_not_found"
        dm = (await http.post("/sandbox/api/dms", json={"user": "U0BOB"})).json()["channel"]
        assert dm.startswith("D")
        await sb.settle(2)
