"""Notebook parameters: read the cell tagged ``parameters``, type each name, validate and convert values.

Everything here runs *before* a kernel starts, so a typo in ``-p`` or in ``reports.yml`` costs
milliseconds, not a kernel start-up and a half-executed notebook.

Convention for the ``parameters`` cell (one simple assignment per parameter, literal defaults only)::

    dataset = "../data/sample"      # path: folder of the dataset (relative to the notebook)
    event_date = "2022-08-05"       # date: first day of the outage
    region = "all"                  # inferred: str
    weeks = 4                       # inferred: int
    min_share = 0.05                # inferred: float
    by_chain = False                # inferred: bool
    regions = ["Toronto", "Ottawa"] # inferred: list[str]
    horizons: list[int] = []        # annotation wins (an empty list would otherwise be list[str])
    chain: str | None = None        # nullable: None needs an annotation

The type comes from, in order: an annotation (``str int float bool date dt.date datetime.date Path
pathlib.Path list[str] list[int]``, optionally ``| None`` / ``Optional[...]``); else a type tag at the
start of the trailing comment (``# date``, ``# path``, ``# int: ...`` -- the tag must be followed by the
end of the comment, ``:``, ``-``, ``,`` or ``;`` so that prose like ``# date range length`` is not a tag);
else the type of the literal default. ``date`` values are ISO strings (``"2022-08-05"``) inside the
notebook -- the runner validates them and injects ISO strings, so the notebook code is the same whether
the value came from its default or from the command line. ``path`` values are strings; relative values
given on the command line are resolved against the current directory, relative values in ``reports.yml``
against that file's folder, and defaults stay relative to the notebook's folder (the kernel runs there).

Command-line strings (``-p KEY=VALUE``) are converted to the declared type: dates ``2022-08-05``;
lists ``a,b`` or JSON ``["a", "b"]``; numbers; booleans ``true/false/yes/no/on/off/1/0``; nullable
parameters accept ``null``/``none``. A single value where a list is declared is a one-item list
(``-p controls=none`` -> ``["none"]``; in YAML ``controls: none`` too).
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
import io
import json
import math
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cannabis_market.errors import InputError

TYPES: tuple[str, ...] = ("str", "int", "float", "bool", "date", "path", "list[str]", "list[int]")

_ANNOTATIONS: dict[str, str] = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "date": "date",
    "dt.date": "date",
    "datetime.date": "date",
    "Path": "path",
    "pathlib.Path": "path",
    "list[str]": "list[str]",
    "List[str]": "list[str]",
    "typing.List[str]": "list[str]",
    "list[int]": "list[int]",
    "List[int]": "list[int]",
    "typing.List[int]": "list[int]",
}
_TAG_RE = re.compile(
    r"^#\s*(?:type\s*:\s*)?(str|int|float|bool|date|path|list\[str\]|list\[int\])(\s*\|\s*None)?"
    r"(?:\s*$|\s*[:;,]|\s+-)\s*(.*)$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NULLS = {"null", "none"}
_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its name, declared type, default and the comment next to it."""

    name: str
    type: str
    default: Any
    nullable: bool = False
    help: str = ""
    line: int = 0

    @property
    def type_label(self) -> str:
        return f"{self.type} | None" if self.nullable else self.type

    def describe(self) -> str:
        """``name: type = default  # help`` -- used in error messages and ``--list``."""
        text = f"{self.name}: {self.type_label} = {self.default!r}"
        return f"{text}  # {self.help}" if self.help else text


# --------------------------------------------------------------------------------------------- reading


def parameters_cell(nb: Mapping[str, Any]) -> tuple[int, str] | None:
    """Index and source of the first code cell tagged ``parameters`` (None when there is none)."""
    for i, cell in enumerate(nb.get("cells", [])):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "code" and "parameters" in tags:
            src = cell.get("source", "")
            return i, "".join(src) if isinstance(src, list) else str(src)
    return None


def read_parameters(notebook: str | Path) -> dict[str, Param]:
    """Parse the ``parameters`` cell of a notebook file into ``{name: Param}`` (in cell order).

    A notebook without such a cell has no parameters. Raises InputError naming the notebook and line
    when the cell cannot be understood (non-literal default, unsupported type, default of the wrong type).
    """
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"notebook {path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"notebook {path}: cannot be read as a Jupyter notebook ({exc})") from None
    if not _is_notebook(nb):
        raise InputError(
            f"notebook {path}: not a Jupyter notebook (expected a JSON object with a 'cells' list)"
        )
    found = parameters_cell(nb)
    if found is None:
        return {}
    return parse_parameters_source(found[1], where=f"notebook {path.name}, parameters cell")


