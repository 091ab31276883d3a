"""Every constructor parameter of a detector with its default, type and one-line meaning.

The meaning comes from the numpy-style ``Parameters`` section of the class docstring
(and of its base classes, for parameters passed on as ``**kwargs``). A detector named
by a ``"module:Class"`` path is read from its source file with :mod:`ast`, without
importing it, so ``adscore params toll`` does not load torch; anything the static
reading cannot follow (a class made at run time, several base classes, a base class
it cannot locate) falls back to importing the class and asking :mod:`inspect`.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_NO_DEFAULT = object()
_TYPE_TAIL = re.compile(r",?\s*(optional\b.*|default\b.*|\(default.*)$", re.IGNORECASE)
_MARKUP = re.compile(r"``?([^`]+)``?|:\w+:`~?([^`]+)`")


@dataclass(frozen=True)
class ParameterDoc:
    """One constructor parameter; ``default`` is the value, or its source text when not a literal."""

    name: str
    default: object
    type: str
    description: str
    required: bool = False


class _NotStatic(Exception):
    """The source cannot be followed without importing it."""


def describe_detector(target) -> list:
    """:class:`ParameterDoc` for every parameter of ``target`` (a class or a ``"module:Class"`` path)."""
    if isinstance(target, str):
        module, _, qualname = target.partition(":")
        try:
            return _static_parameters(module, qualname)
        except (_NotStatic, OSError, SyntaxError, ImportError, ValueError):
            target = getattr(importlib.import_module(module), qualname)
    return _inspected_parameters(target)


# --------------------------------------------------------------------------
# numpy docstrings


def parse_parameters_section(docstring: str | None) -> dict:
    """name -> (type, one-line meaning) from a numpy docstring's ``Parameters`` section."""
    if not docstring:
        return {}
    lines = inspect.cleandoc(docstring).splitlines()
    start = _section_start(lines, "Parameters")
    if start is None:
        return {}
    entries, name_line, body = {}, None, []
    for line in lines[start:]:
        if line and not line[0].isspace():
            if _is_section_header(lines, line):
                break
            _add_entry(entries, name_line, body)
            name_line, body = line, []
        elif line.strip():
            body.append(line.strip())
    _add_entry(entries, name_line, body)
    return entries


def _section_start(lines, title):
    for i in range(len(lines) - 1):
        if lines[i].strip() == title and set(lines[i + 1].strip()) == {"-"}:
            return i + 2
    return None


def _is_section_header(lines, line) -> bool:
    index = lines.index(line)
    return index + 1 < len(lines) and set(lines[index + 1].strip()) == {"-"} and bool(lines[index + 1].strip())


