"""Deterministic answers: one well-formed value for every output field a prompt asks for.

Order of precedence for each field: the user's ``responder(prompt)``, then the first matching
rule, then the built-in answer. Built-in answers solve arithmetic and look up a few facts
(``solvers``); ReAct steps call the first tool once, then ``finish``; the extract step answers
with the last observation. Anything else is derived from the inputs with hash-based choices
(``stable_hash`` of the seed, the prompt digest and the field name): the same prompt always
gives the same answer, and no global random state is touched.

    >>> from dspex_lab.lm_server.prompts import parse_request
    >>> p = parse_request({"messages": [{"role": "user", "content": "What is 2 + 3?"}]})
    >>> compose(p)
    {'answer': '5'}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_lab.lm_server import solvers
from dspex_lab.lm_server.coerce import FAIL as _FAIL
from dspex_lab.lm_server.coerce import coerce
from dspex_lab.lm_server.prompts import OutputField, ParsedPrompt
from dspex_lab.lm_server.typespec import TypeSpec

__all__ = ["Rule", "compose", "load_rules"]

Responder = Callable[[ParsedPrompt], "dict[str, Any] | None"]
_PRIMARY = ("answer", "result", "output", "response", "solution", "value", "final_answer")
_REASONING = ("reasoning", "rationale", "thought", "next_thought", "explanation")


@dataclass(frozen=True)
class Rule:
    """Answer ``answer`` (a dict of fields, or a string for the main field) when ``match``
    (a regular expression) is found in the prompt's last user message."""

    match: str
    answer: Any

    def matches(self, text: str) -> bool:
        """Whether ``match`` (a regular expression) occurs in ``text``."""
        return re.search(self.match, text, re.I | re.S) is not None

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-safe data."""
        return {"match": self.match, "answer": self.answer}


def load_rules(source: Any) -> tuple[Rule, ...]:
    """Rules from a list of ``{"match": regex, "answer": {...}}`` or a JSON/YAML file path.

    >>> load_rules([{"match": "hello", "answer": {"answer": "hi"}}])[0].answer
    {'answer': 'hi'}
    """
    if source is None:
        return ()
    if isinstance(source, str | bytes) or hasattr(source, "__fspath__"):
        source = _read_rules_file(source)
    if isinstance(source, dict):
        source = source.get("rules", [])
    rules = []
    for i, item in enumerate(source):
        if isinstance(item, Rule):
            rules.append(item)
            continue
        if not isinstance(item, dict) or "match" not in item or "answer" not in item:
            raise ValueError(f"Rule {i} is {item!r}; each rule needs 'match' (a regular "
                             "expression) and 'answer' (a dict of output fields or a string).")
        re.compile(item["match"])
        rules.append(Rule(str(item["match"]), item["answer"]))
    return tuple(rules)


def _read_rules_file(path: Any) -> Any:
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def compose(prompt: ParsedPrompt, *, seed: int = 0, responder: Responder | None = None,
            rules: Sequence[Rule] = (), salt: int = 0) -> dict[str, Any]:
    """A value for every output field of ``prompt``, in the prompt's field order."""
    overrides = _overrides(prompt, responder, rules)
    builder = _Builder(prompt, seed, salt)
    builtin = builder.react_step() if prompt.is_react_step else {}
    values: dict[str, Any] = {}
    for out in prompt.outputs:
        value = _FAIL
        if out.name in overrides:
            value = coerce(overrides[out.name], out.type)
        if value is _FAIL and out.name in builtin:
            value = builtin[out.name]
        if value is _FAIL:
            value = builder.field_value(out)
        values[out.name] = value
    return values


