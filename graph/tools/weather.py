"""The seed's demo tool: deterministic, offline weather, clearly labelled as made up."""

from __future__ import annotations

import hashlib

from langchain_core.tools import tool

_CONDITIONS = ("sunny", "partly cloudy", "overcast", "light rain", "foggy", "windy", "clear")


def demo_weather(city: str) -> str:
    """Derive stable fake weather from the city name, so demos and tests repeat exactly."""
    digest = hashlib.sha256(city.strip().lower().encode()).digest()
    condition = _CONDITIONS[digest[0] % len(_CONDITIONS)]
    celsius = digest[1] % 30 - 2
    return f"{condition}, {celsius} °C in {city} (demo data, not a real forecast)"


@tool
def weather_search(city: str) -> str:
    """Look up the current weather for a city (demo data: deterministic and not real)."""
    return demo_weather(city)
