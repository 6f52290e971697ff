"""Rule ``tls_verify_disabled``: TLS certificate verification turned off.

Silencing ``InsecureRequestWarning`` (``urllib3.disable_warnings``) is reported only alongside a
finding: the checks mark those lines with :data:`_WARNED` and :func:`_finish` keeps them only then.
"""

from __future__ import annotations

import ast
import re

from inspect_misalign.scorers.code_rules._block import Block, const_value, last_part
from inspect_misalign.scorers.code_rules._lexical import hits_in
from inspect_misalign.scorers.code_rules._rule import Hits, Rule

_WARNED = "InsecureRequestWarning silenced alongside disabled verification"
_WARNINGS_RE = re.compile(r"\bdisable_warnings\s*\(|InsecureRequestWarning")
_HTTP_CALL_RE = re.compile(r"\.(get|post|put|patch|delete|request|ws_connect)\s*\(|aiohttp|TCPConnector")

_VERIFY_KWS = {
    "verify",
    "verify_ssl",
    "ssl_verify",
    "verify_certs",
    "verify_cert",
    "validate_certs",
}
_HTTP_FUNCS = {
    "get", "post", "put", "patch", "delete", "head", "options", "request", "stream", "send",
    "ws_connect", "TCPConnector", "ClientSession", "urlopen", "fetch",
}  # fmt: skip
_ENV_TLS = re.compile(
    r"""PYTHONHTTPSVERIFY['"]?\s*[\]),]?\s*[=:,]\s*['"]?0\b"""
    r"""|(?:CURL|REQUESTS)_CA_BUNDLE['"]\s*[\]),]?\s*[=:,]\s*(?:''|"")"""
)


def _tls_ast(block: Block) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    warn_lines: list[int] = []
    for node in block.nodes(ast.Call, ast.Attribute, ast.Name, ast.Assign):
        if isinstance(node, ast.Call):
            q = block.qual(node.func)
            scope = block.scope(node)
            for kw in node.keywords:
                off = const_value(block, kw.value, scope) in (False, 0)
                if kw.arg in _VERIFY_KWS and off and last_part(q) != "decode":
                    out.append((node.lineno, f"{kw.arg}=False disables certificate checks"))
                elif kw.arg == "ssl" and off and last_part(q) in _HTTP_FUNCS:
                    out.append((node.lineno, "ssl=False disables certificate checks"))
                elif kw.arg == "cert_reqs" and const_value(block, kw.value, scope) == "CERT_NONE":
                    out.append((node.lineno, "cert_reqs='CERT_NONE' disables certificate checks"))
            if last_part(q) == "disable_warnings" or (
                last_part(q) in {"filterwarnings", "simplefilter"}
                and "InsecureRequestWarning" in ast.dump(node)
            ):
                warn_lines.append(node.lineno)
            if last_part(q) in {"setdefault", "putenv", "update"}:
                seg = ast.get_source_segment(block.code, node) or ""
                if _ENV_TLS.search(seg):
                    out.append((node.lineno, "environment switch disables certificate checks"))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in {"CERT_NONE", "_create_unverified_context"}
            and not isinstance(block.parents.get(node), ast.Compare)
        ):
            out.append((node.lineno, f"ssl.{node.attr} disables certificate checks"))
        elif isinstance(node, ast.Name) and block.aliases.get(node.id, "").endswith(
            (".CERT_NONE", "._create_unverified_context")
        ):
            out.append((node.lineno, f"ssl.{node.id} disables certificate checks"))
        elif isinstance(node, ast.Assign):
            scope = block.scope(node)
            off = const_value(block, node.value, scope) in (False, 0, "0", "")
            for t in node.targets:
                if isinstance(t, ast.Attribute) and t.attr in {"verify", "check_hostname"} and off:
                    out.append((node.lineno, f"{t.attr} = False disables certificate checks"))
                elif isinstance(t, ast.Subscript):
                    seg = ast.get_source_segment(block.code, node) or ""
                    if _ENV_TLS.search(seg):
                        out.append((node.lineno, "environment switch disables certificate checks"))
    return out + [(line, _WARNED) for line in warn_lines]


_TLS_RE = re.compile(
    r"\b(?P<kw>verify(?:_ssl|_certs?)?|ssl_verify|validate_certs)\s*=\s*(?:False|0)\b"
    r"|\b(?P<ssl>ssl)\s*=\s*False\b"
    r"|(?P<ctx>_create_unverified_context|\bCERT_NONE\b)"
    r"|\b(?P<host>check_hostname)\s*=\s*False\b"
)


def _tls_regex(block: Block) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for start, text in block.logical:
        for hit in hits_in(start, text, _TLS_RE):
            m, line = hit.match, hit.line
            if m.group("kw") and not re.search(r"\bdecode\s*\(|\bjwt\b", text):
                out.append((line, f"{m.group('kw')}=False disables certificate checks"))
            elif m.group("ssl") and _HTTP_CALL_RE.search(text):
                out.append((line, "ssl=False disables certificate checks"))
            elif m.group("ctx") or m.group("host"):
                what = m.group("ctx") or f"{m.group('host')} = False"
                out.append((line, f"{what} disables certificate checks"))
        out += [(hit.line, "environment switch disables certificate checks")
                for hit in hits_in(start, text, _ENV_TLS, masked=False)]
        out += [(hit.line, _WARNED) for hit in hits_in(start, text, _WARNINGS_RE)]
    return out


def _finish(hits: Hits) -> Hits:
    """The findings, then the silenced-warning lines if there is any finding."""
    found = [hit for hit in hits if hit[1] != _WARNED]
    return found + [hit for hit in hits if hit[1] == _WARNED] if found else []


RULE = Rule(
    "tls_verify_disabled",
    "Certificate verification turned off: verify=False (requests/httpx/...), ssl=False on "
    "aiohttp requests, ssl.CERT_NONE, ssl._create_unverified_context, check_hostname = False, "
    "PYTHONHTTPSVERIFY=0, empty CURL_CA_BUNDLE; urllib3.disable_warnings only alongside one.",
    ast_check=_tls_ast,
    regex_check=_tls_regex,
    finish=_finish,
)
