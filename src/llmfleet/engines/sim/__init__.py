"""The built-in simulated engine: the OpenAI API of a real engine, without a model.

Deterministic answers (``text``, ``answers``), real timing and capacity (slots,
queue, time to first token, tokens per second, prefix cache) and fault
injection (crash, hang, error rate, slow or failed start), served by an aiohttp
app (``server``) that runs as ``python -m llmfleet.engines.sim``. ``adapter``
plugs it into llmfleet like any engine; ``process`` and ``testing`` start it
for tests and benchmarks. Nothing is imported here, so starting the engine
process stays cheap.
"""
