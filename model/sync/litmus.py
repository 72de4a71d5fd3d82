"""A parser of the kernel's C litmus format (tools/memory-model/litmus-tests) into a Program.

A test is a ``C name`` line, comments in ``(* ... *)``, the ``{ ... }`` init block, functions
``P0(int *x, ...) { ... }`` in a C subset, then the final clauses (``locations [...]``,
``filter (...)``, and one of ``exists``, ``~exists``, ``forall``). Only the function bodies are
C: they go to pycparser with every other line blanked, so that its line numbers are the
file's, and with the kernel types declared on the first line (the ``C name`` line, which is
not C). The rest is parsed here.

A parameter ``int *x`` names the shared location x (herd binds parameters by name): ``*x`` is
the location, ``x`` its address. Loads inside expressions (``if (*z2 == 1)``, plain ``*z2 =
*z1``) become Load instructions into temporaries, left to right, before the statement.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any, NoReturn

from pycparser import c_ast, c_parser

from model.sync.program import (
    BINARY_OPS,
    KERNEL_CONSTANTS,
    QSPINLOCK_FIELDS,
    And,
    Assign,
    Atom,
    Await,
    Binary,
    Bug,
    Const,
    Expr,
    Fence,
    FenceKind,
    Field,
    Final,
    If,
    Instr,
    Load,
    LocRef,
    Not,
    Or,
    Order,
    Program,
    Prop,
    Quantifier,
    Reg,
    RegRef,
    Rmw,
    RmwOp,
    RmwReturns,
    SpinIsLocked,
    SpinLock,
    SpinTrylock,
    SpinUnlock,
    Store,
    Thread,
    Truth,
    Unary,
    Value,
    While,
)
from model.sync.sleep import SLEEPING, Sleepers, lower_sleeping


class LitmusError(ValueError):
    """A malformed litmus test: ``file:line: message``, with the line in the original file
    (``file: message`` when the problem is the whole file)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.message = message


class UnsupportedPrimitive(LitmusError):
    """The test calls a kernel primitive the model does not implement (rcu_read_lock, ...)."""

    def __init__(self, file: str, line: int, primitive: str) -> None:
        super().__init__(file, line, f"unsupported primitive {primitive}")
        self.primitive = primitive


# The kernel types the functions use, declared for pycparser on the (non-C) header line.
_TYPES = (
    "spinlock_t",
    "raw_spinlock_t",
    "arch_spinlock_t",
    "atomic_t",
    "atomic_long_t",
    "u8",
    "u16",
    "u32",
    "u64",
    "s8",
    "s16",
    "s32",
    "s64",
    "bool",
    "uintptr_t",
    "intptr_t",
    "wait_queue_head_t",
    "wait_queue_entry_t",
)
_PRELUDE = " ".join(f"typedef int {t};" for t in _TYPES)

_FENCES: dict[str, FenceKind] = {
    "smp_mb": "mb",
    "smp_rmb": "rmb",
    "smp_wmb": "wmb",
    "smp_mb__before_atomic": "before_atomic",
    "smp_mb__after_atomic": "after_atomic",
    "smp_mb__after_spinlock": "after_spinlock",
}
_SUFFIX: dict[str, Order] = {"_relaxed": "relaxed", "_acquire": "acquire", "_release": "release"}
_ARITH: dict[str, RmwOp] = {
    "add": "add",
    "sub": "sub",
    "and": "and",
    "or": "or",
    "xor": "xor",
    "inc": "add",
    "dec": "sub",
}
_C_BINARY = set(BINARY_OPS)


def parse_file(path: str | Path) -> Program:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LitmusError(str(path), 0, f"cannot read: {e}") from None
    return parse(text, str(path))


def parse(text: str, file: str = "<litmus>") -> Program:
    return _Parser(text, file).program()


def stated_result(text: str) -> str | None:
    """The result the test's header comment states (`` * Result: Never``), as judgelitmus.sh reads it."""
    found = re.search(r"^[( ]\* Result:\s*(\S+)", text, re.M)
    return found.group(1) if found else None


