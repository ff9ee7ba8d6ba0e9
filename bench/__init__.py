"""Benchmark harness: `python -m bench` (`make bench`) writes bench/RESULTS.md.

Sections (`--only ingest,history,pgdriver`): webhook ingest of the service on SQLite and on
PostgreSQL against a bare Hypercorn trio app; GET /history latency on a million loaded events;
psycopg's sync pool in threads against AsyncConnectionPool under trio-asyncio.

Modules:
    ceiling   the bare ASGI app on Hypercorn's trio worker (`python -m bench.ceiling --port N`)
    payloads  the Alertmanager bodies sent (built from tests/fixtures/alertmanager/single.json)
    load      wrk: finding (or installing) it, running it with post.lua / get.lua, parsing output
    servers   starting, probing and stopping the servers under test as subprocesses
    pgserver  the throwaway PostgreSQL server the bench starts once (initdb under /tmp)
    runner    the CLI; the ingest rounds: ceiling and service (both backends) alternated per cell,
              durability cross-check
    profile   an optional py-spy sample of the service under load (not timed)
    report    the ingest section: medians, ratios against the ceiling, targets; RESULTS.md sections
    dataset   the synthetic alert history (seeded: Zipf alertnames, firing/resolved pairs)
    loader    loading it: PostgreSQL by COPY, SQLite by executemany, after the migrations
    history   GET /history latency per query on both backends (wrk + get.lua), targets
    pgdriver  the driver micro-benchmark (`python -m bench.pgdriver --mode threads|asyncio`)
"""
