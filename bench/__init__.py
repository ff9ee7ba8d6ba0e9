"""Benchmark harness: the webhook service against a bare Hypercorn trio app (`python -m bench`).

Modules:
    ceiling   the bare ASGI app on Hypercorn's trio worker (`python -m bench.ceiling --port N`)
    payloads  the Alertmanager bodies sent (built from tests/fixtures/alertmanager/single.json)
    load      wrk: finding (or installing) it, running it with post.lua, parsing its output
    servers   starting, probing and stopping the two servers as subprocesses
    runner    the rounds: ceiling and service alternated per cell, durability cross-check
    profile   an optional py-spy sample of the service under load (not timed)
    report    medians, ratios against the ceiling, targets, bench/RESULTS.md
"""
