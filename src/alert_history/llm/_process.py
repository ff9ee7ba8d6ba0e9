"""`python -m alert_history.llm._process`: the LLM worker process (see `alert_history.llm.worker`).

A module of its own, which the package does not import, so `-m` runs it without importing it
twice."""

from alert_history.llm.worker import main

if __name__ == "__main__":
    main()
