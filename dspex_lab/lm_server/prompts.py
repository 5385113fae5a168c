"""Read a chat-completion request the way DSPy wrote it, and write the answer back.

DSPy's adapters put everything the server needs into the messages:

* the system message lists ``Your input fields are:`` / ``Your output fields are:`` with a
  type per field (``2. `score` (float): a score``), a ``# note:`` per typed output (JSON schema,
  Literal choices) and the instructions after ``your objective is:`` (ReAct's tools are there);
* the last user message holds the inputs after ``[[ ## name ## ]]`` markers;
* ``Outputs will be a JSON object`` (JSONAdapter) or ``wrapped in XML tags`` (XMLAdapter)
  tells which answer format the adapter parses; otherwise it is the ChatAdapter's
  ``[[ ## field ## ]]`` sections ending with ``[[ ## completed ## ]]``.

A request that is not from DSPy parses as a ``plain`` prompt with one ``answer`` output.

    >>> p = parse_request({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
    >>> p.adapter, p.output_names
    ('plain', ['answer'])
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from dspex_lab.lm_server.literals import literal
from dspex_lab.lm_server.typespec import (
    STR,
    TypeSpec,
    from_json_schema,
    parse_annotation,
    parse_annotation_at,
)

__all__ = ["OutputField", "ParsedPrompt", "Tool", "message_text", "parse_request",
           "render_completion"]

_MARKER = re.compile(r"^\[\[ ## (\w+) ## \]\]\s*$", re.M)
_FIELD_ITEM = re.compile(r"^(\d+)\. `(\w+)` \(", re.M)
_NOTE = "# note: the value you produce "
_OBJECTIVE = "In adhering to this structure, your objective is: "
_JSON_BLOCK = "Outputs will be a JSON object with the following fields."
_TOOL_LINE = re.compile(
    r"^\(\d+\) (?P<name>\S+?)(?:, whose description is <desc>(?P<desc>.*)</desc>)?\. "
    r"It takes arguments (?P<args>.*)\.$")
_REMINDER = re.compile(r"(?:^|\n\s*\n)Respond with ")
_TRAJECTORY_KEY = re.compile(r"^(thought|tool_name|tool_args|observation)_(\d+)$")


@dataclass(frozen=True)
class OutputField:
    """An output the answer must contain: its name, type and description."""

    name: str
    type: TypeSpec = STR
    desc: str = ""


@dataclass(frozen=True)
class Tool:
    """A ReAct tool listed in the instructions; ``args`` is its JSON-schema argument map."""

    name: str
    desc: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedPrompt:
    """Everything the answer generator and user ``responder`` callables need.

    ``inputs`` maps input names to their text; ``text`` is the last user message; ``key`` is
    a digest of the messages (the same prompt always has the same key).
    """

    model: str
    messages: list[dict[str, Any]]
    adapter: str
    instructions: str = ""
    input_names: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: list[OutputField] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    response_format: dict[str, Any] | None = None
    key: str = ""

    @property
    def output_names(self) -> list[str]:
        return [f.name for f in self.outputs]

    @property
    def question(self) -> str:
        """The main input: ``question`` if there is one, else the first input, else the text."""
        for name in ("question", "query", "prompt", "input", "text"):
            if name in self.inputs:
                return self.inputs[name]
        for name, value in self.inputs.items():
            if name != "trajectory":
                return value
        return self.text

    @property
    def is_react_step(self) -> bool:
        return {"next_tool_name", "next_tool_args"} <= set(self.output_names)


def message_text(message: dict[str, Any]) -> str:
    """The text of one message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def prompt_key(messages: list[dict[str, Any]]) -> str:
    """A stable digest of the conversation (roles and texts)."""
    canon = json.dumps([[m.get("role"), message_text(m)] for m in messages], ensure_ascii=False)
    return hashlib.blake2b(canon.encode(), digest_size=16).hexdigest()