class _Parser:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.locations: dict[str, Value] = {}
        self.sleepers = Sleepers()
        self.qspinlocks: set[str] = set()  # parameters declared struct qspinlock *

    def line_of(self, pos: int) -> int:
        lo, hi = 0, len(self.line_starts)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def fail(self, pos_or_line: int, message: str, *, line: bool = False) -> NoReturn:
        raise LitmusError(self.file, pos_or_line if line else self.line_of(pos_or_line), message)

    # The sections.

    def program(self) -> Program:
        text = self.text
        header = re.match(r"\s*(\S+)[ \t]+(\S+)[^\n]*", text)
        if header is None:
            self.fail(0, "expected a 'C <name>' header line")
        if header.group(1) != "C":
            self.fail(header.start(1), f"not a C litmus test (architecture {header.group(1)})")
        name = header.group(2)
        pos = header.end()
        init: tuple[int, str] | None = None
        functions: list[tuple[int, int, int]] = []  # (tid, start, end) of each P<n>(...) {...}
        while True:
            pos = self._skip_space_and_comments(pos)
            if pos >= len(text):
                break
            if text.startswith("{", pos) and init is None and not functions:
                end = text.find("}", pos)
                if end < 0:
                    self.fail(pos, "the init block '{' is never closed")
                init = (pos + 1, text[pos + 1 : end])
                pos = end + 1
                continue
            fn = re.compile(r"P(\d+)\s*\(").match(text, pos)
            if fn is None:
                break
            open_brace = self._find_body(fn.end())
            end = self._match_brace(open_brace)
            functions.append((int(fn.group(1)), pos, end + 1))
            pos = end + 1
        if not functions:
            self.fail(pos, "expected a thread function such as 'P0(int *x) { ... }'")
        for i, (tid, start, _) in enumerate(functions):
            if tid != i:
                self.fail(start, f"thread P{tid} where P{i} was expected: threads are P0, P1, ... in order")

        locations: dict[str, Value] = {}
        reg_init: dict[tuple[int, str], Value] = {}
        pointer_inits: list[tuple[int, str, str]] = []  # (line, location or register, target)
        if init is not None:
            self._init_block(init[0], init[1], locations, reg_init, pointer_inits)
        self.locations = locations
        parsed = [self._parse_thread(tid, start, end, locations) for tid, start, end in functions]
        self.sleepers = Sleepers.collect([p[0] for p in parsed], len(functions))
        threads = [self._lower_thread(tid, *p) for tid, p in enumerate(parsed)]
        for (tid, reg), _ in reg_init.items():
            if reg not in threads[tid].registers:
                self.fail(
                    init[0] if init else 0, f"the init block sets {tid}:{reg}, which P{tid} does not declare"
                )
        for line, _, target in pointer_inits:
            if target not in locations:
                self.fail(
                    line,
                    f"the init block takes the address of {target}, which is no shared location",
                    line=True,
                )
        final = self._final(pos, threads, locations)
        return Program(
            name=name,
            locations=locations,
            threads=tuple(threads),
            final=final,
            reg_init=reg_init,
            expected=stated_result(text),
            file=self.file,
        )

    def _skip_space_and_comments(self, pos: int) -> int:
        text = self.text
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
            elif text.startswith("(*", pos):
                pos = self._ocaml_comment_end(pos)
            elif text.startswith("//", pos):
                nl = text.find("\n", pos)
                pos = len(text) if nl < 0 else nl
            elif text.startswith("/*", pos):
                end = text.find("*/", pos + 2)
                if end < 0:
                    self.fail(pos, "comment '/*' is never closed")
                pos = end + 2
            else:
                break
        return pos

    def _ocaml_comment_end(self, pos: int) -> int:
        """The end of the (possibly nested) ``(* ... *)`` comment starting at pos."""
        depth, i = 0, pos
        while i < len(self.text):
            if self.text.startswith("(*", i):
                depth += 1
                i += 2
            elif self.text.startswith("*)", i):
                depth -= 1
                i += 2
                if depth == 0:
                    return i
            else:
                i += 1
        self.fail(pos, "comment '(*' is never closed")

    def _find_body(self, pos: int) -> int:
        """The '{' that opens the function whose parameter list starts at pos."""
        close = self.text.find(")", pos)
        if close < 0:
            self.fail(pos, "the parameter list is never closed")
        body = self._skip_space_and_comments(close + 1)
        if not self.text.startswith("{", body):
            self.fail(body, "expected '{' to open the thread's body")
        return body

    def _match_brace(self, pos: int) -> int:
        depth, i, text = 0, pos, self.text
        while i < len(text):
            c = text[i]
            if text.startswith("//", i):
                nl = text.find("\n", i)
                i = len(text) if nl < 0 else nl
                continue
            if text.startswith("/*", i):
                end = text.find("*/", i + 2)
                i = len(text) if end < 0 else end + 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return i
            i += 1
        self.fail(pos, "the thread's body '{' is never closed")

    # The init block: ``x=1;``, ``int y;``, ``atomic_t v = ATOMIC_INIT(1);``, ``int *p = &x;``,
    # ``p=x;`` (p holds x's address), ``0:r0=1;`` / ``P0:r0=1;``.

    def _init_block(
        self,
        start: int,
        body: str,
        locations: dict[str, Value],
        reg_init: dict[tuple[int, str], Value],
        pointer_inits: list[tuple[int, str, str]],
    ) -> None:
        blanked = _blank_comments(body, ocaml=True)
        offset = 0
        for item in blanked.split(";"):
            line = self.line_of(start + offset + len(item) - len(item.lstrip()))
            offset += len(item) + 1
            words = item.strip()
            if not words:
                continue
            lhs, eq, raw = words.partition("=")
            parts = re.findall(r"P?\d+:\w+|[A-Za-z_]\w*|\S", lhs)
            name = parts[-1] if parts else ""
            if not re.fullmatch(r"(?:P?\d+:)?[A-Za-z_]\w*", name) or any(
                not re.fullmatch(r"[A-Za-z_]\w*|\*", w) for w in parts[:-1]
            ):
                self.fail(line, f"cannot read the init item {words!r}", line=True)
            value: Value = 0
            if eq:
                value = self._init_value(raw.strip(), line, name, pointer_inits)
            reg = re.fullmatch(r"P?(\d+):(\w+)", name)
            if reg:
                reg_init[(int(reg.group(1)), reg.group(2))] = value
            else:
                locations[name] = value

    def _init_value(self, raw: str, line: int, name: str, pointer_inits: list[tuple[int, str, str]]) -> Value:
        m = re.fullmatch(r"ATOMIC_INIT\s*\(\s*(.*?)\s*\)", raw)
        if m:
            raw = m.group(1)
        number = _c_int(raw)
        if number is not None:
            return number
        m = re.fullmatch(r"&?\s*([A-Za-z_]\w*)", raw)
        if m is None:
            self.fail(line, f"cannot read the initial value {raw!r} of {name}", line=True)
        pointer_inits.append((line, name, m.group(1)))
        return m.group(1)

    # The threads.

    def _parse_thread(
        self, tid: int, start: int, end: int, locations: dict[str, Value]
    ) -> tuple[c_ast.FuncDef, list[str], int]:
        first = self.line_of(start)
        if first == 1:
            self.fail(start, "a thread function cannot share the header's line")
        region = _blank_comments(self.text[start:end], ocaml=False)
        source = _PRELUDE + "\n" * (first - 1) + "void " + region + "\n"
        try:
            ast = _c_parser().parse(source, self.file)
        except c_parser.ParseError as e:
            m = re.match(r".*?:(\d+)(?::\d+)?: (.*)", str(e))
            if m:
                self.fail(int(m.group(1)), f"C syntax error: {m.group(2)}", line=True)
            detail = str(e).split(": ", 1)[-1]
            self.fail(first, f"C syntax error in P{tid}: {detail}", line=True)
        funcs = [n for n in ast.ext if isinstance(n, c_ast.FuncDef)]
        if len(funcs) != 1:
            self.fail(start, f"P{tid} is not one C function")
        func = funcs[0]
        params: list[str] = []
        args = func.decl.type.args
        for p in args.params if args is not None else []:
            if isinstance(p, c_ast.Decl) and p.name:
                params.append(p.name)
                locations.setdefault(p.name, 0)
                if _struct_name(p.type) == "qspinlock":
                    self.qspinlocks.add(p.name)
            elif not (isinstance(p, c_ast.Typename) and _is_void(p.type)):
                self.fail(first, f"P{tid} has a parameter without a name", line=True)
        return func, params, first

    def _lower_thread(self, tid: int, func: c_ast.FuncDef, params: list[str], first: int) -> Thread:
        lower = _Lower(self, tid, set(params))
        body = tuple(lower.statement(func.body))
        return Thread(tid, body, tuple(lower.registers), first)

    # The final clauses.

    def _final(self, pos: int, threads: list[Thread], locations: dict[str, Value]) -> Final:
        tokens = self._tokens(pos)
        quantifier: Quantifier | None = None
        prop: Prop | None = None
        filt: Prop | None = None
        locs: list[RegRef | LocRef] = []
        i = 0

        def ref(tok: str, line: int) -> RegRef | LocRef:
            m = re.fullmatch(r"P?(\d+):([A-Za-z_]\w*)", tok)
            if m:
                tid, reg = int(m.group(1)), m.group(2)
                if tid >= len(threads):
                    self.fail(line, f"{tok}: there is no thread P{tid}", line=True)
                if reg not in threads[tid].registers:
                    self.fail(line, f"{tok}: P{tid} has no register {reg}", line=True)
                return RegRef(tid, reg)
            if re.fullmatch(r"[A-Za-z_]\w*(?:\.\w+)*", tok):  # dotted: a sleeping primitive's (P0.state)
                if tok not in locations:
                    self.fail(line, f"{tok} is no shared location of the test", line=True)
                return LocRef(tok)
            self.fail(line, f"expected a register such as 0:r0 or a location, not {tok!r}", line=True)

        def expect(tok: str) -> int:
            nonlocal i
            if i >= len(tokens) or tokens[i][0] != tok:
                got = repr(tokens[i][0]) if i < len(tokens) else "the end of the file"
                self.fail(
                    tokens[min(i, len(tokens) - 1)][1] if tokens else self.line_of(pos),
                    f"expected {tok!r}, not {got}",
                    line=True,
                )
            i += 1
            return tokens[i - 1][1]

        def value(tok: str, line: int) -> Value:
            number = _c_int(tok)
            if number is not None:
                return number
            if tok in locations:
                return tok  # a pointer: the address of that location
            self.fail(line, f"expected a value, not {tok!r}", line=True)

        def atom() -> Prop:
            nonlocal i
            if i >= len(tokens):
                self.fail(
                    tokens[-1][1] if tokens else self.line_of(pos),
                    "the final clause ends too soon",
                    line=True,
                )
            tok, line = tokens[i]
            if tok == "~":
                i += 1
                return Not(atom())
            if tok == "(":
                i += 1
                p = disjunction()
                expect(")")
                return p
            if tok in ("true", "false"):
                i += 1
                return Truth(tok == "true")
            if tok == "[":
                i += 1
                r = ref(tokens[i][0] if i < len(tokens) else "", line)
                i += 1
                expect("]")
            else:
                r = ref(tok, line)
                i += 1
            if i >= len(tokens) or tokens[i][0] not in ("=", "!="):
                self.fail(line, f"expected '=' after {r}", line=True)
            negated = tokens[i][0] == "!="
            i += 1
            if i >= len(tokens):
                self.fail(line, f"expected a value after {r}=", line=True)
            v = value(*tokens[i])
            i += 1
            return Atom(r, v, negated)

        def conjunction() -> Prop:
            nonlocal i
            p = atom()
            while i < len(tokens) and tokens[i][0] == "/\\":
                i += 1
                p = And(p, atom())
            return p

        def disjunction() -> Prop:
            nonlocal i
            p = conjunction()
            while i < len(tokens) and tokens[i][0] == "\\/":
                i += 1
                p = Or(p, conjunction())
            return p

        while i < len(tokens):
            tok, line = tokens[i]
            if tok == "locations":
                i += 1
                expect("[")
                while i < len(tokens) and tokens[i][0] != "]":
                    if tokens[i][0] != ";":
                        locs.append(ref(*tokens[i]))
                    i += 1
                expect("]")
            elif tok == "filter":
                i += 1
                filt = disjunction()
            elif tok in ("exists", "forall") or (
                tok == "~" and i + 1 < len(tokens) and tokens[i + 1][0] == "exists"
            ):
                if quantifier is not None:
                    self.fail(line, "a second final condition", line=True)
                quantifier = "~exists" if tok == "~" else tok  # type: ignore[assignment]
                i += 2 if tok == "~" else 1
                prop = disjunction()
            else:
                self.fail(
                    line, f"expected exists, ~exists, forall, filter or locations, not {tok!r}", line=True
                )
        if quantifier is None or prop is None:
            self.fail(len(self.text.rstrip()), "no final condition (exists, ~exists or forall)")
        return Final(quantifier, prop, filt, tuple(locs))

    def _tokens(self, pos: int) -> list[tuple[str, int]]:
        text = _blank_comments(self.text[pos:], ocaml=True)
        out = []
        for m in re.finditer(
            r"/\\|\\/|!=|<>|P?\d+:[A-Za-z_]\w*|-?0[xX][0-9a-fA-F]+|-?\d+|[A-Za-z_]\w*(?:\.\w+)*|\S", text
        ):
            tok = "!=" if m.group() == "<>" else m.group()
            out.append((tok, self.line_of(pos + m.start())))
        return out


