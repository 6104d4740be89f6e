"""A review's life, in one package.

- :mod:`bot.review.states`: the statuses and the one table of transitions allowed between them.
- :mod:`bot.review.rules`: pure rules (who may decide, what a click may do, quorum, expiry).
- :mod:`bot.review.vocabulary`: the decision kinds translated at the Slack edges (button ids,
  audit outcome names).
- :mod:`bot.review.audit_events`: the audit entry of a transition, built in one function.
- :mod:`bot.review.storage`: the storage Protocol the effects are written against
  (``bot.store.BotStore`` implements it).
- :mod:`bot.review.deps`: the collaborators every part is given (agent seam, storage, Slack
  output, approvers, audit trail).
- :mod:`bot.review.shown`: how a review reads (as it stands, masked, decided). Pure.
- :mod:`bot.review.effects`: the effects (apply, release, recover, expire, remind, repaint).
- :mod:`bot.review.clicks`: a button press or modal submit, from admission to the claim.
"""