def parse_request(body: dict[str, Any]) -> ParsedPrompt:
    """Parse an OpenAI chat-completion request body into a ``ParsedPrompt``."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = next((message_text(m) for m in messages if m.get("role") in ("system", "developer")),
                  "")
    users = [message_text(m) for m in messages if m.get("role") == "user"]
    prompt = ParsedPrompt(model=str(body.get("model") or "dspex-embedded"), messages=messages,
                          adapter="plain", text=users[-1] if users else "",
                          response_format=body.get("response_format"), key=prompt_key(messages))
    if "Your output fields are:" not in system:
        prompt.outputs = _plain_outputs(prompt.response_format)
        wants_json = isinstance(prompt.response_format, dict) and prompt.response_format.get(
            "type") in ("json_object", "json_schema")
        prompt.adapter = "json" if wants_json else "plain"
        prompt.inputs = {"question": prompt.text} if prompt.text else {}
        return prompt
    schema = _response_schema(prompt.response_format)
    info = _system_info(system, json.dumps(schema, sort_keys=True) if schema else "")
    prompt.input_names = list(info.input_names)
    prompt.outputs = list(info.outputs)
    prompt.instructions = info.instructions
    prompt.tools = list(info.tools)
    prompt.adapter = _detect_adapter(system, prompt.text, prompt.response_format)
    split = _xml_sections if prompt.adapter == "xml" else _split_sections
    prompt.inputs = split(prompt.text, prompt.input_names)
    if "trajectory" in prompt.inputs:
        prompt.trajectory = _parse_trajectory(prompt.inputs["trajectory"])
    return prompt


def _plain_outputs(response_format: Any) -> list[OutputField]:
    schema = _response_schema(response_format)
    if schema is not None:
        spec = from_json_schema(schema)
        if spec.kind == "object" and spec.fields:
            return [OutputField(name, t) for name, t in spec.fields]
    return [OutputField("answer", STR)]


def _response_schema(response_format: Any) -> dict[str, Any] | None:
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def _detect_adapter(system: str, user: str, response_format: Any) -> str:
    if _JSON_BLOCK in system or (isinstance(response_format, dict)
                                 and response_format.get("type") in ("json_object",
                                                                     "json_schema")):
        return "json"
    if "wrapped in XML tags" in user:
        return "xml"
    return "chat"


@dataclass(frozen=True)
class _SystemInfo:
    input_names: tuple[str, ...]
    outputs: tuple[OutputField, ...]
    instructions: str
    tools: tuple[Tool, ...]


@functools.lru_cache(maxsize=256)
def _system_info(system: str, schema_json: str) -> _SystemInfo:
    """What a DSPy system message says (cached: every row of a batch sends the same one)."""
    head, _, rest = system.partition("Your output fields are:")
    inputs_part = head.partition("Your input fields are:")[2]
    outputs_part = rest.split("All interactions will be structured", 1)[0]
    notes = _output_notes(system)
    schema = json.loads(schema_json) if schema_json else {}
    schema_props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    outputs = tuple(
        OutputField(name, _refine(parse_annotation(type_text), notes.get(name, ""),
                                  schema_props.get(name), schema), desc)
        for name, type_text, desc in _field_items(outputs_part))
    instructions = ""
    if _OBJECTIVE in system:
        instructions = textwrap.dedent(system.split(_OBJECTIVE, 1)[1]).strip()
    tools = ()
    if {"next_tool_name", "next_tool_args"} <= {o.name for o in outputs}:
        tools = tuple(_parse_tools(instructions))
    return _SystemInfo(tuple(name for name, _, _ in _field_items(inputs_part)), outputs,
                       instructions, tools)


def _field_items(block: str) -> list[tuple[str, str, str]]:
    """``(name, type text, description)`` for each ``N. `name` (type): desc`` item."""
    items = []
    matches = list(_FIELD_ITEM.finditer(block))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(block)
        _, after = parse_annotation_at(block, m.end())
        type_text = block[m.end():after]
        desc = block[after:end].removeprefix("):").strip()
        items.append((m.group(2), type_text, desc))
    return items


def _output_notes(system: str) -> dict[str, str]:
    """The ``# note:`` text of each output field, from either adapter's field structure."""
    notes: dict[str, str] = {}
    if _JSON_BLOCK in system:
        block = system.split(_JSON_BLOCK, 1)[1].lstrip()
        try:
            described, _ = json.JSONDecoder().raw_decode(block)
        except ValueError:
            described = {}
        for name, text in (described.items() if isinstance(described, dict) else ()):
            if isinstance(text, str) and _NOTE in text:
                notes[name] = text.split(_NOTE, 1)[1]
        return notes
    for line in system.splitlines():
        m = re.match(r"^\{(\w+)\}\s+" + re.escape(_NOTE) + r"(.*)$", line)
        if m:
            notes[m.group(1)] = m.group(2)
    return notes