class _Lower:
    """One thread's C body (a pycparser AST) lowered to instructions."""

    def __init__(self, parser: _Parser, tid: int, params: set[str]) -> None:
        self.parser = parser
        self.tid = tid
        self.params = params
        self.registers: list[str] = []
        self.temps = 0
        self.val: str | None = None  # the register VAL names in a cond_load's condition

    def fail(self, node: Any, message: str) -> NoReturn:
        coord = getattr(node, "coord", None)
        line = coord.line if coord is not None and coord.line else 0
        raise LitmusError(self.parser.file, line, message)

    def line(self, node: Any) -> int:
        coord = getattr(node, "coord", None)
        return coord.line if coord is not None and coord.line else 0

    def temp(self) -> str:
        self.temps += 1
        name = f"%t{self.temps}"
        self.registers.append(name)
        return name

    def register(self, node: c_ast.ID) -> str:
        if node.name not in self.registers:
            self.fail(node, f"{node.name} is not a register of P{self.tid}")
        return node.name

    # Statements.

    def statement(self, node: Any) -> list[Instr]:
        if node is None or isinstance(node, c_ast.EmptyStatement):
            return []
        if isinstance(node, c_ast.Compound):
            return [ins for item in node.block_items or [] for ins in self.statement(item)]
        if isinstance(node, c_ast.DeclList):
            return [ins for d in node.decls for ins in self.statement(d)]
        if isinstance(node, c_ast.Decl):
            if node.name in self.params:
                self.fail(node, f"{node.name} is both a parameter and a register of P{self.tid}")
            if node.name not in self.registers:
                self.registers.append(node.name)
            return self.assign(node.name, node.init, node) if node.init is not None else []
        if isinstance(node, c_ast.Assignment):
            return self.assignment(node)
        if isinstance(node, c_ast.FuncCall):
            return self.call(node, None)
        if isinstance(node, c_ast.Cast) and _is_void(node.to_type.type):
            return self.statement(node.expr)
        if isinstance(node, c_ast.UnaryOp) and node.op in ("p++", "++", "p--", "--"):
            return self.increment(node.expr, "+" if "+" in node.op else "-", Const(1), node)
        if isinstance(node, c_ast.If):
            pre, cond = self.expr(node.cond)
            then = tuple(self.statement(node.iftrue))
            orelse = tuple(self.statement(node.iffalse))
            return [*pre, If(cond, then, orelse, self.line(node))]
        if isinstance(node, c_ast.While):
            head, cond = self.expr(node.cond)
            return [While(cond, tuple(self.statement(node.stmt)), tuple(head), line=self.line(node))]
        if isinstance(node, c_ast.DoWhile):
            body = self.statement(node.stmt)
            head, cond = self.expr(node.cond)
            return [*body, While(cond, tuple(body), tuple(head), line=self.line(node))]
        if isinstance(node, c_ast.For):
            init = self.statement(node.init)
            head, cond = self.expr(node.cond) if node.cond is not None else ([], Const(1))
            body = self.statement(node.stmt) + self.statement(node.next)
            return [*init, While(cond, tuple(body), tuple(head), line=self.line(node))]
        if isinstance(node, c_ast.ExprList):
            return [ins for e in node.exprs for ins in self.statement(e)]
        if isinstance(node, (c_ast.ID, c_ast.Constant)):
            return []
        self.fail(node, f"unsupported C statement ({type(node).__name__})")

    def assignment(self, node: c_ast.Assignment) -> list[Instr]:
        target, op = node.lvalue, node.op
        if op == "=":
            if isinstance(target, c_ast.ID):
                return self.assign(self.register(target), node.rvalue, node)
            if isinstance(target, c_ast.UnaryOp) and target.op == "*":
                pre_a, addr = self.expr(target.expr)
                pre_v, value = self.expr(node.rvalue)
                return [*pre_a, *pre_v, Store(addr, value, "plain", self.line(node))]
            if isinstance(target, c_ast.StructRef):
                addr, field = self.field(target)
                pre_v, value = self.expr(node.rvalue)
                return [*pre_v, Store(addr, value, "plain", self.line(node), field)]
            self.fail(node, "the left side of '=' must be a register, *pointer or lock->field")
        binop = op[:-1]
        if binop not in _C_BINARY:
            self.fail(node, f"unsupported assignment operator {op}")
        pre, value = self.expr(node.rvalue)
        return [*pre, *self.increment(target, binop, value, node)]

    def increment(self, target: Any, op: str, value: Expr, node: Any) -> list[Instr]:
        """target op= value, on a register or (as a plain load and store) on *pointer."""
        if isinstance(target, c_ast.ID):
            reg = self.register(target)
            return [Assign(reg, Binary(op, Reg(reg), value), self.line(node))]
        if isinstance(target, c_ast.UnaryOp) and target.op == "*":
            pre, addr = self.expr(target.expr)
            t = self.temp()
            line = self.line(node)
            return [*pre, Load(t, addr, "plain", line), Store(addr, Binary(op, Reg(t), value), "plain", line)]
        self.fail(node, "only a register or *pointer can be incremented")

    def assign(self, reg: str, rvalue: Any, node: Any) -> list[Instr]:
        if isinstance(rvalue, c_ast.FuncCall):
            return self.call(rvalue, reg)  # r0 = READ_ONCE(*x): the load writes r0 itself
        pre, value = self.expr(rvalue)
        return [*pre, Assign(reg, value, self.line(node))]

    # Expressions: (instructions to run first, the value over registers).

    def expr(self, node: Any) -> tuple[list[Instr], Expr]:
        if isinstance(node, c_ast.Constant):
            number = None if node.type in ("char", "string", "float", "double") else _c_int(node.value)
            if number is None:
                self.fail(node, f"unsupported constant {node.value}")
            return [], Const(number)
        if isinstance(node, c_ast.ID):
            if node.name in self.params:
                return [], Const(node.name)  # a parameter is the address of its location
            if node.name in ("NULL", "false"):
                return [], Const(0)
            if node.name == "true":
                return [], Const(1)
            if node.name in KERNEL_CONSTANTS:
                return [], Const(KERNEL_CONSTANTS[node.name])
            if node.name == "VAL" and self.val is not None:
                return [], Reg(self.val)
            return [], Reg(self.register(node))
        if isinstance(node, c_ast.UnaryOp):
            if node.op == "*":
                pre, addr = self.expr(node.expr)
                t = self.temp()
                return [*pre, Load(t, addr, "plain", self.line(node))], Reg(t)
            if node.op == "&" and isinstance(node.expr, c_ast.UnaryOp) and node.expr.op == "*":
                return self.expr(node.expr.expr)
            if node.op in ("-", "!", "~"):
                pre, e = self.expr(node.expr)
                return pre, Unary(node.op, e)
            if node.op == "+":
                return self.expr(node.expr)
            self.fail(node, f"unsupported operator {node.op} in an expression")
        if isinstance(node, c_ast.BinaryOp):
            if node.op not in _C_BINARY:
                self.fail(node, f"unsupported operator {node.op}")
            pre_l, left = self.expr(node.left)
            pre_r, right = self.expr(node.right)
            if node.op in ("&&", "||") and pre_r:
                # The right side reads memory: read it only when C would evaluate it.
                t = self.temp()
                line = self.line(node)
                test: Expr = Reg(t) if node.op == "&&" else Unary("!", Reg(t))
                rest = If(test, (*pre_r, Assign(t, Unary("!", Unary("!", right)), line)), (), line)
                return [*pre_l, Assign(t, Unary("!", Unary("!", left)), line), rest], Reg(t)
            return [*pre_l, *pre_r], Binary(node.op, left, right)
        if isinstance(node, c_ast.TernaryOp):
            pre_c, cond = self.expr(node.cond)
            pre_t, then = self.expr(node.iftrue)
            pre_f, orelse = self.expr(node.iffalse)
            t = self.temp()
            line = self.line(node)
            branch = If(cond, (*pre_t, Assign(t, then, line)), (*pre_f, Assign(t, orelse, line)), line)
            return [*pre_c, branch], Reg(t)
        if isinstance(node, c_ast.Cast):
            return self.expr(node.expr)
        if isinstance(node, c_ast.StructRef):  # a plain read of lock->field
            addr, field = self.field(node)
            t = self.temp()
            return [Load(t, addr, "plain", self.line(node))], _bits(Reg(t), field)
        if isinstance(node, c_ast.FuncCall):
            t = self.temp()
            instrs = self.call(node, t, value_needed=True)
            return instrs, Reg(t)
        self.fail(node, f"unsupported C expression ({type(node).__name__})")

    def lvalue(self, node: Any, name: str) -> tuple[list[Instr], Expr]:
        """The address of ``*p``, the argument READ_ONCE and WRITE_ONCE take."""
        if isinstance(node, c_ast.UnaryOp) and node.op == "*":
            return self.expr(node.expr)
        self.fail(node, f"{name} takes a location such as *x")

    def field(self, node: c_ast.StructRef) -> tuple[Expr, Field | None]:
        """``lock->locked``: the word of a ``struct qspinlock *`` parameter and the field's bits
        (None for ``val``, the whole word)."""
        base = node.name
        if node.type != "->" or not (
            isinstance(base, c_ast.ID) and base.name in self.params and base.name in self.parser.qspinlocks
        ):
            self.fail(node, "fields are supported on struct qspinlock * parameters only, as lock->locked")
        if node.field.name not in QSPINLOCK_FIELDS:
            known = ", ".join(QSPINLOCK_FIELDS)
            self.fail(node, f"struct qspinlock has no field {node.field.name} (it has {known})")
        return Const(base.name), QSPINLOCK_FIELDS[node.field.name]

    # Calls of kernel primitives.

    def call(self, node: c_ast.FuncCall, dst: str | None, value_needed: bool = False) -> list[Instr]:
        if not isinstance(node.name, c_ast.ID):
            self.fail(node, "unsupported call through a pointer")
        name = node.name.name
        args = node.args.exprs if node.args is not None else []
        line = self.line(node)
        pre: list[Instr] = []

        def arity(n: int) -> None:
            if len(args) != n:
                self.fail(node, f"{name} takes {n} argument{'s' if n != 1 else ''}, not {len(args)}")

        def value(i: int) -> Expr:
            p, e = self.expr(args[i])
            pre.extend(p)
            return e

        field: Field | None = None

        def loc(i: int, lvalue: bool = False) -> Expr:
            nonlocal field
            arg = args[i]
            if not lvalue and isinstance(arg, c_ast.UnaryOp) and arg.op == "&":
                arg = arg.expr
            if isinstance(arg, c_ast.StructRef):  # lock->locked, &lock->tail, &lock->val
                addr, field = self.field(arg)
                return addr
            p, e = self.lvalue(arg, name) if lvalue else self.expr(arg)
            pre.extend(p)
            return e

        def returns_nothing() -> None:
            if value_needed:
                self.fail(node, f"{name} returns no value")

        def out() -> str:
            return dst if dst is not None else self.temp()

        ins: Instr
        if name in _FENCES:
            arity(0)
            returns_nothing()
            ins = Fence(_FENCES[name], line)
        elif name == "READ_ONCE":
            arity(1)
            ins = Load(out(), loc(0, lvalue=True), "once", line)
        elif name == "WRITE_ONCE" or name == "smp_store_mb":
            arity(2)
            returns_nothing()
            addr = loc(0, lvalue=True)
            ins = Store(addr, value(1), "once" if name == "WRITE_ONCE" else "mb", line)
        elif name in ("smp_load_acquire", "atomic_read", "atomic_read_acquire"):
            arity(1)
            ins = Load(out(), loc(0), "acquire" if name != "atomic_read" else "once", line)
        elif name in ("smp_store_release", "atomic_set", "atomic_set_release"):
            arity(2)
            returns_nothing()
            addr = loc(0)
            ins = Store(addr, value(1), "once" if name == "atomic_set" else "release", line)
        elif name in _COND_LOADS:
            # smp_cond_load_acquire(&x, VAL == 1): spin until the value read (VAL) passes.
            arity(2)
            ins = Await(out(), loc(0), Const(0), _COND_LOADS[name], "spin", line)
            self.val = ins.dst
            cond_pre, cond = self.expr(args[1])
            self.val = None
            if cond_pre:
                self.fail(node, f"the condition of {name} reads memory; it may test VAL only")
            ins = dataclasses.replace(ins, cond=cond)
        elif name in ("spin_lock", "spin_unlock"):
            arity(1)
            returns_nothing()
            ins = SpinLock(loc(0), line) if name == "spin_lock" else SpinUnlock(loc(0), line)
        elif name == "spin_trylock":
            arity(1)
            ins = SpinTrylock(dst, loc(0), line)
        elif name == "spin_is_locked":
            arity(1)
            ins = SpinIsLocked(out(), loc(0), line)
        elif name == "cpu_relax":
            arity(0)
            returns_nothing()
            return []
        elif name == "BUG_ON":
            arity(1)
            returns_nothing()
            ins = Bug(value(0), line)
        elif name in SLEEPING:
            return lower_sleeping(self, name, args, dst, node, value_needed)
        else:
            rmw = self.rmw(name, len(args), node)
            if rmw is None:
                raise UnsupportedPrimitive(self.parser.file, line, name)
            op, order, returns, ptr_first = rmw
            if returns == "none":
                returns_nothing()
            if ptr_first:  # xchg(p, v), cmpxchg(p, o, n), atomic_xchg(v, i), atomic_add_unless(v, a, u)
                addr = loc(0)
                operands = tuple(value(i) for i in range(1, len(args)))
            elif op in ("add", "sub") and len(args) == 1:  # atomic_inc(v), atomic_dec_return(v)
                addr = loc(0)
                operands = (Const(1),)
            else:  # atomic_add(i, v) and friends
                operands = (value(0),)
                addr = loc(1)
            ins = Rmw(dst if returns != "none" else None, addr, op, operands, order, returns, line)
        if field is None:
            return [*pre, ins]
        # The bits of a qspinlock field: stores and RMWs act on them alone; a load reads the
        # word (loads are single-copy atomic) and takes them out in a register.
        if isinstance(ins, (Store, Rmw)):
            return [*pre, dataclasses.replace(ins, field=field)]
        if isinstance(ins, Load):
            t = self.temp()
            return [*pre, Load(t, ins.addr, ins.order, line), Assign(ins.dst, _bits(Reg(t), field), line)]
        self.fail(node, f"{name} takes the whole word, &lock->val, not a field")

    def rmw(self, name: str, nargs: int, node: Any) -> tuple[RmwOp, Order, RmwReturns, bool] | None:
        """(op, ordering, what it returns, pointer first?) of an xchg/cmpxchg/atomic_* name."""
        base, order = name, None
        for suffix, o in _SUFFIX.items():
            if name.endswith(suffix):
                base, order = name[: -len(suffix)], o
        table: dict[str, tuple[RmwOp, RmwReturns, bool, int]] = {
            "xchg": ("xchg", "old", True, 2),
            "cmpxchg": ("cmpxchg", "old", True, 3),
            "atomic_xchg": ("xchg", "old", True, 2),
            "atomic_cmpxchg": ("cmpxchg", "old", True, 3),
            "atomic_add_unless": ("add_unless", "written", True, 3),
        }
        for word, op in _ARITH.items():
            n = 1 if word in ("inc", "dec") else 2
            table[f"atomic_{word}"] = (op, "none", False, n)
            table[f"atomic_{word}_return"] = (op, "new", False, n)
            table[f"atomic_fetch_{word}"] = (op, "old", False, n)
        found = table.get(base)
        if (
            found is None
            or (found[1] == "none" and order is not None)
            or (base == "atomic_add_unless" and order)
        ):
            return None
        op, returns, ptr_first, n = found
        if nargs != n:
            self.fail(node, f"{name} takes {n} argument{'s' if n != 1 else ''}, not {nargs}")
        # Value-returning atomics are fully ordered unless suffixed; the void ones are relaxed.
        return op, order or ("relaxed" if returns == "none" else "full"), returns, ptr_first