def _overrides(prompt: ParsedPrompt, responder: Responder | None,
               rules: Sequence[Rule]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if responder is not None:
        found.update(responder(prompt) or {})
    text = prompt.text or prompt.question
    for rule in rules:
        if rule.matches(text):
            answer = rule.answer
            if not isinstance(answer, dict):
                answer = {_primary_name(prompt.outputs): answer}
            for k, v in answer.items():
                found.setdefault(k, v)
    return found


def _primary_name(outputs: Sequence[OutputField]) -> str:
    names = [o.name for o in outputs]
    for name in _PRIMARY:
        if name in names:
            return name
    rest = [n for n in names if n not in _REASONING]
    return rest[0] if rest else (names[0] if names else "answer")


class _Builder:
    """Builds built-in values for one prompt."""

    def __init__(self, prompt: ParsedPrompt, seed: int, salt: int) -> None:
        self.prompt = prompt
        self.seed = seed
        self.salt = salt
        self.question = prompt.question
        self.words = solvers.keywords(" ".join(v for k, v in prompt.inputs.items()
                                               if k != "trajectory") or prompt.text)
        self.primary = _primary_name(prompt.outputs)
        self.solution = self._solution()

    def rng(self, *parts: Any) -> solvers.HashRandom:
        return solvers.HashRandom(self.seed, self.prompt.key, self.salt, *parts)

    def _solution(self) -> Any:
        observation = _last_observation(self.prompt.trajectory)
        if observation is not None:
            return observation
        return solvers.solve(self.question)

    # -- ReAct ---------------------------------------------------------------------------------
    def react_step(self) -> dict[str, Any]:
        choices = next((o.type.choices for o in self.prompt.outputs
                        if o.name == "next_tool_name"), ())
        tools = [t for t in self.prompt.tools if t.name != "finish" and (
            not choices or t.name in choices)]
        called = [s for s in self.prompt.trajectory if "observation" in s]
        if called or not tools:
            result = _last_observation(self.prompt.trajectory)
            thought = (f"I have the result ({result}); I can finish." if result is not None
                       else "I have what I need; I can finish.")
            return {"next_thought": thought, "next_tool_name": "finish", "next_tool_args": {}}
        tool = tools[0]
        args = self.tool_args(tool.args)
        return {"next_thought": f"I will call {tool.name} with {json.dumps(args)} to find out.",
                "next_tool_name": tool.name, "next_tool_args": args}

    def tool_args(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Arguments for a tool from its JSON-schema map: numbers from the question for
        numeric arguments, the arithmetic expression or the question for strings."""
        nums = iter(solvers.numbers(self.question))
        expr = solvers.arithmetic_expression(self.question)
        args: dict[str, Any] = {}
        for name, arg_schema in schema.items():
            kind = arg_schema.get("type") if isinstance(arg_schema, dict) else None
            if kind in ("integer", "number"):
                value = next(nums, 0)
                args[name] = int(value) if kind == "integer" else float(value)
            elif kind == "boolean":
                args[name] = True
            elif kind == "array":
                args[name] = solvers.numbers(self.question) or self.words[:3]
            elif kind == "object":
                args[name] = {}
            else:
                args[name] = expr if expr and _wants_expression(name) else self.question
        return args

    # -- one field -----------------------------------------------------------------------------
    def field_value(self, out: OutputField) -> Any:
        spec = out.type.without_none()
        if out.name == self.primary and self.solution is not None:
            value = coerce(self.solution, spec)
            if value is not _FAIL:
                return value
        return self.generate(spec, out.name, out.name)

    def generate(self, spec: TypeSpec, name: str, path: str) -> Any:
        rng = self.rng(path)
        kind = spec.kind
        if kind == "union":
            return self.generate(spec.without_none(), name, path)
        if kind == "str" or kind in ("any", "named", "ellipsis"):
            return self.text(name, rng)
        if kind == "int":
            return self.number(name, rng, integer=True)
        if kind == "float":
            return self.number(name, rng, integer=False)
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "none":
            return None
        if kind == "literal":
            return self.choose(spec.choices, rng)
        if kind in ("list", "set", "tuple"):
            return self.sequence(spec, name, path, rng)
        if kind == "dict":
            return self.mapping(spec, name, path)
        if kind == "object":
            return {k: self.generate(t.without_none(), k, f"{path}.{k}") for k, t in spec.fields}
        return self.text(name, rng)

    def text(self, name: str, rng: solvers.HashRandom) -> str:
        lname = name.lower()
        if lname in _REASONING:
            return self.reasoning()
        topic = " ".join(self.words[:4]) or "the request"
        if any(k in lname for k in ("summary", "title", "headline")):
            return " ".join(self.question.split()[:12]).rstrip(".") + "."
        if any(k in lname for k in ("keyword", "tag", "topic")):
            return ", ".join(self.words[:3]) or "general"
        if name == self.primary and self.solution is not None:
            return str(self.solution)
        templates = ("{T}.", "It is about {t}.", "Most likely {t}.", "{T}, in short.")
        template = templates[rng.randrange(len(templates))]
        return template.format(t=topic, T=topic[:1].upper() + topic[1:])

    def reasoning(self) -> str:
        parts = [f"The task asks: {' '.join(self.question.split()[:30])}"]
        expr = solvers.arithmetic_expression(self.question)
        if _last_observation(self.prompt.trajectory) is not None:
            parts.append(f"The tool returned {self.solution}.")
        elif expr is not None:
            parts.append(f"Computing {expr} gives {solvers.evaluate(expr)}.")
        elif self.solution is not None:
            parts.append(f"I recall that the answer is {self.solution}.")
        parts.append("Let me state the answer.")
        return " ".join(parts)

    def number(self, name: str, rng: solvers.HashRandom, *, integer: bool) -> int | float:
        lname = name.lower()
        if not integer and any(k in lname for k in ("confidence", "probability", "prob", "score",
                                                     "certainty")):
            return round(0.5 + 0.49 * rng.random(), 2)
        nums = solvers.numbers(self.question)
        if integer and ("count" in lname or lname.startswith(("n_", "num"))):
            return len(self.words) or rng.randint(1, 10)
        if nums and name == self.primary:
            return int(nums[0]) if integer else float(nums[0])
        return rng.randint(1, 100) if integer else round(rng.uniform(0, 100), 2)

    def choose(self, choices: Sequence[Any], rng: solvers.HashRandom) -> Any:
        if not choices:
            return ""
        mood = solvers.sentiment(self.question)
        if mood is not None:
            for choice in choices:
                if isinstance(choice, str) and choice.lower().startswith(mood[:3]):
                    return choice
        if self.solution is not None:
            for choice in choices:
                if str(choice).lower() == str(self.solution).lower():
                    return choice
        return choices[rng.randrange(len(choices))]

    def sequence(self, spec: TypeSpec, name: str, path: str, rng: solvers.HashRandom) -> list[Any]:
        if spec.kind == "tuple" and spec.args and spec.args[-1].kind != "ellipsis":
            return [self.generate(t, name, f"{path}[{i}]") for i, t in enumerate(spec.args)]
        item = spec.args[0] if spec.args else TypeSpec("str")
        if item.kind == "str":
            words = self.words[:3] or ["item"]
            return [*words, *(f"{words[0]} {i}" for i in range(2, 4 - len(words) + 1))][:3]
        values = [self.generate(item, name, f"{path}[{i}]") for i in range(2 + rng.randrange(2))]
        if spec.kind == "set":
            unique = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            return unique
        return values

    def mapping(self, spec: TypeSpec, name: str, path: str) -> dict[Any, Any]:
        key_type = spec.args[0] if spec.args else TypeSpec("str")
        value_type = spec.args[1] if len(spec.args) > 1 else TypeSpec("str")
        keys = self.words[:2] or ["key"]
        if key_type.kind == "int":
            keys = [1, 2]
        return {k: self.generate(value_type, str(k), f"{path}.{k}") for k in keys}


def _wants_expression(name: str) -> bool:
    return any(k in name.lower() for k in ("expr", "formula", "equation", "math", "calc"))


def _last_observation(trajectory: Sequence[dict[str, Any]]) -> Any:
    """The last observation of a real tool (not ``finish``, not an error), parsed."""
    for step in reversed(trajectory):
        obs = step.get("observation")
        if obs is None or step.get("tool_name") == "finish" or obs.startswith("Execution error"):
            continue
        try:
            return json.loads(obs)
        except ValueError:
            return obs
    return None
