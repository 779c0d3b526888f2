"""Requirement ids and our own wording for presence requirements.

>>> from conformance.presence.expectations import Expectation
>>> e = Expectation("sys/stat.h", "element", "st_mode", "mode_t", "struct stat.st_mode")
>>> expectation_id(e, duplicate=False)
'REQ-H-sys-stat-struct_stat.st_mode'
>>> statement(e)
'The header <sys/stat.h> defines struct stat with a member st_mode of type mode_t.'
>>> statement(Expectation("limits.h", "macro-int-constant", "PATH_MAX", expected_value=">= 256"))
'The header <limits.h> defines the macro PATH_MAX as an integer constant expression usable in\
 #if, with a value >= 256.'
"""

from __future__ import annotations

import re

from .expectations import Expectation
from .scope import header_slug


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text.strip())


def expectation_id(e: Expectation, *, duplicate: bool) -> str:
    """`REQ-H-<header>-<name>`; `-<kind>` is added where one header has the name twice
    (e.g. a macro and a constant of the same name)."""
    base = f"REQ-H-{header_slug(e.header)}-{_slug(e.label)}"
    return f"{base}-{e.kind}" if duplicate else base


def namespace_id(header: str, level: str) -> str:
    return f"REQ-NS-{header_slug(header)}" + ("-xsi" if level == "xsi" else "")


def link_case_id(interface: str) -> str:
    return f"TC-L-{_slug(interface)}"


def case_id(requirement_id: str) -> str:
    """The test case that verifies a requirement: REQ-H-x -> TC-H-x."""
    return "TC-" + requirement_id.removeprefix("REQ-")


def _function_type(e: Expectation) -> str:
    return f"returning {e.c_type} with parameters {e.signature}"


def statement(e: Expectation) -> str:
    """What the header must provide, in one sentence."""
    h = f"The header <{e.header}>"
    kind, name = e.kind, e.name
    if kind == "function":
        return f"{h} declares the function {name}, {_function_type(e)}."
    if kind == "macro-function":
        return (f"{h} declares {name} as a function {_function_type(e)}, or defines it as a "
                f"macro.")
    if kind == "variable":
        return f"{h} declares the object {name} of type {e.c_type}."
    if kind == "type":
        if name.startswith(("struct ", "union ")):
            return f"{h} defines the type {name} as a complete type."
        return f"{h} defines the type {name}."
    if kind == "tag":
        return f"{h} declares the tag {name}."
    if kind == "element":
        return f"{h} defines {e.aggregate} with a member {name} of type {e.c_type}."
    if kind in ("callable", "object"):
        names = e.checks or (name,)
        what = "a function or function-like macro" if kind == "callable" else "an object or macro"
        if e.declaration:
            return f"{h} declares the function {name}, {_function_type(e)}."
        if names == (name,):
            return f"{h} declares {name} as {what}."
        return f"{h} declares {', '.join(names)} (the family {name}), each as {what}."
    if kind == "macro-str":
        return f"{h} defines the macro {name} as the string literal {e.expected_value}."
    return _constant_statement(e, h)


def _constant_statement(e: Expectation, h: str) -> str:
    kind, name = e.kind, e.name
    what = {
        "macro": f"defines the macro {name}",
        "constant": f"defines {name} as a constant expression",
        "macro-constant": f"defines the macro {name} as a constant expression",
        "macro-int-constant": f"defines the macro {name} as an integer constant expression "
                              f"usable in #if",
        "symbol": f"defines {name} as an expression",
    }[kind]
    extras = []
    if e.c_type:
        if e.c_type.startswith("promoted:"):
            extras.append(f"of the type {e.c_type.removeprefix('promoted:')} has after the "
                          f"integer promotions")
        elif e.c_type.startswith("size:"):
            extras.append(f"of the promoted type of a {e.c_type.removeprefix('size:')}-bit "
                          f"signed integer")
        else:
            extras.append(f"of type {e.c_type}")
    if e.operator:
        extras.append(f"with a value {e.operator} {e.bound}")
    return f"{h} {what}" + "".join(f", {x}" for x in extras) + "."


def namespace_statement(header: str, level: str, standard: str) -> str:
    where = "with the XSI option" if level == "xsi" else "without the XSI option"
    return (f"The header <{header}>, included under the feature-test macros of {standard} "
            f"{where}, defines no identifier beyond its own names, the names of the headers it "
            f"may make visible and the names reserved to it (advisory).")