def _add_entry(entries, name_line, body) -> None:
    if name_line is None:
        return
    names, _, type_text = name_line.partition(":")
    type_text = _TYPE_TAIL.sub("", type_text.strip()).strip().rstrip(",")
    meaning = first_sentence(" ".join(body))
    for name in names.split(","):
        name = name.strip().lstrip("*")
        if name.isidentifier():
            entries.setdefault(name, (type_text, meaning))


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` (at most ``limit`` characters), without reStructuredText markup."""
    text = _MARKUP.sub(lambda m: m.group(1) or m.group(2), text).strip()
    match = re.search(r"(?<![.]\w)(?<=[a-z0-9)\]])\.(\s+(?=[A-Z(])|$)", text)
    sentence = text[:match.start() + 1] if match else text
    return sentence if len(sentence) <= limit else sentence[:limit - 3].rstrip() + "..."


# --------------------------------------------------------------------------
# by inspection (the class is imported)


def _inspected_parameters(cls) -> list:
    docs = {}
    for klass in cls.__mro__:
        _merge_docs(docs, parse_parameters_section(klass.__dict__.get("__doc__")))
    params = []
    for name, param in inspect.signature(cls).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = _NO_DEFAULT if param.default is param.empty else param.default
        params.append(_doc(name, default, docs))
    return params


def _merge_docs(docs: dict, more: dict) -> None:
    """Add ``more`` to ``docs``; a subclass's entry wins unless it left the meaning out."""
    for name, (type_text, meaning) in more.items():
        if name not in docs:
            docs[name] = (type_text, meaning)
        elif not docs[name][1]:
            docs[name] = (docs[name][0] or type_text, meaning)


def _doc(name, default, docs) -> ParameterDoc:
    type_text, meaning = docs.get(name, ("", ""))
    required = default is _NO_DEFAULT
    if not type_text and not required and default is not None:
        type_text = type(default).__name__
    return ParameterDoc(name, None if required else default, type_text, meaning, required)


# --------------------------------------------------------------------------
# from the source (nothing imported)


def _static_parameters(module: str, qualname: str) -> list:
    chain = _class_chain(module, qualname)
    docs, params, collecting = {}, {}, True
    for found_in, node in chain:
        _merge_docs(docs, parse_parameters_section(ast.get_docstring(node, clean=False)))
        init = _init_of(node)
        if init is None or not collecting:
            continue
        for name, default in _init_parameters(init, found_in):
            params.setdefault(name, default)
        collecting = init.args.kwarg is not None  # **kwargs: the bases' parameters are taken too
    if collecting:
        raise _NotStatic("no __init__ without **kwargs in the classes the source shows")
    return [_doc(name, default, docs) for name, default in params.items()]


def _class_chain(module: str, qualname: str, depth: int = 0) -> list:
    """(module, ClassDef) of the class and its single-inheritance bases, as far as the source shows."""
    if depth > 12 or "." in qualname:
        raise _NotStatic(qualname)
    found_in, node = _find_class(module, qualname)
    chain = [(found_in, node)]
    if node.keywords:
        raise _NotStatic(f"{qualname} has a metaclass")
    init = _init_of(node)
    if node.bases and (init is None or init.args.kwarg is not None):  # the bases' parameters are needed
        if len(node.bases) > 1:  # which base's __init__ runs is the MRO's business: ask inspect
            raise _NotStatic(f"{qualname} has several bases and takes their parameters")
        base = _resolve_name(found_in, node.bases[0])
        if base is not None:
            chain += _class_chain(*base, depth=depth + 1)
    return chain


def _find_class(module: str, name: str):
    tree = _module_tree(module)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
    imported = _imported_from(module, tree, name)
    if imported is None:
        raise _NotStatic(f"{module} has no class {name}")
    return _find_class(*imported)


def _resolve_name(module: str, expr):
    """(module, class name) that a base-class expression refers to, or None (e.g. ``object``)."""
    if isinstance(expr, ast.Name):
        if expr.id == "object":
            return None
        tree = _module_tree(module)
        if any(isinstance(n, ast.ClassDef) and n.name == expr.id for n in tree.body):
            return module, expr.id
        imported = _imported_from(module, tree, expr.id)
        if imported is None:
            raise _NotStatic(f"cannot locate base class {expr.id} of a class in {module}")
        return imported
    raise _NotStatic(f"base class {ast.unparse(expr)} in {module}")


def _imported_from(module: str, tree, name: str):
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _absolute(module, node), alias.name
    return None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _is_package(module: str) -> bool:
    return _source_file(module).name == "__init__.py"


@lru_cache(maxsize=64)
def _source_file(module: str) -> Path:
    """The ``.py`` file of ``module``, found without running any package's ``__init__`` where possible."""
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)  # a top-level name is found without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0])
        for part in parts:
            path = path / part
        for candidate in (path / "__init__.py", path.with_suffix(".py")):
            if candidate.is_file():
                return candidate
    elif spec is not None and not parts and spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin)
    # a package mapped elsewhere (setuptools package-dir): ask the import system, which imports parents
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise _NotStatic(f"no Python source for {module}")
    return Path(spec.origin)


@lru_cache(maxsize=64)
def _module_tree(module: str):
    path = _source_file(module)
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _init_of(node: ast.ClassDef):
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            return item
    return None


def _init_parameters(init: ast.FunctionDef, module: str):
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]  # without self
    defaults = [_NO_DEFAULT] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    for arg, default in pairs:
        yield arg.arg, _NO_DEFAULT if default is None or default is _NO_DEFAULT else _literal(default, module)


def _literal(node, module: str):
    """The value of a default: a literal, or a module-level constant assigned a literal."""
    if isinstance(node, ast.Name):
        for statement in _module_tree(module).body:
            if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == node.id):
                node = statement.value
                break
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _SourceText(ast.unparse(node))


class _SourceText(str):
    """A default that is not a literal, shown as its source text."""

    def __repr__(self):
        return str(self)
