"""Request bodies in, response bodies out. Sans-IO.

Parsing uses the stdlib expat parser directly, with every DTD feature refused: a body with a
DOCTYPE or an ENTITY declaration is MalformedXML, so neither entity expansion ("billion
laughs") nor external entities can happen. Any other defect is MalformedXML too; nothing else
escapes `parse`.

Rendering has no namespaces (the SDK finds elements by bare name), booleans are
`true`/`false`, integers plain, and characters XML 1.0 cannot carry become U+FFFD so the
document always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import NoReturn
from xml.parsers import expat

from livechannel.errors import MalformedXML

# Characters outside the XML 1.0 `Char` production (§2.2).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

XmlNode = tuple[str, object]  # (tag, str | int | bool | None | list[XmlNode])


class _Refused(Exception):
    pass


def _refuse(*_args: object) -> NoReturn:
    raise _Refused


def parse(body: bytes) -> ET.Element:
    """Parse a request body into an element tree; raise only MalformedXML."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.StartElementHandler = lambda tag, attrs: builder.start(tag, attrs)
    parser.EndElementHandler = lambda tag: builder.end(tag)
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
        root = builder.close()
    except _Refused:
        raise MalformedXML("DOCTYPE and ENTITY declarations are not accepted") from None
    except (expat.ExpatError, ValueError, AssertionError, UnicodeError) as e:
        raise MalformedXML(f"the XML body is not well-formed: {e}") from None
    return root


def child_text(parent: ET.Element, tag: str) -> str | None:
    """Text of the first child `tag` ("" when empty), None when the child is absent."""
    node = parent.find(tag)
    if node is None:
        return None
    return (node.text or "").strip()


def _escape(text: str) -> str:
    text = _NOT_XML_CHAR.sub("\ufffd", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;")  # a literal CR would be read back as LF (XML 1.0 2.11)


def _render_node(tag: str, value: object, out: list[str]) -> None:
    if isinstance(value, list):
        out.append(f"<{tag}>")
        for child_tag, child_value in value:
            _render_node(child_tag, child_value, out)
        out.append(f"</{tag}>")
        return
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = _escape(str(value))
    out.append(f"<{tag}>{text}</{tag}>")


def render(root: XmlNode) -> bytes:
    """`("A", [("B", 1), ("C", "x")])` -> `<?xml ...?>\\n<A><B>1</B><C>x</C></A>`."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _render_node(root[0], root[1], out)
    return "".join(out).encode()