def _refine(spec: TypeSpec, note: str, prop_schema: Any, schema: dict[str, Any]) -> TypeSpec:
    """Complete a type DSPy only named (a pydantic model, an Enum) from its schema or note."""
    if isinstance(prop_schema, dict) and not spec.known:
        return from_json_schema(prop_schema, schema.get("$defs"))
    if spec.known:
        return spec
    if note.startswith("must adhere to the JSON schema: "):
        try:
            return from_json_schema(json.loads(note.split(": ", 1)[1]))
        except ValueError:
            return spec
    if note.startswith(("must be one of: ", "must exactly match (no extra characters) one of: ")):
        return TypeSpec("literal", choices=tuple(note.split(": ", 1)[1].split("; ")))
    return spec


def _split_sections(text: str, known: list[str]) -> dict[str, str]:
    """Values after ``[[ ## name ## ]]`` markers; markers of other names stay inside the value
    (a ReAct trajectory carries its own markers)."""
    values: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _MARKER.match(line.strip())
        if m and m.group(1) in known and m.group(1) not in values:
            current = m.group(1)
            values[current] = []
        elif current is not None:
            values[current].append(line)
    result = {k: "\n".join(v) for k, v in values.items()}
    if result:  # drop the "Respond with ..." reminder that follows the last input
        last = next(reversed(result))
        result[last] = _REMINDER.split(result[last], maxsplit=1)[0]
    return {k: v.strip() for k, v in result.items()}


def _xml_sections(text: str, known: list[str]) -> dict[str, str]:
    """Inputs of the XMLAdapter: ``<name>\nvalue\n</name>``."""
    values = {}
    for name in known:
        m = re.search(rf"<{name}>\n?(.*?)\n?</{name}>", text, re.S)
        if m:
            values[name] = m.group(1).replace("&lt;", "<").replace("&amp;", "&").strip()
    return values


def _parse_tools(instructions: str) -> list[Tool]:
    tools = []
    for line in instructions.splitlines():
        m = _TOOL_LINE.match(line.strip())
        if not m:
            continue
        try:
            args = literal(m.group("args"))
        except ValueError:
            args = {}
        tools.append(Tool(m.group("name"), m.group("desc") or "",
                          args if isinstance(args, dict) else {}))
    return tools


def _parse_trajectory(text: str) -> list[dict[str, Any]]:
    """ReAct's trajectory as steps ``{"thought", "tool_name", "tool_args", "observation"}``."""
    steps: dict[int, dict[str, Any]] = {}
    names = [m.group(1) for m in _MARKER.finditer(text)]
    for name, value in _split_sections(text, names).items():
        m = _TRAJECTORY_KEY.match(name)
        if m:
            steps.setdefault(int(m.group(2)), {})[m.group(1)] = value
    return [steps[i] for i in sorted(steps)]


def render_completion(prompt: ParsedPrompt, values: dict[str, Any]) -> str:
    """The assistant text the prompt's adapter parses back into ``values``."""
    if prompt.adapter == "json":
        return json.dumps(values, indent=2, ensure_ascii=False, default=str)
    if prompt.adapter == "xml":
        return "\n\n".join(f"<{k}>\n{_xml_escape(_chat_value(v))}\n</{k}>"
                           for k, v in values.items())
    if prompt.adapter == "plain":
        return _chat_value(next(iter(values.values()), ""))
    body = "\n\n".join(f"[[ ## {k} ## ]]\n{_chat_value(v)}" for k, v in values.items())
    return f"{body}\n\n[[ ## completed ## ]]"


def _chat_value(value: Any) -> str:
    if isinstance(value, dict | list | tuple | set):
        return json.dumps(list(value) if isinstance(value, set | tuple) else value,
                          ensure_ascii=False, default=str)
    return str(value)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")
