"""How Slack's requests reach the Bolt app: signed HTTP (:mod:`bot.transport.http`, which also
serves health, readiness and metrics) or Socket Mode (:mod:`bot.transport.socket_mode`)."""