def _is_notebook(nb: Any) -> bool:
    """Just enough structure for the runner to read cells safely (nbformat validates the rest)."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells", []), list):
        return False
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict) or not isinstance(cell.get("metadata") or {}, dict):
            return False
        src = cell.get("source", "")
        if not (isinstance(src, str) or (isinstance(src, list) and all(isinstance(x, str) for x in src))):
            return False
        if not isinstance((cell.get("metadata") or {}).get("tags") or [], list):
            return False
    return True


def parse_parameters_source(source: str, where: str = "parameters cell") -> dict[str, Param]:
    """Parse the source of a parameters cell (see the module docstring for the convention)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InputError(f"{where}, line {exc.lineno}: not valid Python ({exc.msg})") from None
    comments = _comments_by_line(source)
    params: dict[str, Param] = {}
    problems: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Pass):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring-like string
        try:
            param = _parse_statement(node, comments.get(node.end_lineno or node.lineno, ""))
        except InputError as exc:
            problems.append(f"line {node.lineno}: {exc}")
            continue
        if param.name in params:
            problems.append(f"line {node.lineno}: parameter '{param.name}' is assigned twice")
        params[param.name] = param
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))
    return params


def _comments_by_line(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string
    except (tokenize.TokenError, IndentationError):
        pass
    return out


def _parse_statement(node: ast.stmt, comment: str) -> Param:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        name, value_node, ann = node.target.id, node.value, node.annotation
    elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name, value_node, ann = node.targets[0].id, node.value, None
    else:
        raise InputError(
            "only simple assignments 'name = literal' (optionally annotated) are allowed in the parameters cell"
        )
    if name.startswith("_"):
        raise InputError(f"parameter '{name}': names starting with '_' are reserved")
    try:
        default = ast.literal_eval(value_node)
    except (ValueError, SyntaxError, TypeError):
        raise InputError(
            f"parameter '{name}': the default must be a literal (a string, number, bool, None or list), "
            f"not '{ast.unparse(value_node)}'; write dates as ISO strings with a '# date' comment"
        ) from None

    help_text = ""
    tag = _TAG_RE.match(comment) if comment else None
    if comment and not tag:
        help_text = comment.lstrip("#").strip()
    if ann is not None:
        ptype, nullable = _annotation_type(name, ann)
        if tag:
            help_text = tag.group(3).strip()
    elif tag:
        ptype, nullable, help_text = tag.group(1), bool(tag.group(2)), tag.group(3).strip()
    elif default is None:
        raise InputError(f"parameter '{name}': a None default needs a type, e.g. '{name}: str | None = None'")
    else:
        ptype, nullable = _infer_type(name, default), False
    if default is None:
        nullable = True
    else:
        try:
            default = _check_value(ptype, default)
        except ValueError as exc:
            raise InputError(
                f"parameter '{name}' is declared {ptype} but its default {default!r} {exc}"
            ) from None
    return Param(name, ptype, default, nullable, help_text, node.lineno)


def _annotation_type(name: str, ann: ast.expr) -> tuple[str, bool]:
    text = ast.unparse(ann).replace(" ", "").replace("'", "").replace('"', "")
    nullable = False
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", text)
    if m:
        text, nullable = m.group(1), True
    parts = text.split("|")
    if len(parts) == 2 and "None" in parts:
        text, nullable = parts[0] if parts[1] == "None" else parts[1], True
    if text not in _ANNOTATIONS:
        raise InputError(
            f"parameter '{name}': unsupported annotation '{ast.unparse(ann)}' "
            f"(supported: {', '.join(sorted(set(_ANNOTATIONS)))}, optionally '| None')"
        )
    return _ANNOTATIONS[text], nullable


def _infer_type(name: str, default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list | tuple):
        if all(isinstance(v, str) for v in default):
            return "list[str]"  # includes the empty list
        if all(isinstance(v, int) and not isinstance(v, bool) for v in default):
            return "list[int]"
    raise InputError(
        f"parameter '{name}': cannot infer a supported type from default {default!r} "
        f"(supported: {', '.join(TYPES)}); annotate it"
    )


def _check_value(ptype: str, value: Any) -> Any:
    """Return ``value`` in canonical form for ``ptype`` or raise ValueError('is not ...')."""
    if ptype == "str":
        if isinstance(value, str):
            return value
        raise ValueError("is not a string")
    if ptype == "path":
        if isinstance(value, str | Path):
            return str(value)
        raise ValueError("is not a path string")
    if ptype == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("is not true/false")
    if ptype == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError("is not a whole number")
    if ptype == "float":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ValueError("is not a finite number")
    if ptype == "date":
        if isinstance(value, dt.datetime):
            raise ValueError("is a date-time, not a date (YYYY-MM-DD)")
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, str) and _DATE_RE.match(value):
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                raise ValueError("is not a valid calendar date") from None
        raise ValueError("is not an ISO date (YYYY-MM-DD)")
    if ptype == "list[str]":
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError("is not a list of strings")
    if ptype == "list[int]":
        if isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return list(value)
        raise ValueError("is not a list of whole numbers")
    raise ValueError(f"has unknown type {ptype}")


