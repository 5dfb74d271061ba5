"""Execution: one run lifecycle, from a pipeline file to a recorded run.

loading (YAML -> Pipeline) -> inputs / documents -> simulate (offline stand-ins) -> runner (the run session:
preflight -> capture -> finish -> record) -> batch / compare / estimate (many runs over the same session).
"""