_COND_LOADS: dict[str, Order] = {
    "smp_cond_load_relaxed": "once",
    "smp_cond_load_acquire": "acquire",
    "atomic_cond_read_relaxed": "once",
    "atomic_cond_read_acquire": "acquire",
}


def _bits(word: Expr, field: Field | None) -> Expr:
    """The value of field within word, as a register expression."""
    if field is None:
        return word
    return Binary("&", Binary(">>", word, Const(field.shift)), Const((1 << field.width) - 1))


def _struct_name(node: Any) -> str | None:
    """``qspinlock`` for a parameter declared ``struct qspinlock *lock``."""
    while isinstance(node, (c_ast.PtrDecl, c_ast.TypeDecl)):
        node = node.type
    return node.name if isinstance(node, c_ast.Struct) else None


@functools.cache
def _c_parser() -> c_parser.CParser:
    return c_parser.CParser()  # built once: its construction costs more than a test's parse


def _blank_comments(text: str, *, ocaml: bool) -> str:
    """text with its comments replaced by spaces, newlines kept (so line numbers stay)."""
    pattern = r"//[^\n]*|/\*.*?\*/" + (r"|\(\*.*?\*\)" if ocaml else "")
    return re.sub(pattern, lambda m: re.sub(r"[^\n]", " ", m.group()), text, flags=re.S)


def _c_int(text: str) -> int | None:
    m = re.fullmatch(r"(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)[uUlL]*", text.strip())
    if m is None:
        return None
    digits = m.group(2)
    base = 16 if digits[:2].lower() == "0x" else 8 if len(digits) > 1 and digits[0] == "0" else 10
    value = int(digits, base)
    return -value if m.group(1) else value


def _is_void(node: Any) -> bool:
    return (
        isinstance(node, c_ast.TypeDecl)
        and isinstance(node.type, c_ast.IdentifierType)
        and node.type.names == ["void"]
    )
