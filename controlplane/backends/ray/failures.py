"""Why a Serve replica failed to start, in one line a user can act on (pure).

Ray Serve reports a failed constructor as the replica's whole traceback (the actor's
`ray::ServeReplica:...` line, the frames, then the exception), and glmctl's own
`RuntimeError` in it carries the engine log's tail. `first_cause` keeps what matters:
which rank on which host exited with which code, the engine's own last error line, and
where the full log is (on that host, not on the machine running glmctl).
"""

from __future__ import annotations

import re

# What RankWorker.failure() writes: "rank 0 on 10.0.0.2 exit code 1; log /path:\n<tail>"
_RANK = re.compile(
    r"rank (?P<rank>\d+)(?: on (?P<host>\S+))? exit code (?P<code>-?\d+|None); "
    r"log (?P<log>\S+?):\n(?P<tail>.*)",
    re.DOTALL,
)
_ENGINE = re.compile(
    r"(?P<what>engine exited before it was healthy|engine not healthy after \d+ s): "
)
# A Python exception line: "ModuleNotFoundError: No module named 'sglang'", "ValueError".
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit)\b(?::.*)?$")
_ERROR_LINE = re.compile(r"\b(?:error|fatal|failed)\b", re.IGNORECASE)
_NOISE = re.compile(r"^(?:Traceback \(most recent call last\):|File \"|\^+$|~+$|\s*$)")
MAX_CAUSE = 300


def _cause(tail: str) -> str:
    """The engine log's most telling line: its last exception, else its last error line,
    else its last line."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    for pattern in (_EXCEPTION, _ERROR_LINE):
        found = [line for line in lines if pattern.search(line) and not _NOISE.match(line)]
        if found:
            return found[-1][:MAX_CAUSE]
    return lines[-1][:MAX_CAUSE] if lines else "no output"


def _without_traceback(message: str) -> str:
    """A Ray error message with the actor line and stack frames dropped."""
    lines = message.splitlines()
    exceptions = [line.strip() for line in lines if _EXCEPTION.match(line.strip())]
    head = lines[0].strip() if lines else ""
    if head.startswith("ray::") or not head:
        head = ""
    head = re.sub(r"\s*(?:See controller logs for details\.\s*)?Error:\s*$", "", head)
    if exceptions:
        return f"{head} {exceptions[-1]}".strip()[: MAX_CAUSE * 2]
    return message.strip()[: MAX_CAUSE * 2]


def first_cause(message: str) -> str:
    """One line: the first cause of a replica's failure to start (see module docstring)."""
    engine = _ENGINE.search(message)
    rank = _RANK.search(message, engine.end() if engine else 0)
    if rank is None:
        return _without_traceback(message)
    host = rank["host"]
    where = f" on {host}" if host else ""
    what = "exited" if engine is None or "exited" in engine["what"] else engine["what"]
    code = "" if rank["code"] == "None" else f" with code {rank['code']}"
    log = f"full log{where}: {rank['log']}"
    if what == "exited":
        return f"rank {rank['rank']}{where} {what}{code}: {_cause(rank['tail'])} ({log})"
    return f"rank {rank['rank']}{where}: {what}; last output: {_cause(rank['tail'])} ({log})"