# ------------------------------------------------------------------------------------------ converting


def convert_string(param: Param, raw: str) -> Any:
    """Convert a command-line string to ``param``'s type (canonical form); ValueError says what was expected."""
    text = raw.strip()
    if param.nullable and text.lower() in _NULLS:
        return None
    t = param.type
    if t in ("str", "path"):
        return raw
    if t == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expects true/false (also yes/no, on/off, 1/0)")
    if t == "int":
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ValueError("expects a whole number, e.g. 4") from None
    if t == "float":
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            raise ValueError("expects a number, e.g. 0.5") from None
        if not math.isfinite(value):
            raise ValueError("expects a finite number")
        return value
    if t == "date":
        try:
            return _check_value("date", text)
        except ValueError:
            raise ValueError("expects a date as YYYY-MM-DD, e.g. 2022-08-05") from None
    if t in ("list[str]", "list[int]"):
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise ValueError('expects a JSON list, e.g. ["a", "b"], or comma-separated values') from None
            try:
                return _check_value(t, items)
            except ValueError as exc:
                raise ValueError(f"got a JSON list that {exc}") from None
        items = [s.strip() for s in text.split(",") if s.strip()]
        if t == "list[str]":
            return items
        try:
            return [int(s.replace("_", "")) for s in items]
        except ValueError:
            raise ValueError("expects comma-separated whole numbers, e.g. 1,4,12") from None
    raise ValueError(f"has unknown type {t}")


def coerce_value(param: Param, value: Any) -> Any:
    """Check/convert a typed value (e.g. from YAML) to ``param``'s type; strings go through convert_string."""
    if value is None:
        if param.nullable:
            return None
        raise ValueError("may not be null")
    if isinstance(value, str) and param.type not in ("str", "path"):
        return convert_string(param, value)
    if param.type.startswith("list[") and not isinstance(value, list | tuple):
        value = [value]  # a single value where a list is declared (YAML `controls: none`)
    try:
        return _check_value(param.type, value)
    except ValueError as exc:
        raise ValueError(f"expects {param.type}, but {value!r} {exc}") from None


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """Split ``["KEY=VALUE", ...]`` (from ``-p``) into a dict; later keys win. InputError on bad syntax."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            hint = (
                f"; papermill's '-p {key} VALUE' is written '-p {key}=VALUE' here"
                if key and key.isidentifier()
                else ""
            )
            raise InputError(f"-p {item!r}: expected KEY=VALUE, e.g. -p region=Toronto{hint}")
        out[key] = value
    return out


def validate(
    params: Mapping[str, Param],
    supplied: Mapping[str, Any],
    *,
    where: str,
    source: str,
    from_strings: bool = False,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Validate ``supplied`` against the declared ``params``; return the converted values.

    ``where`` names the notebook (for messages), ``source`` where the values came from (``-p``,
    ``reports.yml job 'x'``). Strings are converted when ``from_strings``; relative ``path`` values are
    resolved against ``base_dir``. Every problem is reported at once, with the list of valid parameters.
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in supplied.items():
        param = params.get(key)
        if param is None:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown parameter '{key}'{hint}")
            continue
        try:
            converted = convert_string(param, value) if from_strings else coerce_value(param, value)
        except ValueError as exc:
            problems.append(f"parameter '{key}' ({param.type_label}): {value!r} is invalid: {exc}")
            continue
        if param.type == "path" and converted is not None and base_dir is not None:
            p = Path(str(converted)).expanduser()
            converted = str(p if p.is_absolute() else (base_dir / p).resolve())
        out[key] = converted
    if problems:
        lines = [f"{where}: bad parameter{'s' if len(problems) > 1 else ''} from {source}:"]
        lines += [f"  - {p}" for p in problems]
        lines.append(describe_parameters(params, header="valid parameters"))
        raise InputError("\n".join(lines))
    return out


def describe_parameters(params: Mapping[str, Param], header: str = "parameters") -> str:
    """Multi-line listing ``name: type = default`` for messages and ``--list``."""
    if not params:
        return f"{header}: none (the notebook has no cell tagged 'parameters')"
    return "\n".join([f"{header}:"] + [f"    {p.describe()}" for p in params.values()])


def to_literal(value: Any) -> Any:
    """JSON-friendly form of a parameter value (dates as ISO strings, paths as strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
